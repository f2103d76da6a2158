#!/usr/bin/env bash
# Benchmarks `docker-sandbox claim` under contention and `docker-sandbox env`,
# with no container started: 32 git worktrees of one repo (a 6-slot pool: the
# embedded default templates with its ports moved, see --port-base) all run
# `claim --format json` at the same moment, round after round. Every round must
# end with exactly 6 winners (exit 0, 6 distinct slots), 26 losers (exit 1, "no
# free slot"), a registry that holds exactly the 6 reported claims and an
# .env.sandbox in exactly the 6 winning worktrees; a wrong round makes the script
# exit 1 (always). Then hyperfine times one uncontended fresh `claim`, an
# idempotent re-`claim`, `claim` on a full pool, `env`, `env --format json`, and
# `--version` (the process floor). Not a test of speed: it measures, prints a
# table and checks one goal with --check.
#
# Usage: bench/claim.sh [--runs N] [--warmup N] [--agents N] [--hf-runs N]
#                       [--hf-warmup N] [--target-ms MS] [--pool NAME]
#                       [--port-base N] [--no-build] [--check] [--keep]
#   --runs N        measured contended rounds (default 20)
#   --warmup N      unmeasured contended rounds first (default 1)
#   --agents N      worktrees claiming at once, at least 7 (default 32)
#   --hf-runs N     hyperfine runs per single-process case (default 50)
#   --hf-warmup N   hyperfine warm-up runs per case (default 5)
#   --target-ms MS  the goal: median contended round wall time (all agents
#                   started to the last one exited) under MS (default 1000)
#   --pool NAME     pool name, also the compose project prefix (default benchclaim)
#   --port-base N   api N+slot, db N+10+slot, grafana N+20+slot, jaeger_ui
#                   N+30+slot, prometheus N+40+slot, OTLP N+100/N+101+10*slot,
#                   workers N+200+10*slot+i (default 63800; N..N+599 must be free)
#   --check         also exit 1 when the goal is missed
#   --no-build      use the existing target/release/docker-sandbox (or $BIN)
#   --keep          keep the fixture folder (repo, worktrees, HOME, state)
#
# Needs: a Docker engine (only listed, nothing is started), git, hyperfine, jq,
# flock (util-linux), ss. Results (rounds.tsv, procs.tsv, hyperfine JSON,
# summary.md) go to a new folder under ${TMPDIR:-/tmp}.
set -euo pipefail

ME=claim.sh
RUNS=20
WARMUP=1
AGENTS=32
HF_RUNS=50
HF_WARMUP=5
TARGET_MS=1000
POOL=benchclaim
PORT_BASE=63800
BUILD=1
CHECK=0
KEEP=0
SLOTS=6
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) RUNS="$2"; shift ;;
        --warmup) WARMUP="$2"; shift ;;
        --agents) AGENTS="$2"; shift ;;
        --hf-runs) HF_RUNS="$2"; shift ;;
        --hf-warmup) HF_WARMUP="$2"; shift ;;
        --target-ms) TARGET_MS="$2"; shift ;;
        --pool) POOL="$2"; shift ;;
        --port-base) PORT_BASE="$2"; shift ;;
        --no-build) BUILD=0 ;;
        --check) CHECK=1 ;;
        --keep) KEEP=1 ;;
        -h|--help) sed -n '2,33p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench/claim.sh: unknown argument \`$1\` (see --help)" >&2; exit 2 ;;
    esac
    shift
done
number() { # value, option, regex, what
    [[ "$1" =~ $3 ]] || { echo "bench/claim.sh: $2 must be $4, not \`$1\`" >&2; exit 2; }
}
for o in "$RUNS --runs" "$HF_RUNS --hf-runs" "$AGENTS --agents" "$PORT_BASE --port-base" "$TARGET_MS --target-ms"; do
    # shellcheck disable=SC2086 # "value option": split on purpose
    number $o '^[1-9][0-9]*$' 'a number above 0'
