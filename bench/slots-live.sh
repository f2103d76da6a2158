#!/usr/bin/env bash
# Benchmarks `docker-sandbox slots` with live status: a provisioned 6-slot pool
# (the engine-test fixture stack, tests/engine/fixtures/templates) with one
# slot claimed and up, so the one engine query returns containers. Compares
# with one `docker ps` CLI call. Checks with strace that `slots` connects to the
# docker socket exactly once and starts no process. Not a test: it measures,
# prints a table and checks one goal, `slots` under 20 ms median.
#
# Usage: bench/slots-live.sh [--runs N] [--warmup N] [--target-ms MS] [--pool NAME]
#                            [--port-base N] [--no-build] [--check] [--keep]
#   --runs N        measured runs per case (default 200)
#   --warmup N      unmeasured runs per case (default 20)
#   --target-ms MS  median goal for the `slots` cases (default 20)
#   --pool NAME     pool name, also the compose project prefix (default benchslots)
#   --port-base N   api N+slot, db N+100+slot, workers N+500+10*slot+i (default 63200)
#   --check         exit 1 when a goal is missed (median, or the strace checks)
#   --no-build      use the existing target/release/docker-sandbox (or $BIN)
#   --keep          keep the fixture folder (repo, HOME, state) for profiling
#
# Needs: tests/engine/setup.sh run once, hyperfine, jq, strace, curl. The
# stack is taken down and every container, volume and network of the pool is
# removed at the end, also on failure or Ctrl-C. Results go to a new folder
# under ${TMPDIR:-/tmp}.
set -euo pipefail

