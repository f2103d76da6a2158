#!/usr/bin/env bash
# Benchmarks `docker-sandbox up` (to ready: compose up -d, then the startability
# gate) against `docker compose up -d --wait` of the same stack, on the real
# engine, with the engine-test fixture stack (tests/engine/fixtures/templates).
# Not a test: it measures, prints a table and checks two goals: `up` at most
# 0.87 of compose's `up -d --wait` (ratio of medians), and `up` returning less
# than 20 ms (median) after the stack is ready (its last container healthy, as
# the engine's events say).
#
# Usage: bench/up.sh [--rounds N] [--warmup N] [--noop-runs N] [--profile P]
#                    [--pause S] [--pool NAME] [--port-base N] [--target-ratio R]
#                    [--target-ready-ms N]
#                    [--no-build] [--check] [--keep]
#   --rounds N      measured rounds; each times one `up` and one compose
#                   `up -d --wait`, in ABBA order (default 10)
#   --warmup N      unmeasured rounds first (default 1)
#   --noop-runs N   hyperfine runs of `up` on the running stack (default 10)
#   --profile P     light (2 workers, default), standard (4) or heavy (8)
#   --pause S       seconds of rest before each timed start (default 1)
#   --pool NAME     pool name, also the compose project prefix (default benchup)
#   --port-base N   api N+slot, db N+100+slot, workers N+500+10*slot+i (default 62600)
#   --target-ratio R     the goal: up's median at most R times compose's
#                        (default 0.87)
#   --target-ready-ms N  the goal: up's median from stack ready to exit under
#                        N ms (default 20)
#   --check         exit 1 when a goal is missed
#   --no-build      use the existing target/release/docker-sandbox (or $BIN)
#   --keep          keep the fixture folder (repo, HOME, state) for profiling
#
# Needs: tests/engine/setup.sh run once (the local image, compose v2), hyperfine,
# jq. Every container, volume and network of the pool is removed at the end,
# also on failure or Ctrl-C. Results go to a new folder under ${TMPDIR:-/tmp}.
set -euo pipefail