done
number "$WARMUP" --warmup '^[0-9]+$' 'a number'
number "$HF_WARMUP" --hf-warmup '^[0-9]+$' 'a number'
[ "$AGENTS" -gt "$SLOTS" ] || { echo "bench/claim.sh: --agents must be more than $SLOTS (some must lose)" >&2; exit 2; }
[ "$PORT_BASE" -le 64900 ] || { echo "bench/claim.sh: --port-base must be at most 64900" >&2; exit 2; }

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# say, die, need_pkg, cpu_busy, now_us, build_bin, leftovers, preflight,
# machine_line, install_cleanup (on_exit: release, engine check, remove WORK).
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

need_pkg hyperfine hyperfine
need_pkg jq jq
need_pkg flock util-linux
need_pkg ss iproute2
need_pkg git git
hyperfine -N --runs 1 true >/dev/null 2>&1 || die "this hyperfine has no -N; hyperfine 1.13 or later is needed"
build_bin
docker info >/dev/null 2>&1 || die "cannot talk to the Docker engine (is dockerd running?)"

TMP="${TMPDIR:-/tmp}"
# Canonical paths: claims are keyed by the worktree's canonical top folder.
WORK="$(cd "$(mktemp -d "$TMP/docker-sandbox-bench-claim-work.XXXXXX")" && pwd -P)"
OUT="$(mktemp -d "$TMP/docker-sandbox-bench-claim.XXXXXX")"
PIDS=()
# On exit: stop agents still running (ours, by pid), then lib.sh's on_exit.
on_exit_hook() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
}
install_cleanup

preflight  # nothing of the pool on the engine, no listening port in N..N+599

# --- fixture ---------------------------------------------------------------------
# One repo holding docker-sandbox.toml (committed, so every worktree has it),
# AGENTS worktrees agent-NN that claim at once, and `solo` for the single-process
# cases. The embedded KTRDR templates and profiles; only the ports move.
say "fixture: one repo, $AGENTS + 1 worktrees, pool \`$POOL\` ($SLOTS slots), ports $PORT_BASE-$((PORT_BASE + 269))"
mkdir -p "$WORK/home" "$WORK/repo" "$WORK/wt"
B=$PORT_BASE
{
    echo "# Generated by bench/$ME: the default pool, its ports moved to $B+."
    echo '[pool]'
    echo "name = \"$POOL\""
    echo
    echo '[ports]'
    echo "api = [$B, 1]"
    echo "db = [$((B + 10)), 1]"
    echo "grafana = [$((B + 20)), 1]"
    echo "jaeger_ui = [$((B + 30)), 1]"
    echo "prometheus = [$((B + 40)), 1]"
    echo "jaeger_otlp_grpc = [$((B + 100)), 10]"
    echo "jaeger_otlp_http = [$((B + 101)), 10]"
    echo "workers = [$((B + 200)), 10]"
} >"$WORK/repo/docker-sandbox.toml"
cp "$WORK/repo/docker-sandbox.toml" "$OUT/"
GIT=(git -c user.name=bench -c user.email=bench@localhost -c init.defaultBranch=main)
(
    cd "$WORK/repo"
    "${GIT[@]}" init -q
    "${GIT[@]}" add docker-sandbox.toml
    "${GIT[@]}" commit -q -m "bench fixture"
) || die "could not make the fixture repo"
WTS=()
for i in $(seq 0 $((AGENTS - 1))); do WTS+=("$WORK/wt/agent-$(printf '%02d' "$i")"); done
SOLO="$WORK/wt/solo"
for wt in "${WTS[@]}" "$SOLO"; do
    "${GIT[@]}" -C "$WORK/repo" worktree add -q --detach "$wt" >/dev/null 2>&1 \
        || die "git worktree add $wt failed"
done

# The environment every plugin process gets (lib.sh's in_fix, in a worktree):
# its own HOME and state folder; DOCKER_CONFIG stays the user's.
fix_env() {
    export HOME="$WORK/home" DOCKER_CONFIG="$DOCKER_CONFIG_DIR" \
        DOCKER_SANDBOX_HOME="$WORK/state" NO_COLOR=1
    unset DOCKER_SANDBOX_CONFIG DOCKER_SANDBOX_COMPOSE COMPOSE_PROJECT_NAME COMPOSE_FILE
}
in_wt() { # dir, command...
    local d="$1"; shift
    (cd "$d" && fix_env && "$@")
}