ME=slots-live.sh
RUNS=200
WARMUP=20
TARGET_MS=20
POOL=benchslots
PORT_BASE=63200
BUILD=1
CHECK=0
KEEP=0
SLOTS=6
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) RUNS="$2"; shift ;;
        --warmup) WARMUP="$2"; shift ;;
        --target-ms) TARGET_MS="$2"; shift ;;
        --pool) POOL="$2"; shift ;;
        --port-base) PORT_BASE="$2"; shift ;;
        --no-build) BUILD=0 ;;
        --check) CHECK=1 ;;
        --keep) KEEP=1 ;;
        -h|--help) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench/slots-live.sh: unknown argument \`$1\` (see --help)" >&2; exit 2 ;;
    esac
    shift
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

need_pkg hyperfine hyperfine
need_pkg jq jq
need_pkg strace strace
need_pkg curl curl
need_pkg ss iproute2
hyperfine -N --runs 1 true >/dev/null 2>&1 || die "this hyperfine has no -N; hyperfine 1.13 or later is needed"
build_bin
check_engine

TMP="${TMPDIR:-/tmp}"
WORK="$(mktemp -d "$TMP/docker-sandbox-bench-slots-work.XXXXXX")"
OUT="$(mktemp -d "$TMP/docker-sandbox-bench-slots.XXXXXX")"
install_cleanup

preflight
# The pool's own range, apart from the other benchmarks' and the engine suite's.
SUBNETS=10.217.0.0/16
make_fixture
cp "$WORK/repo/docker-sandbox.toml" "$OUT/"
in_fix "$BIN" provision >"$OUT/provision.log" 2>&1 || { cat "$OUT/provision.log" >&2; die "provision failed"; }
say "starting one slot (docker-sandbox up) so the engine query returns containers"
in_fix "$BIN" up >"$OUT/up.log" 2>&1 || { tail -n 30 "$OUT/up.log" >&2; die "docker-sandbox up failed"; }

json="$(in_fix "$BIN" slots --format json)"
echo "$json" >"$OUT/slots.json"
[ "$(jq '.slots | length' <<<"$json")" = "$SLOTS" ] || die "expected $SLOTS slots"
[ "$(jq .live <<<"$json")" = true ] || die "slots did not get live status from the engine (live=false)"
running="$(jq -r '[.slots[] | select(.status == "running") | .slot] | join(",")' <<<"$json")"
[ -n "$running" ] || die "no slot shows as running after up"
LABEL=com.docker.compose.project
N_CONTAINERS="$(docker ps -aq --filter "label=$LABEL" | wc -l)"
N_OURS="$(docker ps -aq --filter "label=$LABEL=$POOL-slot-$running" | wc -l)"
say "pool ready: $SLOTS slots, slot $running running ($N_OURS containers); the engine lists $N_CONTAINERS compose container(s) in all"

# The socket the plugin should use: DOCKER_HOST when it is unix://, else the default.
SOCK=/var/run/docker.sock
case "${DOCKER_HOST:-}" in unix://*) SOCK="${DOCKER_HOST#unix://}" ;; esac

# --- strace: one connect to the docker socket, no child process ------------------
# trace_check label args...: prints "connects docker_connects execs forks"
trace_check() {
    local id="$1"; shift
    in_fix strace -f -qq -e trace=connect -o "$OUT/strace-connect-$id.txt" "$BIN" "$@" >/dev/null 2>&1 \
        || die "strace of \`slots $*\` failed"
    in_fix strace -f -qq -e trace=execve,fork,vfork,clone,clone3 -o "$OUT/strace-exec-$id.txt" "$BIN" "$@" >/dev/null 2>&1 \
        || die "strace of \`slots $*\` failed"
    local c d e f
    c="$(grep -c 'connect(' "$OUT/strace-connect-$id.txt" || true)"
    d="$(grep -c "connect(.*sun_path=\"$SOCK\"" "$OUT/strace-connect-$id.txt" || true)"
    e="$(grep -c 'execve(' "$OUT/strace-exec-$id.txt" || true)"
    f="$(grep -cE '(fork|clone3?)\(' "$OUT/strace-exec-$id.txt" || true)"
    echo "$c $d $e $f"
}
STRACE_OK=1
strace_rows=()
for form in table json; do
    if [ "$form" = table ]; then set -- slots; else set -- slots --format json; fi
    read -r c d e f <<<"$(trace_check "$form" "$@")"
    # One execve is the plugin itself; any other is a child process (docker ...).
    verdict=ok
    if ! { [ "$d" = 1 ] && [ "$c" = 1 ] && [ "$e" = 1 ] && [ "$f" = 0 ]; }; then
        verdict=FAILED
        STRACE_OK=0
    fi
    strace_rows+=("| \`docker-sandbox $*\` | $c | $d | $((e - 1)) | $f | $verdict |")
    say "strace \`$*\`: $c connect(s), $d to $SOCK, $((e - 1)) child execve, $f fork/clone: $verdict"
done
in_fix strace -f -qq -c -o "$OUT/strace-c-table.txt" "$BIN" slots >/dev/null 2>&1 || true
SYSCALLS="$(awk '$NF == "total" { print $4 }' "$OUT/strace-c-table.txt")"

# --- measure -------------------------------------------------------------------
BUSY="$(cpu_busy)"
say "CPU busy before measuring: ${BUSY}%"
[ "$BUSY" = '?' ] || [ "$BUSY" -le 20 ] || say "warning: the machine is busy (${BUSY}%): figures will be inflated"
Q_BIN="$(printf '%q' "$BIN")"
FILTER="$(jq -rn --arg l "$LABEL" '{label: [$l]} | tojson | @uri')"
API_VER="$(docker version -f '{{.Server.APIVersion}}')"
HF=(hyperfine -N --style basic --warmup "$WARMUP" --runs "$RUNS")
bench() { # id, name, command [env...]
    local id="$1" name="$2" cmd="$3"; shift 3
    say "$name"
    in_fix env "$@" "${HF[@]}" -n "$name" --export-json "$OUT/$id.json" "$cmd" >&2 \
        || die "hyperfine failed for $name"
}
bench floor "baseline: docker-sandbox --version" "$Q_BIN --version"
bench table "slots (live, table)" "$Q_BIN slots"
bench json "slots --format json (live)" "$Q_BIN slots --format json"
# The same without an engine (a socket that does not exist: the connect fails
# at once and `slots` falls back to the registry): what the query itself costs.
bench noengine "slots, no engine (registry status)" "$Q_BIN slots" DOCKER_HOST=unix:///nonexistent/docker.sock
bench curl "curl --unix-socket (a process + the same engine query)" \
    "curl -sf --unix-socket $SOCK -o /dev/null http://docker/v$API_VER/containers/json?all=1&filters=$FILTER"
bench dockerps "docker ps -a --filter label=$LABEL" "docker ps -a --filter label=$LABEL"

# --- summary -------------------------------------------------------------------
hf() { # id -> median
    jq -r '.results[0].median * 1000 * 100 | round / 100' "$OUT/$1.json"
}
hf_row() { # id
    jq -r '.results[0] | [.command, .median, .mean, .stddev, .min, .max] | @tsv' "$OUT/$1.json" |
        awk -F'\t' '{ printf "| %s | %.2f ms | %.2f ms ± %.2f | %.2f ms | %.2f ms |\n", $1, $2 * 1000, $3 * 1000, $4 * 1000, $5 * 1000, $6 * 1000 }'
}
MET=met
for id in table json; do
    awk -v m="$(hf "$id")" -v t="$TARGET_MS" 'BEGIN { exit !(m < t) }' || MET=MISSED
done
{
    echo "## bench/slots-live.sh: \`slots\` with live status"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(machine_line)."
    echo "CPU busy before measuring: ${BUSY}%. Pool of $SLOTS slots, slot $running up ($N_OURS containers);"
    echo "the engine lists $N_CONTAINERS compose container(s) in all. hyperfine -N, warm-up $WARMUP, $RUNS runs."
    echo
    echo "| Case | Median | Mean ± σ | Min | Max |"
    echo "|---|---:|---:|---:|---:|"
    for id in floor table json noengine curl dockerps; do hf_row "$id"; done
    echo
    echo "Goal: \`slots\` under $TARGET_MS ms median (table and JSON): **$MET**."
    echo "The engine query costs \`slots\` about $(awk -v a="$(hf table)" -v b="$(hf noengine)" 'BEGIN { printf "%.2f", a - b }') ms (live minus no-engine medians)."
    echo "\`docker ps\` / \`slots\`: $(awk -v a="$(hf dockerps)" -v b="$(hf table)" 'BEGIN { printf "%.1f", a / b }')×."
    echo
    echo "strace (\`-f\`): connects, to $SOCK, child processes (execve other than the plugin's own), fork/clone calls:"
    echo
    echo "| Command | connect | to the socket | child execve | fork/clone | |"
    echo "|---|---:|---:|---:|---:|---|"
    printf '%s\n' "${strace_rows[@]}"
    echo
    echo "System calls of one \`slots\` (strace -c): ${SYSCALLS:-?}."
} >"$OUT/summary.md"
echo
cat "$OUT/summary.md"
echo
say "hyperfine JSON and strace logs: $OUT"
if [ "$CHECK" = 1 ]; then
    [ "$MET" = met ] || die "goal missed: a \`slots\` median is over $TARGET_MS ms"
    [ "$STRACE_OK" = 1 ] || die "strace check failed: see $OUT/strace-*.txt"
fi