ME=up.sh
ROUNDS=10
WARMUP=1
NOOP_RUNS=10
PROFILE=light
PAUSE=1
POOL=benchup
PORT_BASE=62600
TARGET_RATIO=0.87
TARGET_READY_MS=20
BUILD=1
CHECK=0
KEEP=0
SLOTS=6
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) ROUNDS="$2"; shift ;;
        --warmup) WARMUP="$2"; shift ;;
        --noop-runs) NOOP_RUNS="$2"; shift ;;
        --profile) PROFILE="$2"; shift ;;
        --pause) PAUSE="$2"; shift ;;
        --pool) POOL="$2"; shift ;;
        --port-base) PORT_BASE="$2"; shift ;;
        --target-ratio) TARGET_RATIO="$2"; shift ;;
        --target-ready-ms) TARGET_READY_MS="$2"; shift ;;
        --no-build) BUILD=0 ;;
        --check) CHECK=1 ;;
        --keep) KEEP=1 ;;
        -h|--help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench/up.sh: unknown argument \`$1\` (see --help)" >&2; exit 2 ;;
    esac
    shift
done
case "$PROFILE" in light|standard|heavy) ;; *) echo "bench/up.sh: --profile is light, standard or heavy" >&2; exit 2 ;; esac
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || { echo "bench/up.sh: --rounds must be a positive number" >&2; exit 2; }

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

need_pkg hyperfine hyperfine
need_pkg jq jq
need_pkg ss iproute2
hyperfine -N --runs 1 true >/dev/null 2>&1 || die "this hyperfine has no -N; hyperfine 1.13 or later is needed"
build_bin
check_engine

TMP="${TMPDIR:-/tmp}"
WORK="$(mktemp -d "$TMP/docker-sandbox-bench-up-work.XXXXXX")"
OUT="$(mktemp -d "$TMP/docker-sandbox-bench-up.XXXXXX")"

install_cleanup  # on exit, failure and Ctrl-C: take the pool down, check the engine

preflight
# The pool's own range, apart from the other benchmarks' and the engine suite's.
SUBNETS=10.216.0.0/16
make_fixture
cp "$WORK/repo/docker-sandbox.toml" "$OUT/"
in_fix "$BIN" provision >"$OUT/provision.log" 2>&1 || { cat "$OUT/provision.log" >&2; die "provision failed"; }
n="$(in_fix "$BIN" slots --format json | jq '.slots | length')"
[ "$n" = "$SLOTS" ] || die "the pool has $n slots after provision, expected $SLOTS"

# Claim now (what the first `up` would do) so every measured `up` is the same
# path: the claim is held, only the stack starts.
claim_json="$(in_fix "$BIN" claim --profile "$PROFILE" --format json 2>"$OUT/claim.log")" \
    || { cat "$OUT/claim.log" >&2; die "claim failed"; }
SLOT="$(jq -r .slot <<<"$claim_json")"
PROJECT="$POOL-slot-$SLOT"
COMPOSE_FILE_PATH="$WORK/state/slot-$SLOT/docker-compose.yml"
ENV_FILE_PATH="$WORK/repo/.env.sandbox"
{ [ -f "$COMPOSE_FILE_PATH" ] && [ -f "$ENV_FILE_PATH" ]; } || die "slot $SLOT has no compose file or env file"
WORKERS="$(in_fix "$BIN" slots --format json | jq --argjson s "$SLOT" '[.slots[] | select(.slot == $s) | .workers[]] | add')"
CONTAINERS=$((WORKERS + 2))  # db, backend, one per worker
say "slot $SLOT ($PROFILE, $WORKERS workers), project $PROJECT; results in $OUT"

# The same compose command line `up` runs (see its "Starting slot" line), with
# `up -d --wait` for compose.
DC=(docker compose -p "$PROJECT" --project-directory "$WORK/repo" --env-file "$ENV_FILE_PATH" -f "$COMPOSE_FILE_PATH")
# The slot's own networks file (its subnets), as `up` passes it.
NETWORKS_FILE_PATH="$WORK/state/slot-$SLOT/networks.yml"
[ -f "$NETWORKS_FILE_PATH" ] && DC+=(-f "$NETWORKS_FILE_PATH")

running_count() { docker ps -aq --filter "label=com.docker.compose.project=$PROJECT" | wc -l; }
# Checks the slot's project is gone, and counts the other running containers
# (FOREIGN): another workload on the engine, e.g. a test suite, shows up here.
FOREIGN=0
ensure_down() {
    local c
    c="$(running_count)"
    [ "$c" = 0 ] || die "round $1: $c container(s) of $PROJECT still exist before the start"
    FOREIGN="$(docker ps -q | wc -l)"
}

# Health events of the project while a start runs: when the stack itself became
# ready (its last container turned healthy; every service of the fixture has a
# healthcheck), so "ready -> exit" is how long each tool took to notice.
EV_PID=
start_events() { # file
    docker events --filter type=container --filter event=health_status \
        --filter "label=com.docker.compose.project=$PROJECT" \
        --format '{{.TimeNano}} {{.Action}} {{.Actor.Attributes.name}}' >"$1" 2>/dev/null &
    EV_PID=$!
}
stop_events() {
    if [ -n "$EV_PID" ]; then
        kill "$EV_PID" 2>/dev/null || true
        wait "$EV_PID" 2>/dev/null || true
        EV_PID=
    fi
}
on_exit_hook() { stop_events; }
ready_us() { # events file -> microseconds of the last "healthy", if all containers got there
    awk -v want="$CONTAINERS" '$3 == "healthy" { n[$4] = 1; if ($1 > t) t = $1 }
        END { c = 0; for (k in n) c++; if (c >= want && t) printf "%.0f", t / 1000 }' "$1"
}

# One timed start; appends "round kind start_ms down_ms [phases]" to rounds.tsv.
#  (a) docker-sandbox up: its stderr is time-stamped line by line (a process
#      substitution, outside the timed process) to split the run into phases:
#      before compose (ping, compose discovery, claim, port check), compose
#      `up -d`, and the gate.
#  (b) docker compose up -d --wait.
run_a() { # round label
    local r="$1" tag="$2" t0 t1 d0 d1 rc=0 stamp="$OUT/up-$2.stamps" ev="$OUT/up-$2.events" ready
    ensure_down "$tag"
    start_events "$ev"
    sleep "$PAUSE"
    t0="$(now_us)"
    in_fix "$BIN" up >>"$OUT/up.log" 2> >(while IFS= read -r l; do
        printf '%s\t%s\n' "${EPOCHREALTIME/[.,]/}" "$l"; done >"$stamp") || rc=$?
    t1="$(now_us)"
    wait $! 2>/dev/null || true
    stop_events
    ready="$(ready_us "$ev")"
    cut -f2- "$stamp" >>"$OUT/up.log"
    [ "$rc" = 0 ] || { tail -n 30 "$OUT/up.log" >&2; die "round $tag: docker-sandbox up exited $rc"; }
    d0="$(now_us)"
    in_fix "$BIN" down --volumes >>"$OUT/down.log" 2>&1 || die "round $tag: docker-sandbox down --volumes failed (see $OUT/down.log)"
    d1="$(now_us)"
    # Phase marks: the line `up` prints just before it runs compose, just after
    # compose returns, and after each check.
    local compose_at gate_at healthy_at
    compose_at="$(awk -F'\t' '/^[0-9]+\tStarting slot/ { print $1; exit }' "$stamp")"
    gate_at="$(awk -F'\t' '/^[0-9]+\tWaiting for slot/ { print $1; exit }' "$stamp")"
    healthy_at="$(awk -F'\t' '/containers are running and healthy/ { print $1; exit }' "$stamp")"
    printf '%s\tup\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" \
        "$(ms "$t0" "$t1")" "$(ms "$d0" "$d1")" \
        "$(ms "$t0" "$compose_at")" "$(ms "$compose_at" "$gate_at")" \
        "$(ms "$gate_at" "$healthy_at")" "$(ms "$healthy_at" "$t1")" \
        "$(ms "$t0" "$ready")" "$(ms "$ready" "$t1")" "$FOREIGN" >>"$OUT/rounds.tsv"
    printf '  %-8s docker-sandbox up            %8s ms   (stack ready at %s ms; down --volumes %s ms; %s other containers)\n' "$tag" "$(ms "$t0" "$t1")" "$(ms "$t0" "$ready")" "$(ms "$d0" "$d1")" "$FOREIGN" >&2
}
run_b() { # round label
    local r="$1" tag="$2" t0 t1 d0 d1 rc=0 ev="$OUT/compose-$2.events" ready
    ensure_down "$tag"
    start_events "$ev"
    sleep "$PAUSE"
    t0="$(now_us)"
    in_fix "${DC[@]}" up -d --wait >>"$OUT/compose-up.log" 2>&1 || rc=$?
    t1="$(now_us)"
    stop_events
    ready="$(ready_us "$ev")"
    [ "$rc" = 0 ] || { tail -n 30 "$OUT/compose-up.log" >&2; die "round $tag: docker compose up -d --wait exited $rc"; }
    d0="$(now_us)"
    in_fix "${DC[@]}" down -v >>"$OUT/compose-down.log" 2>&1 || die "round $tag: docker compose down -v failed"
    d1="$(now_us)"
    printf '%s\tcompose\t%s\t%s\t-\t-\t-\t-\t%s\t%s\t%s\n' "$r" "$(ms "$t0" "$t1")" "$(ms "$d0" "$d1")" \
        "$(ms "$t0" "$ready")" "$(ms "$ready" "$t1")" "$FOREIGN" >>"$OUT/rounds.tsv"
    printf '  %-8s docker compose up -d --wait  %8s ms   (stack ready at %s ms; down -v %s ms; %s other containers)\n' "$tag" "$(ms "$t0" "$t1")" "$(ms "$t0" "$ready")" "$(ms "$d0" "$d1")" "$FOREIGN" >&2
}
ms() { # from_us to_us -> milliseconds with one decimal, or - if a mark is missing
    if [ -n "${1:-}" ] && [ -n "${2:-}" ]; then
        awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) / 1000 }'
    else
        echo -
    fi
}

BUSY="$(cpu_busy)"
say "CPU busy before measuring: ${BUSY}%"
[ "$BUSY" = '?' ] || [ "$BUSY" -le 20 ] || say "warning: the machine is busy (${BUSY}%): figures will be inflated"

: >"$OUT/rounds.tsv"
if [ "$WARMUP" -gt 0 ]; then
    say "warm-up: $WARMUP round(s), not counted"
    for w in $(seq 1 "$WARMUP"); do
        run_a "w$w" "warm-$w"
        run_b "w$w" "warm-$w"
    done
fi
say "$ROUNDS round(s), ABBA order (odd rounds up first, even rounds compose first), ${PAUSE}s rest before each start"
for r in $(seq 1 "$ROUNDS"); do
    if [ $((r % 2)) = 1 ]; then
        run_a "$r" "round-$r"; run_b "$r" "round-$r"
    else
        run_b "$r" "round-$r"; run_a "$r" "round-$r"
    fi
done

# --- the no-op path: `up` on the running stack -----------------------------------
say "no-op: \`up\` on the running stack ($NOOP_RUNS runs), and the same for compose"
in_fix "$BIN" up >>"$OUT/up.log" 2>&1 || die "docker-sandbox up failed before the no-op runs"
Q_BIN="$(printf '%q' "$BIN")"
Q_DC="$(printf '%q ' "${DC[@]}")"
HF=(hyperfine -N --style basic)
in_fix "${HF[@]}" --warmup 2 --runs "$NOOP_RUNS" \
    -n "docker-sandbox up (already up)" "$Q_BIN up" \
    -n "docker compose up -d --wait (already up)" "${Q_DC}up -d --wait" \
    --export-json "$OUT/noop.json" --export-markdown "$OUT/noop.md" >&2 \
    || die "hyperfine (no-op) failed"
[ "$(running_count)" -gt 0 ] || die "the stack is not running after the no-op runs"
in_fix "$BIN" down --volumes >>"$OUT/down.log" 2>&1 || die "docker-sandbox down --volumes failed"

# --- compose discovery: what `up` pays once per run ------------------------------
say "compose discovery: docker compose version --short"
in_fix "${HF[@]}" --warmup 5 --runs 50 \
    -n "docker compose version --short" "docker compose version --short" \
    -n "docker-sandbox --version (process floor)" "$Q_BIN --version" \
    --export-json "$OUT/discovery.json" --export-markdown "$OUT/discovery.md" >&2 \
    || die "hyperfine (discovery) failed"

# --- summary ----------------------------------------------------------------------
col() { # kind column -> values of the measured rounds
    awk -F'\t' -v k="$1" -v c="$2" '$1 !~ /^w/ && $2 == k && $c != "-" { print $c }' "$OUT/rounds.tsv"
}
row() { # name, "median mean min max sd n"
    read -r med mean min max sd n <<<"$2"
    printf '| %s | %s ms | %s ms ± %s | %s ms | %s ms | %s |\n' "$1" "$med" "$mean" "$sd" "$min" "$max" "$n"
}
hf_row() { # json file, index
    jq -r --argjson i "$2" '.results[$i] | [.command, .median, .mean, .stddev, .min, .max, (.times | length)] | @tsv' "$1" |
        awk -F'\t' '{ printf "| %s | %.1f ms | %.1f ms ± %.1f | %.1f ms | %.1f ms | %d |\n", $1, $2 * 1000, $3 * 1000, $4 * 1000, $5 * 1000, $6 * 1000, $7 }'
}
UP_STATS="$(col up 3 | stats)"
DC_STATS="$(col compose 3 | stats)"
UP_MED="${UP_STATS%% *}"
DC_MED="${DC_STATS%% *}"
RATIO="$(awk -v a="$UP_MED" -v b="$DC_MED" 'BEGIN { printf "%.3f", a / b }')"
MET="$(awk -v r="$RATIO" -v t="$TARGET_RATIO" 'BEGIN { print (r <= t) ? "met" : "MISSED" }')"
READY_STATS="$(col up 10 | stats)"
READY_MED="${READY_STATS%% *}"
READY_MET="$(awk -v m="$READY_MED" -v t="$TARGET_READY_MS" 'BEGIN { print (m < t) ? "met" : "MISSED" }')"
{
    echo "## bench/up.sh: \`up\` to ready vs \`docker compose up -d --wait\`"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(machine_line)."
    echo "CPU busy before measuring: ${BUSY}%. Slot $SLOT ($PROFILE, $WORKERS workers; $CONTAINERS containers),"
    echo "$ROUNDS rounds (ABBA), $WARMUP warm-up round(s), ${PAUSE}s rest before each start."
    echo "Other containers running on the engine at a measured start: $(awk -F'\t' '$1 !~ /^w/ { if ($11 > 0) k++; n++; if ($11 > m) m = $11 } END { printf "%d of %d starts (at most %d)", k, n, m }' "$OUT/rounds.tsv")."
    echo
    echo "| Case | Median | Mean ± σ | Min | Max | n |"
    echo "|---|---:|---:|---:|---:|---:|"
    row "docker-sandbox up (to ready)" "$UP_STATS"
    row "docker compose up -d --wait" "$DC_STATS"
    row "docker-sandbox down --volumes" "$(col up 4 | stats)"
    row "docker compose down -v" "$(col compose 4 | stats)"
    echo
    echo "Ratio of medians, up / compose: **$RATIO**. Goal: at most $TARGET_RATIO: **$MET**."
    echo
    echo "When the stack itself was ready (engine events: the last container turned healthy) and how long"
    echo "each command took after that to return:"
    echo
    echo "| Case | Median | Mean ± σ | Min | Max | n |"
    echo "|---|---:|---:|---:|---:|---:|"
    row "up: start to stack ready" "$(col up 9 | stats)"
    row "up: stack ready to exit" "$READY_STATS"
    row "compose: start to stack ready" "$(col compose 9 | stats)"
    row "compose: stack ready to exit" "$(col compose 10 | stats)"
    echo
    echo "Stack ready to exit, median: **$READY_MED ms**. Goal: under $TARGET_READY_MS ms: **$READY_MET**."
    echo
    echo "Phases of \`up\` (from its time-stamped stderr lines):"
    echo
    echo "| Phase | Median | Mean ± σ | Min | Max | n |"
    echo "|---|---:|---:|---:|---:|---:|"
    row "start to \`compose up -d\` (ping, compose discovery, claim, port check)" "$(col up 5 | stats)"
    row "\`compose up -d\` (create and start)" "$(col up 6 | stats)"
    row "gate: containers running and healthy" "$(col up 7 | stats)"
    row "gate: TCP + HTTP checks, then exit" "$(col up 8 | stats)"
    echo
    echo "No-op path (stack already running) and compose discovery (hyperfine -N):"
    echo
    echo "| Case | Median | Mean ± σ | Min | Max | n |"
    echo "|---|---:|---:|---:|---:|---:|"
    hf_row "$OUT/noop.json" 0
    hf_row "$OUT/noop.json" 1
    hf_row "$OUT/discovery.json" 0
    hf_row "$OUT/discovery.json" 1
} >"$OUT/summary.md"
echo
cat "$OUT/summary.md"
echo
say "per-round figures: $OUT/rounds.tsv (round, kind, start ms, down ms, 4 phases of up, start to ready, ready to exit, other containers); logs: $OUT/*.log"
if [ "$CHECK" = 1 ] && [ "$MET" != met ]; then
    die "goal missed: up's median is $RATIO of compose's (target $TARGET_RATIO)"
fi
if [ "$CHECK" = 1 ] && [ "$READY_MET" != met ]; then
    die "goal missed: up returns $READY_MED ms after the stack is ready (target under $TARGET_READY_MS ms)"
fi