ms_between() { # from_us to_us -> milliseconds, one decimal (bash arithmetic only)
    local d=$(($2 - $1)) sign=
    [ "$d" -ge 0 ] || { sign=-; d=$((-d)); }
    printf '%s%d.%d' "$sign" $((d / 1000)) $((d % 1000 / 100))
}

in_fix "$BIN" provision >"$OUT/provision.log" 2>&1 || { cat "$OUT/provision.log" >&2; die "provision failed"; }
REG="$WORK/state/registry.json"
n="$(jq '.slots | length' "$REG")" || die "the registry does not parse after provision"
[ "$n" = "$SLOTS" ] || die "the pool has $n slots after provision, expected $SLOTS"
PROFILES="$(jq -r '[.slots[] | "\(.slot_id) \(.profile)"] | join(", ")' "$REG")"

# Claims in the registry as sorted "slot<TAB>worktree" lines; fails if it does not parse.
reg_claims() {
    jq -r '.slots[] | select(.claimed_by != null) | "\(.slot_id)\t\(.claimed_by)"' "$REG" | sort
}
# Frees every slot (release SLOT --force from the main checkout), then checks
# that nothing is claimed and no worktree has an env file. Prints the ms it took.
release_all() {
    local s t0 t1 left
    t0="$(now_us)"
    for s in $(seq 1 "$SLOTS"); do
        in_fix "$BIN" release "$s" --force --format json >>"$OUT/release.log" 2>&1 \
            || die "release $s --force failed (see $OUT/release.log)"
    done
    t1="$(now_us)"
    left="$(reg_claims)" || die "the registry does not parse after release"
    [ -z "$left" ] || die "claims left after releasing every slot:
$left"
    left="$(find "$WORK/wt" -maxdepth 2 -name .env.sandbox | head -3)"
    [ -z "$left" ] || die "env files left after releasing every slot: $left"
    ms_between "$t0" "$t1"
}

# --- one contended round ------------------------------------------------------------
# Every agent is a background subshell that prepares, marks itself ready, then
# blocks on a shared flock of GATE, which this script holds exclusively; closing
# the script's descriptor frees them all at once (an agent that comes late finds
# the gate open: no lost wake-up). Each times its own `claim` with EPOCHREALTIME
# around the process (fork, exec, run, wait). Wall time: from the gate opening to
# the last agent's exit.
GATE="$WORK/gate"
: >"$GATE"
agent() { # index, round dir
    local i="$1" dir="$2" t0 t1 rc=0
    exec 8>&-  # the script's exclusive lock: only the script may hold it
    cd "${WTS[$i]}"
    fix_env
    exec 9<"$GATE"
    : >"$dir/$i.ready"
    flock -s 9
    exec 9<&-
    t0=${EPOCHREALTIME/[.,]/}
    "$BIN" claim --format json >"$dir/$i.out" 2>"$dir/$i.err" || rc=$?
    t1=${EPOCHREALTIME/[.,]/}
    printf '%s\t%s\t%s\t%s\n' "$i" "$rc" "$t0" "$t1" >"$dir/$i.t"
}

: >"$OUT/rounds.tsv"
: >"$OUT/procs.tsv"
BAD_ROUNDS=0
# Runs one round, checks its outcome, appends to rounds.tsv and procs.tsv.
round() { # label
    local r="$1" dir="$WORK/rounds/$1" i ready t_open t_end=0 t_last_start=0 \
        won=0 lost=0 other=0 notes=0 verdict=ok why=() rc t0 t1 slot wt_json \
        expect got envs rel kind note f
    mkdir -p "$dir"
    exec 8>"$GATE"
    flock -x 8
    PIDS=()
    for i in $(seq 0 $((AGENTS - 1))); do
        agent "$i" "$dir" &
        PIDS+=("$!")
    done
    # All agents ready (their flock is about to block), then a little more.
    for _ in $(seq 1 3000); do
        ready=0
        for f in "$dir"/*.ready; do [ ! -e "$f" ] || ready=$((ready + 1)); done
        [ "$ready" -lt "$AGENTS" ] || break
        sleep 0.01 8>&-
    done
    [ "$ready" = "$AGENTS" ] || die "round $r: only $ready of $AGENTS agents got ready in 30 s"
    sleep 0.1 8>&-
    t_open=${EPOCHREALTIME/[.,]/}
    exec 8>&-  # the last reference to the exclusive lock: the gate opens
    for i in "${PIDS[@]}"; do wait "$i" || die "round $r: an agent failed (see $dir)"; done
    PIDS=()

    # --- outcome ---
    : >"$dir/won"
    for i in $(seq 0 $((AGENTS - 1))); do
        [ -f "$dir/$i.t" ] || die "round $r: agent $i left no timing"
        IFS=$'\t' read -r _ rc t0 t1 <"$dir/$i.t"
        [ "$t1" -le "$t_end" ] || t_end="$t1"
        [ "$t0" -le "$t_last_start" ] || t_last_start="$t0"
        slot=-
        kind=OTHER note=0
        if grep -q 'waiting for lock' "$dir/$i.err"; then note=1; notes=$((notes + 1)); fi
        case "$rc" in
            0)
                if slot="$(jq -er 'select(.fresh == true) | .slot' "$dir/$i.out" 2>/dev/null)" \
                    && wt_json="$(jq -r .worktree "$dir/$i.out")" && [ "$wt_json" = "${WTS[$i]}" ]; then
                    kind=won; won=$((won + 1))
                    printf '%s\t%s\n' "$slot" "${WTS[$i]}" >>"$dir/won"
                else
                    slot=-; other=$((other + 1)); why+=("agent $i exited 0 without a fresh claim of its worktree")
                fi
                ;;
            1)
                if grep -q 'no free slot' "$dir/$i.err"; then
                    kind=lost; lost=$((lost + 1))
                else
                    other=$((other + 1)); why+=("agent $i exited 1: $(head -n 1 "$dir/$i.err")")
                fi
                ;;
            *) other=$((other + 1)); why+=("agent $i exited $rc: $(head -n 1 "$dir/$i.err")") ;;
        esac
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$i" "$rc" "$kind" "$slot" \
            "$(ms_between "$t_open" "$t0")" "$(ms_between "$t0" "$t1")" "$note" >>"$OUT/procs.tsv"
    done
    [ "$won" = "$SLOTS" ] || why+=("$won winners, expected $SLOTS")
    [ "$lost" = $((AGENTS - SLOTS)) ] || why+=("$lost losers, expected $((AGENTS - SLOTS))")
    [ "$(cut -f1 "$dir/won" | sort -un | wc -l)" = "$won" ] || why+=("two winners got the same slot")
    [ "$(cut -f1 "$dir/won" | sort -n | tr '\n' ' ')" = "$(seq 1 "$SLOTS" | tr '\n' ' ')" ] \
        || why+=("the winners' slots are not 1-$SLOTS: $(cut -f1 "$dir/won" | sort -n | tr '\n' ' ')")
    expect="$(sort "$dir/won")"
    if got="$(reg_claims)"; then
        [ "$got" = "$expect" ] || why+=("the registry's claims differ from the winners' (see $OUT/round-$r)")
    else
        why+=("the registry does not parse")
    fi
    envs="$(for i in $(seq 0 $((AGENTS - 1))); do
        f="${WTS[$i]}/.env.sandbox"
        [ -e "$f" ] && printf '%s\t%s\n' "$(stat -c %a "$f")" "${WTS[$i]}"
    done | sort)" || true
    [ "$envs" = "$(cut -f2 "$dir/won" | sed 's/^/600\t/' | sort)" ] \
        || why+=("env files (mode 600) are not exactly the winners' worktrees")
    if [ "${#why[@]}" -gt 0 ]; then
        verdict=WRONG
        BAD_ROUNDS=$((BAD_ROUNDS + 1))
        mkdir -p "$OUT/round-$r"
        cp "$dir"/* "$OUT/round-$r/" 2>/dev/null || true
        cp "$REG" "$OUT/round-$r/registry.json" 2>/dev/null || true
        printf '%s\n' "${why[@]}" >"$OUT/round-$r/why.txt"
        printf '%s: round %s WRONG:\n' "$ME" "$r" >&2
        printf '  %s\n' "${why[@]}" >&2
    fi
    rel="$(release_all)"
    rm -rf "$dir"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" \
        "$(ms_between "$t_open" "$t_end")" "$(ms_between "$t_open" "$t_last_start")" \
        "$won" "$lost" "$other" "$notes" "$verdict" "$rel" >>"$OUT/rounds.tsv"
    printf '  %-9s wall %7s ms   %s won, %s lost, %s other; %s waited >200 ms for the lock; %s\n' \
        "$r" "$(tail -n 1 "$OUT/rounds.tsv" | cut -f2)" "$won" "$lost" "$other" "$notes" "$verdict" >&2
}

# --- measure --------------------------------------------------------------------------
OTHER_CONTAINERS="$(docker ps -aq | wc -l)"
BUSY="$(cpu_busy)"
say "CPU busy before measuring: ${BUSY}%; the engine lists $OTHER_CONTAINERS container(s) (every claim lists them all)"
[ "$BUSY" = '?' ] || [ "$BUSY" -le 20 ] || say "warning: the machine is busy (${BUSY}%): figures will be inflated"

if [ "$WARMUP" -gt 0 ]; then
    say "warm-up: $WARMUP contended round(s), not counted"
    for w in $(seq 1 "$WARMUP"); do round "w$w"; done
fi
say "$RUNS contended round(s): $AGENTS worktrees claim at once, then every slot is released"
for r in $(seq 1 "$RUNS"); do round "$r"; done

# --- single processes (hyperfine -N) -----------------------------------------------------
Q_BIN="$(printf '%q' "$BIN")"
HF=(hyperfine -N --style basic --warmup "$HF_WARMUP" --runs "$HF_RUNS")
hf() { # dir, id, name, command, hyperfine options...
    local d="$1" id="$2" name="$3" cmd="$4"; shift 4
    say "$name"
    in_wt "$d" "${HF[@]}" "$@" -n "$name" --export-json "$OUT/$id.json" "$cmd" >&2 \
        || die "hyperfine failed for $name"
}
field() { jq -r ".$2" <<<"$1"; }

# A fresh claim each run: the prepare step releases the worktree's own slot
# (exit 0 also when it holds none), so every measured claim takes slot 1 anew.
j="$(in_wt "$SOLO" "$BIN" claim --format json)" || die "claim in $SOLO failed"
[ "$(field "$j" fresh) $(field "$j" slot)" = "true 1" ] || die "the first solo claim was not a fresh claim of slot 1: $j"
at0="$(jq -r '.slots["1"].claimed_at' "$REG")"
hf "$SOLO" fresh "claim (fresh; prepare: release)" "$Q_BIN claim --format json" --prepare "$Q_BIN release"
at1="$(jq -r '.slots["1"].claimed_at' "$REG")"
[ "$at1" != "$at0" ] || die "the fresh-claim runs did not claim anew (claimed_at unchanged: $at1)"
j="$(in_wt "$SOLO" "$BIN" claim --format json)" || die "claim in $SOLO failed"
[ "$(field "$j" fresh) $(field "$j" slot)" = "false 1" ] || die "re-claim in $SOLO was not idempotent: $j"
hf "$SOLO" again "claim (already held: idempotent)" "$Q_BIN claim --format json"
j="$(in_wt "$SOLO" "$BIN" claim --format json)" || die "claim in $SOLO failed after the idempotent runs"
[ "$(field "$j" fresh) $(field "$j" slot)" = "false 1" ] || die "solo lost its slot: $j"

# The loser's path without contention: agents 1-5 hold slots 2-6, agent 6 asks.
for i in 1 2 3 4 5; do
    in_wt "${WTS[$i]}" "$BIN" claim --format json >/dev/null || die "claim in ${WTS[$i]} failed"
done
rc=0; in_wt "${WTS[6]}" "$BIN" claim --format json >/dev/null 2>"$OUT/full.err" || rc=$?
{ [ "$rc" = 1 ] && grep -q 'no free slot' "$OUT/full.err"; } || die "claim on a full pool exited $rc, expected 1 (no free slot): $(cat "$OUT/full.err")"
hf "${WTS[6]}" full "claim (pool full: exit 1)" "$Q_BIN claim --format json" -i

hf "$SOLO" env "env" "$Q_BIN env"
hf "$SOLO" envjson "env --format json" "$Q_BIN env --format json"
hf "$SOLO" floor "docker-sandbox --version (process floor)" "$Q_BIN --version"
in_wt "$SOLO" "$BIN" env --format json | jq -e 'type == "object" and length > 0' >/dev/null \
    || die "env --format json did not print an object"
release_all >/dev/null

# --- summary ------------------------------------------------------------------------------
# "median p90 max min mean n" of numbers on stdin (p90: nearest rank).
dist() {
    sort -g | awk '{ v[NR] = $1; s += $1 }
        END {
            if (NR == 0) { print "- - - - - 0"; exit }
            m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
            k = int(0.9 * NR); if (k < 0.9 * NR) k++
            printf "%.1f %.1f %.1f %.1f %.1f %d\n", m, v[k], v[NR], v[1], s / NR, NR
        }'
}
drow() { # name, "median p90 max min mean n"
    local med p90 max min mean n
    read -r med p90 max min mean n <<<"$2"
    printf '| %s | %s ms | %s ms | %s ms | %s ms | %s ms | %s |\n' "$1" "$med" "$p90" "$max" "$min" "$mean" "$n"
}
measured() { awk -F'\t' '$1 !~ /^w/' "$1"; }
hf_row() { # id
    jq -r '.results[0] | [.command, .median, .mean, .stddev, .min, .max, (.times | length)] | @tsv' "$OUT/$1.json" |
        awk -F'\t' '{ printf "| %s | %.2f ms | %.2f ms ± %.2f | %.2f ms | %.2f ms | %d |\n", $1, $2 * 1000, $3 * 1000, $4 * 1000, $5 * 1000, $6 * 1000, $7 }'
}
WALL="$(measured "$OUT/rounds.tsv" | cut -f2 | dist)"
WALL_MED="${WALL%% *}"
MET="$(awk -v m="$WALL_MED" -v t="$TARGET_MS" 'BEGIN { print (m < t) ? "met" : "MISSED" }')"
GOOD_ROUNDS="$(measured "$OUT/rounds.tsv" | awk -F'\t' '$8 == "ok"' | wc -l)"
WARM_BAD="$(awk -F'\t' '$1 ~ /^w/ && $8 != "ok"' "$OUT/rounds.tsv" | wc -l)"
NOTES="$(measured "$OUT/procs.tsv" | awk -F'\t' '{ n += $8 } END { print n + 0 }')"
NOTE_ROUNDS="$(measured "$OUT/rounds.tsv" | awk -F'\t' '$7 > 0' | wc -l)"
# Which agents won: their rank in start order within the round (1 = first started).
RANKS="$(measured "$OUT/procs.tsv" | sort -t$'\t' -k1,1 -k6,6g | awk -F'\t' '
    $1 != r { r = $1; k = 0 } { k++; if ($4 == "won") print k }' | dist)"
read -r RANK_MED _ RANK_MAX RANK_MIN _ _ <<<"$RANKS"
EXCLUDES="$(grep -c '^/\.env\.sandbox$' "$WORK/repo/.git/info/exclude" || true)"
{
    echo "## bench/claim.sh: \`claim\` under contention, and \`env\`"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(machine_line)."
    echo "docker-sandbox $("$BIN" --version | awk '{ print $2 }') ($BIN). CPU busy before measuring: ${BUSY}%."
    echo "Pool \`$POOL\`: $SLOTS slots ($PROFILES), the default templates, ports $PORT_BASE+; no container is started"
    echo "(the engine lists $OTHER_CONTAINERS container(s) of other work, which every \`claim\` receives)."
    echo
    echo "### $AGENTS worktrees run \`claim --format json\` at once"
    echo
    echo "$RUNS rounds (+ $WARMUP warm-up). All $AGENTS processes wait on one gate and start together;"
    echo "between rounds every slot is released (\`release SLOT --force\`), so each round starts"
    echo "with $SLOTS free slots, no claim and no env file."
    echo
    echo "| Measure | Median | p90 | Max | Min | Mean | n |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
    drow "round wall time (gate opens to last exit)" "$WALL"
    drow "start spread (gate opens to last process started)" "$(measured "$OUT/rounds.tsv" | cut -f3 | dist)"
    drow "per process, all" "$(measured "$OUT/procs.tsv" | cut -f7 | dist)"
    drow "per process, winners (exit 0)" "$(measured "$OUT/procs.tsv" | awk -F'\t' '$4 == "won" { print $7 }' | dist)"
    drow "per process, losers (exit 1, no free slot)" "$(measured "$OUT/procs.tsv" | awk -F'\t' '$4 == "lost" { print $7 }' | dist)"
    drow "between rounds: $SLOTS × \`release N --force\`, in sequence" "$(measured "$OUT/rounds.tsv" | cut -f9 | dist)"
    echo
    echo "Outcome: **$GOOD_ROUNDS of $RUNS rounds correct** ($SLOTS exit 0 with distinct slots 1-$SLOTS and \`fresh\`,"
    echo "$((AGENTS - SLOTS)) exit 1 with \"no free slot\", the registry parses and holds exactly those $SLOTS claims,"
    echo "an env file (mode 600) in exactly the winners' worktrees)$([ "$WARMUP" = 0 ] || echo "; warm-up rounds wrong: $WARM_BAD")."
    echo "Processes that waited over 200 ms for the registry lock (its \"waiting for lock\" note):"
    echo "$NOTES of $((RUNS * AGENTS)), in $NOTE_ROUNDS of $RUNS rounds. Winners' rank in start order (1 = first"
    echo "to start): median $RANK_MED, min $RANK_MIN, max $RANK_MAX. \`/.env.sandbox\` lines in the shared"
    echo "\`.git/info/exclude\`: $EXCLUDES."
    echo
    echo "Goal (--check): median round wall time under $TARGET_MS ms: **$MET** ($WALL_MED ms)."
    echo
    echo "### Single processes (hyperfine -N, warm-up $HF_WARMUP, $HF_RUNS runs)"
    echo
    echo "| Case | Median | Mean ± σ | Min | Max | Runs |"
    echo "|---|---:|---:|---:|---:|---:|"
    for id in floor fresh again full env envjson; do hf_row "$id"; done
    echo
    echo "The fresh case's \`release\` (prepare) is not timed; \`claim (pool full)\` is the losers' path"
    echo "without contention."
} >"$OUT/summary.md"
echo
cat "$OUT/summary.md"
echo
say "per round: $OUT/rounds.tsv (round, wall ms, start spread ms, won, lost, other, lock notes, verdict, release ms)"
say "per process: $OUT/procs.tsv (round, agent, exit code, won/lost/OTHER, slot, start ms after the gate, ms, lock note)"
[ "$KEEP" = 0 ] || say "fixture: $WORK (repo, wt/agent-NN, wt/solo, home, state)"
if [ "$BAD_ROUNDS" -gt 0 ]; then
    die "$BAD_ROUNDS round(s) ended wrong (including warm-up): see $OUT/round-*/why.txt"
fi
if [ "$CHECK" = 1 ] && [ "$MET" != met ]; then
    die "goal missed: median round wall time $WALL_MED ms, target under $TARGET_MS ms"
fi
