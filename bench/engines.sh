#!/usr/bin/env bash
# Benchmarks slots on several Docker engines: the two extra engines of the
# engine suite (tests/engine/engines.sh: dse1 and dse2, each a dockerd in a
# network namespace of its own at 10.231.N.2, as if it were another host) and
# the local one. Not a test: it measures, prints a table and checks one goal.
#
#  1. `slots` with live status over three engines: a 3-slot pool with engines
#     local, dse1 (through its tcp context `dse1-tcp`) and dse2 (its unix
#     socket context `dse2`, address 10.231.2.2), `max_slots = 1` each; three
#     worktrees each `up --engine NAME` one slot. hyperfine `slots` and `slots
#     --format json` (goal: median under 20 ms), and strace: one connection
#     to each engine, no child process (the contexts are read from docker's
#     context store and asked over the engine API). For comparison: the same
#     with dse1 through `dse1-ssh` (the docker CLI over ssh), one `docker ps`
#     through that context, and `slots` of a one-engine pool (local only, one
#     slot up), measured first, in a state folder of its own.
#  2. `up` on an extra engine against `up` locally: rounds in ABBA order of
#     `up` (to ready: compose up -d, then the gate, an HTTP check of the
#     slot's port on the engine's address) then `down --volumes` of the local
#     slot and of the dse1 slot (tcp context); medians, phases, and the ratio.
#
# Usage: bench/engines.sh [--runs N] [--warmup N] [--slow-runs N] [--rounds N]
#                         [--pause S] [--target-ms MS] [--pool NAME]
#                         [--port-base N] [--no-build] [--check] [--keep]
#   --runs N        hyperfine runs of each `slots` case (default 100)
#   --warmup N      unmeasured runs first (default 10)
#   --slow-runs N   hyperfine runs of the slow cases: through `dse1-ssh`, and
#                   the port probe `up` runs on another engine (default 10)
#   --rounds N      rounds of part 2; each times one `up` and one `down
#                   --volumes` on local and on dse1, in ABBA order (default 5)
#   --pause S       seconds of rest before each timed `up` (default 1)
#   --target-ms MS  median goal for `slots` over three engines (default 20)
#   --pool NAME     pool name, also the compose projects' prefix (default benchengines)
#   --port-base N   api N+slot, db N+100+slot (default 64000)
#   --check         exit 1 when a goal is missed (a median, or the strace checks)
#   --no-build      use the existing target/release/docker-sandbox (or $BIN)
#   --keep          keep the fixture folder (repos, worktrees, HOME, state)
#
# Needs root (the extra engines), tests/engine/setup.sh run once (the local
# images, compose v2), hyperfine, jq, strace, curl. The extra engines are
# started with `bash tests/engine/engines.sh up` when they are not up, and
# stopped at the end (`engines.sh down`) only then: engines that were up are
# left up (the engine suite shares them). Every container, volume and network
# of the pool is removed from all three engines at the end, also on failure or
# Ctrl-C. Results go to a new folder under ${TMPDIR:-/tmp}.
set -euo pipefail

ME=engines.sh
RUNS=100
WARMUP=10
SLOW_RUNS=10
ROUNDS=5
PAUSE=1
TARGET_MS=20
POOL=benchengines
PORT_BASE=64000
BUILD=1
CHECK=0
KEEP=0
SLOTS=3
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) RUNS="$2"; shift ;;
        --warmup) WARMUP="$2"; shift ;;
        --slow-runs) SLOW_RUNS="$2"; shift ;;
        --rounds) ROUNDS="$2"; shift ;;
        --pause) PAUSE="$2"; shift ;;
        --target-ms) TARGET_MS="$2"; shift ;;
        --pool) POOL="$2"; shift ;;
        --port-base) PORT_BASE="$2"; shift ;;
        --no-build) BUILD=0 ;;
        --check) CHECK=1 ;;
        --keep) KEEP=1 ;;
        -h|--help) sed -n '2,45p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench/engines.sh: unknown argument \`$1\` (see --help)" >&2; exit 2 ;;
    esac
    shift
done
for v in RUNS SLOW_RUNS ROUNDS PORT_BASE; do
    [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || { echo "bench/engines.sh: --$(tr 'A-Z_' 'a-z-' <<<"$v") must be a positive number" >&2; exit 2; }
done
[[ "$WARMUP" =~ ^[0-9]+$ ]] || { echo "bench/engines.sh: --warmup must be a number" >&2; exit 2; }

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# say, die, need_pkg, cpu_busy, now_us, build_bin, check_engine, leftovers and
# preflight (local engine), stats, machine_line, install_cleanup.
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

[ "$(id -u)" = 0 ] || die "the extra engines need root (network namespaces, dockerd): run it as root"
need_pkg hyperfine hyperfine
need_pkg jq jq
need_pkg strace strace
need_pkg curl curl
need_pkg ss iproute2
need_pkg git git
hyperfine -N --runs 1 true >/dev/null 2>&1 || die "this hyperfine has no -N; hyperfine 1.13 or later is needed"
build_bin
check_engine

# --- the extra engines ------------------------------------------------------------
RUN="${DOCKER_SANDBOX_TEST_ENGINES:-/tmp/docker-sandbox-engines}"
ENGINES_SH="$ROOT/tests/engine/engines.sh"
ENGINES_CONFIG="$RUN/docker"
IMAGE=docker-sandbox-test/busybox:1
ping_extra() { curl -sf --max-time 2 --unix-socket "$RUN/dse$1/docker.sock" http://x/_ping >/dev/null 2>&1; }
# Engine N answers, its three contexts exist, and it has the fixture's image.
extra_ready() {
    local c
    ping_extra "$1" || return 1
    for c in "dse$1" "dse$1-tcp" "dse$1-ssh"; do
        DOCKER_CONFIG="$ENGINES_CONFIG" docker context inspect "$c" >/dev/null 2>&1 || return 1
    done
    [ -x "$RUN/bin/ssh" ] || return 1
    docker -H "unix://$RUN/dse$1/docker.sock" image inspect "$IMAGE" >/dev/null 2>&1
}
WERE_UP=0
for n in 1 2; do ping_extra "$n" && WERE_UP=$((WERE_UP + 1)); done
# One engine up and not the other: a test has probably stopped it for a
# while (engines.sh stop N); starting it would upset that test.
[ "$WERE_UP" != 1 ] || die "one extra engine answers and the other does not (a test stopping it?): wait, or start it with bash tests/engine/engines.sh start N"
STARTED_ENGINES=0
if ! { extra_ready 1 && extra_ready 2; }; then
    [ "$WERE_UP" = 2 ] || STARTED_ENGINES=1
    say "starting the extra engines: bash tests/engine/engines.sh up"
    # With this shell's docker config (the compose plugin, the images), as the suite does.
    env -u DOCKER_HOST -u DOCKER_CONTEXT bash "$ENGINES_SH" up >&2 </dev/null \
        || die "bash tests/engine/engines.sh up failed"
    if ! { extra_ready 1 && extra_ready 2; }; then die "the extra engines are not ready after engines.sh up"; fi
else
    say "the extra engines dse1 and dse2 are up: they are left up at the end"
fi
# Every docker call from here (the script's and the plugin's) sees the
# engines' contexts; the local engine stays the default context. The ssh
# contexts need the `ssh` of $RUN/bin (it finds the key).
DOCKER_CONFIG_DIR="$ENGINES_CONFIG"
export DOCKER_CONFIG="$ENGINES_CONFIG"
export PATH="$RUN/bin:$PATH"
unset DOCKER_HOST DOCKER_CONTEXT
LOCAL_SOCK=/var/run/docker.sock
DSE1_TCP=10.231.1.2:2375
DSE2_SOCK="$RUN/dse2/docker.sock"

TMP="${TMPDIR:-/tmp}"
# Canonical paths: claims are keyed by the worktree's canonical top folder.
WORK="$(cd "$(mktemp -d "$TMP/docker-sandbox-bench-engines-work.XXXXXX")" && pwd -P)"
OUT="$(mktemp -d "$TMP/docker-sandbox-bench-engines.XXXXXX")"
STATE="$WORK/state"

# What extra engine N holds of the pool's projects (by compose label and by name).
leftovers_on() { # context
    local p
    for p in $(projects); do
        docker --context "$1" ps -a --filter "label=com.docker.compose.project=$p" --format "container {{.Names}}"
        docker --context "$1" ps -a --filter "name=^${p}-" --format "container {{.Names}}"
        docker --context "$1" volume ls --filter "label=com.docker.compose.project=$p" --format "volume {{.Name}}"
        docker --context "$1" volume ls --filter "name=^${p}_" --format "volume {{.Name}}"
        docker --context "$1" network ls --filter "label=com.docker.compose.project=$p" --format "network {{.Name}}"
        docker --context "$1" network ls --filter "name=^${p}_" --format "network {{.Name}}"
    done 2>/dev/null | sort -u
}
remove_on() { # context: everything of the pool's projects there, by label
    local p ids
    # shellcheck disable=SC2086
    for p in $(projects); do
        ids="$(docker --context "$1" ps -aq --filter "label=com.docker.compose.project=$p" 2>/dev/null)"
        [ -z "$ids" ] || docker --context "$1" rm -f -v $ids >/dev/null 2>&1 || true
        ids="$(docker --context "$1" volume ls -q --filter "label=com.docker.compose.project=$p" 2>/dev/null)"
        [ -z "$ids" ] || docker --context "$1" volume rm -f $ids >/dev/null 2>&1 || true
        ids="$(docker --context "$1" network ls -q --filter "label=com.docker.compose.project=$p" 2>/dev/null)"
        [ -z "$ids" ] || docker --context "$1" network rm $ids >/dev/null 2>&1 || true
    done
}

# lib.sh's on_exit runs this first, then takes the pool down on the local
# engine and checks it; a failing hook makes the exit status 1. Here: release
# every slot (the plugin takes each stack down on its engine), remove what is
# left on the extra engines by label, check them, then stop the engines if
# this run started them.
on_exit_hook() {
    local ok=0 s c left
    if [ "${POOL_OWNED:-0}" = 1 ]; then
        # Through tcp, not ssh, whatever the last case left in the pool file.
        [ ! -f "$WORK/pool-tcp.toml" ] || cp "$WORK/pool-tcp.toml" "$WORK/repo/docker-sandbox.toml"
        if [ -f "$STATE/registry.json" ]; then
            for s in $(seq 1 "$SLOTS"); do
                in_fix "$BIN" release "$s" --force >>"$OUT/release.log" 2>&1 || true
            done
        fi
        for c in dse1 dse2; do
            remove_on "$c"
            left="$(leftovers_on "$c")"
            if [ -n "$left" ]; then
                printf '%s: LEFT BEHIND on engine %s:\n%s\n' "$ME" "$c" "$left" >&2
                ok=1
            else
                say "engine $c clean: nothing of pool \`$POOL\`"
            fi
        done
    fi
    if [ "$STARTED_ENGINES" = 1 ]; then
        say "stopping the extra engines this run started: bash tests/engine/engines.sh down"
        env -u DOCKER_CONFIG bash "$ENGINES_SH" down >&2 </dev/null || ok=1
    fi
    return "$ok"
}
install_cleanup

# Nothing of the pool on any engine, no listening port in our range here.
for c in dse1 dse2; do
    left="$(leftovers_on "$c")"
    [ -z "$left" ] || die "engine $c already holds resources of pool \`$POOL\` (another run?):
$left
remove them, or pick another pool name with --pool"
done
preflight

# --- fixture ----------------------------------------------------------------------
# The several-engines tests' stack (tests/engine/fixtures/templates-engines):
# one busybox httpd answering /slot with the slot's number, a volume, a
# network; its port is published on SANDBOX_HOST_IP (all interfaces on another
# engine, whose loopback reaches no one). The gate: an HTTP check of that port
# on the engine's address.
TEMPLATES="$ROOT/tests/engine/fixtures/templates-engines"
[ -f "$TEMPLATES/docker-compose.yml.hbs" ] || die "no fixture templates in $TEMPLATES"
GIT=(git -c user.name=bench -c user.email=bench@localhost -c init.defaultBranch=main)
pool_file() { # engines table (may be empty)
    echo "# Generated by bench/$ME: a $SLOTS-slot pool of the several-engines fixture stack."
    echo '[pool]'
    echo "name = \"$POOL\""
    echo "templates = \"$TEMPLATES\""
    # Its own range, apart from the other benchmarks' and the engine suite's.
    echo 'subnets = "10.218.0.0/16"'
    echo 'gate_timeout = 60'
    echo
    echo '[slots]'
    for i in $(seq 1 "$SLOTS"); do echo "$i = \"light\""; done
    echo
    echo '[ports]'
    echo "api = [$PORT_BASE, 1]"
    echo "db = [$((PORT_BASE + 100)), 1]"
    echo
    echo '[[gate]]'
    echo 'http = "api"'
    echo 'path = "/slot"'
    echo 'status = 200'
    printf '%s' "$1"
}
engines_table() { # context of dse1
    cat <<EOF

[engines.local]
max_slots = 1

[engines.dse1]
context = "$1"
max_slots = 1

[engines.dse2]
context = "dse2"
address = "10.231.2.2"
max_slots = 1
EOF
}
make_repo() { # dir, pool file text
    mkdir -p "$1"
    printf '%s\n' "$2" >"$1/docker-sandbox.toml"
    (cd "$1" && "${GIT[@]}" init -q && "${GIT[@]}" add docker-sandbox.toml && "${GIT[@]}" commit -q -m "bench pool") \
        || die "could not make the fixture repo $1"
}
mkdir -p "$WORK/home"
pool_file "$(engines_table dse1-tcp)" >"$WORK/pool-tcp.toml"
pool_file "$(engines_table dse1-ssh)" >"$WORK/pool-ssh.toml"
pool_file '' >"$WORK/pool-one.toml"
cp "$WORK"/pool-*.toml "$OUT/"

# The plugin in a folder, with the fixture's HOME and a state folder
# (lib.sh's in_fix is the same for $WORK/repo and $STATE).
in_dir() { # dir, state, command...
    local d="$1" st="$2"; shift 2
    (cd "$d" && env -u DOCKER_SANDBOX_CONFIG -u DOCKER_SANDBOX_COMPOSE \
        -u COMPOSE_PROJECT_NAME -u COMPOSE_FILE \
        HOME="$WORK/home" DOCKER_SANDBOX_HOME="$st" NO_COLOR=1 "$@")
}

Q_BIN="$(printf '%q' "$BIN")"
HF=(hyperfine -N --style basic)
bench() { # dir, state, id, name, runs, warmup, command
    local d="$1" st="$2" id="$3" name="$4" runs="$5" warm="$6" cmd="$7"
    say "$name"
    in_dir "$d" "$st" "${HF[@]}" --warmup "$warm" --runs "$runs" -n "$name" \
        --export-json "$OUT/$id.json" "$cmd" >&2 || die "hyperfine failed for $name"
}
# Checks `slots --format json` in DIR: every slot claimed is running on its engine.
check_live() { # dir, state, want ("engine slot" lines, sorted), label
    local json got
    json="$(in_dir "$1" "$2" "$BIN" slots --format json 2>"$OUT/slots-$4.err")" \
        || { cat "$OUT/slots-$4.err" >&2; die "$4: slots failed"; }
    echo "$json" >"$OUT/slots-$4.json"
    [ "$(jq .live <<<"$json")" = true ] || die "$4: slots did not get live status (live=false)"
    got="$(jq -r '.slots[] | select(.status == "running") | "\(.engine) \(.slot)"' <<<"$json" | sort)"
    [ "$got" = "$3" ] || die "$4: running slots are
${got:-none}
expected
$3
(see $OUT/slots-$4.json)"
    ! grep -q 'warning' "$OUT/slots-$4.err" || die "$4: slots warned: $(cat "$OUT/slots-$4.err")"
}

BUSY="$(cpu_busy)"
say "CPU busy before measuring: ${BUSY}%"
[ "$BUSY" = '?' ] || [ "$BUSY" -le 20 ] || say "warning: the machine is busy (${BUSY}%): figures will be inflated"

# --- 1a. one engine ---------------------------------------------------------------
# The same pool with no [engines]: its own repo and state folder, one slot up on
# the local engine, then released before the three-engine pool starts (the
# projects have the same names).
say "one-engine pool: one slot up on the local engine"
make_repo "$WORK/one" "$(cat "$WORK/pool-one.toml")"
in_dir "$WORK/one" "$WORK/state-one" "$BIN" provision >"$OUT/provision-one.log" 2>&1 \
    || { cat "$OUT/provision-one.log" >&2; die "provision (one engine) failed"; }
in_dir "$WORK/one" "$WORK/state-one" "$BIN" up >"$OUT/up-one.log" 2>&1 \
    || { tail -n 30 "$OUT/up-one.log" >&2; die "up (one engine) failed"; }
check_live "$WORK/one" "$WORK/state-one" "local 1" one
bench "$WORK/one" "$WORK/state-one" floor "baseline: docker-sandbox --version" "$RUNS" "$WARMUP" "$Q_BIN --version"
bench "$WORK/one" "$WORK/state-one" one "slots, one engine (local), 1 slot up" "$RUNS" "$WARMUP" "$Q_BIN slots"
in_dir "$WORK/one" "$WORK/state-one" "$BIN" release >"$OUT/release-one.log" 2>&1 \
    || { cat "$OUT/release-one.log" >&2; die "release (one engine) failed"; }
[ -z "$(leftovers)" ] || die "the one-engine slot left something behind: $(leftovers)"

# --- 1b. three engines ------------------------------------------------------------
say "three-engine pool: local, dse1 (dse1-tcp), dse2 (dse2, unix socket); 3 worktrees each up one slot"
make_repo "$WORK/repo" "$(cat "$WORK/pool-tcp.toml")"
in_fix "$BIN" provision >"$OUT/provision.log" 2>&1 || { cat "$OUT/provision.log" >&2; die "provision failed"; }
ENGINES=(local dse1 dse2)
for e in "${ENGINES[@]}"; do
    "${GIT[@]}" -C "$WORK/repo" worktree add -q --detach "$WORK/wt-$e" >/dev/null 2>&1 \
        || die "git worktree add wt-$e failed"
done
# All three at once, as three agents would.
pids=()
for e in "${ENGINES[@]}"; do
    in_dir "$WORK/wt-$e" "$STATE" "$BIN" up --engine "$e" >"$OUT/up-first-$e.log" 2>&1 &
    pids+=($!)
done
i=0
for e in "${ENGINES[@]}"; do
    wait "${pids[$i]}" || { tail -n 30 "$OUT/up-first-$e.log" >&2; die "up --engine $e failed"; }
    i=$((i + 1))
done
declare -A SLOT_OF
for e in "${ENGINES[@]}"; do
    # A held claim: `claim` only reads the registry.
    claim_json="$(in_dir "$WORK/wt-$e" "$STATE" "$BIN" claim --format json 2>>"$OUT/claim.log")" \
        || die "claim in wt-$e failed (see $OUT/claim.log)"
    [ "$(jq -r '.engine // "local"' <<<"$claim_json")" = "$e" ] || die "the claim of wt-$e is not on $e: $claim_json"
    SLOT_OF[$e]="$(jq -r .slot <<<"$claim_json")"
done
WANT="$(for e in "${ENGINES[@]}"; do echo "$e ${SLOT_OF[$e]}"; done | sort)"
check_live "$WORK/repo" "$STATE" "$WANT" three
# Each stack answers on its engine's address (the slot's number), and the
# extra engines' not on this host's loopback.
for e in "${ENGINES[@]}"; do
    s="${SLOT_OF[$e]}"
    port=$((PORT_BASE + s))
    case "$e" in local) host=127.0.0.1 ;; *) host="10.231.${e#dse}.2" ;; esac
    body="$(curl -sf --max-time 5 "http://$host:$port/slot")" || die "slot $s on $e: nothing answers at $host:$port"
    [ "$body" = "$s" ] || die "slot $s on $e: $host:$port answered \`$body\`"
    if [ "$e" != local ] && curl -sf --max-time 2 -o /dev/null "http://127.0.0.1:$port/slot"; then
        die "slot $s on $e answers on 127.0.0.1:$port"
    fi
done
N_LOCAL="$(docker ps -q | wc -l)"
N_DSE1="$(docker --context dse1 ps -q | wc -l)"
N_DSE2="$(docker --context dse2 ps -q | wc -l)"
say "up: local slot ${SLOT_OF[local]}, dse1 slot ${SLOT_OF[dse1]}, dse2 slot ${SLOT_OF[dse2]}; running containers: local $N_LOCAL, dse1 $N_DSE1, dse2 $N_DSE2"

# strace: connections to each engine, threads, child processes.
# trace id args... -> "connects local dse1 dse2 inet_other execs processes threads"
trace_counts() {
    local id="$1"; shift
    in_fix strace -f -qq -e trace=connect,execve,fork,vfork,clone,clone3 \
        -o "$OUT/strace-$id.txt" "$BIN" "$@" >/dev/null 2>&1 || die "strace of \`$*\` ($id) failed"
    local f="$OUT/strace-$id.txt" c l d1 d2 e p t
    c="$(grep -c ' connect(' "$f" || true)"
    l="$(grep -c "connect(.*sun_path=\"$LOCAL_SOCK\"" "$f" || true)"
    d1="$(grep -c "connect(.*sin_port=htons(${DSE1_TCP##*:}), sin_addr=inet_addr(\"${DSE1_TCP%:*}\")" "$f" || true)"
    d2="$(grep -c "connect(.*sun_path=\"$DSE2_SOCK\"" "$f" || true)"
    e="$(grep -c ' execve(' "$f" || true)"
    # A process is a fork, a vfork or a clone without CLONE_THREAD; threads have it.
    p="$(grep -E ' (fork|vfork|clone3?)\(' "$f" | grep -cv 'CLONE_THREAD' || true)"
    t="$(grep -E ' clone3?\(' "$f" | grep -c 'CLONE_THREAD' || true)"
    echo "$c $l $d1 $d2 $e $p $t"
}
STRACE_OK=1
strace_rows=()
strace_case() { # id, expect (yes: one connection to each engine, no child), args...
    local id="$1" expect="$2"; shift 2
    local c l d1 d2 e p t verdict=-
    read -r c l d1 d2 e p t <<<"$(trace_counts "$id" "$@")"
    if [ "$expect" = yes ]; then
        verdict=ok
        if ! { [ "$c" = 3 ] && [ "$l" = 1 ] && [ "$d1" = 1 ] && [ "$d2" = 1 ] && [ "$e" = 1 ] && [ "$p" = 0 ]; }; then
            verdict=FAILED
            STRACE_OK=0
        fi
    fi
    # One execve is the plugin itself.
    strace_rows+=("| $id | $c | $l | $d1 | $d2 | $((e - 1)) | $p | $t | $verdict |")
    say "strace $id: $c connect(s): local $l, dse1 tcp $d1, dse2 socket $d2; $((e - 1)) child execve, $p process(es) made, $t thread(s): $verdict"
}
strace_case "slots (dse1-tcp)" yes slots
strace_case "slots --format json (dse1-tcp)" yes slots --format json
in_fix strace -f -qq -c -o "$OUT/strace-c-three.txt" "$BIN" slots >/dev/null 2>&1 || true
SYSCALLS="$(awk '$NF == "total" { print $4 }' "$OUT/strace-c-three.txt")"
# Where the time goes in one run: every call with its time and duration.
in_fix strace -f -qq -tt -T -o "$OUT/strace-tt-three.txt" "$BIN" slots >/dev/null 2>&1 || true

bench "$WORK/repo" "$STATE" three "slots, three engines (dse1 via tcp)" "$RUNS" "$WARMUP" "$Q_BIN slots"
bench "$WORK/repo" "$STATE" three-json "slots --format json, three engines (dse1 via tcp)" "$RUNS" "$WARMUP" "$Q_BIN slots --format json"

# The same pool with dse1 through ssh: the docker CLI, over ssh.
cp "$WORK/pool-ssh.toml" "$WORK/repo/docker-sandbox.toml"
check_live "$WORK/repo" "$STATE" "$WANT" three-ssh
strace_case "slots (dse1-ssh)" no slots
bench "$WORK/repo" "$STATE" three-ssh "slots, three engines (dse1 via ssh)" "$SLOW_RUNS" 1 "$Q_BIN slots"
bench "$WORK/repo" "$STATE" ssh-ps "docker --context dse1-ssh ps -a" "$SLOW_RUNS" 1 "docker --context dse1-ssh ps -a"
bench "$WORK/repo" "$STATE" tcp-ps "docker --context dse1-tcp ps -a" "$RUNS" "$WARMUP" "docker --context dse1-tcp ps -a"
cp "$WORK/pool-tcp.toml" "$WORK/repo/docker-sandbox.toml"

# --- 2. up on an extra engine against up locally --------------------------------
say "taking the three slots down (down --volumes; the claims are kept)"
for e in "${ENGINES[@]}"; do
    in_dir "$WORK/wt-$e" "$STATE" "$BIN" down --volumes >>"$OUT/down.log" 2>&1 || die "down --volumes on $e failed (see $OUT/down.log)"
done
ctx_of() { case "$1" in local) echo default ;; *) echo "$1" ;; esac; }
ms() { # from_us to_us -> milliseconds with one decimal, or - if a mark is missing
    if [ -n "${1:-}" ] && [ -n "${2:-}" ]; then
        awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) / 1000 }'
    else
        echo -
    fi
}
# One timed `up` then `down --volumes` of engine E's slot; appends
# "round engine up_ms down_ms to_compose compose gate" to rounds.tsv.
run_up() { # round, engine
    local r="$1" e="$2" wt="$WORK/wt-$2" t0 t1 d0 d1 rc=0 stamp="$OUT/up-$2-$1.stamps" n
    n="$(docker --context "$(ctx_of "$e")" ps -aq --filter "label=com.docker.compose.project=$POOL-slot-${SLOT_OF[$e]}" | wc -l)"
    [ "$n" = 0 ] || die "round $r: $n container(s) of slot ${SLOT_OF[$e]} still on $e before the start"
    sleep "$PAUSE"
    t0="$(now_us)"
    in_dir "$wt" "$STATE" "$BIN" up >>"$OUT/up-$e.log" 2> >(while IFS= read -r l; do
        printf '%s\t%s\n' "${EPOCHREALTIME/[.,]/}" "$l"; done >"$stamp") || rc=$?
    t1="$(now_us)"
    wait $! 2>/dev/null || true
    cut -f2- "$stamp" >>"$OUT/up-$e.log"
    [ "$rc" = 0 ] || { tail -n 30 "$OUT/up-$e.log" >&2; die "round $r: up on $e exited $rc"; }
    d0="$(now_us)"
    in_dir "$wt" "$STATE" "$BIN" down --volumes >>"$OUT/down.log" 2>&1 || die "round $r: down --volumes on $e failed (see $OUT/down.log)"
    d1="$(now_us)"
    local compose_at gate_at
    compose_at="$(awk -F'\t' '/^[0-9]+\tStarting slot/ { print $1; exit }' "$stamp")"
    gate_at="$(awk -F'\t' '/^[0-9]+\tWaiting for slot/ { print $1; exit }' "$stamp")"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$e" "$(ms "$t0" "$t1")" "$(ms "$d0" "$d1")" \
        "$(ms "$t0" "$compose_at")" "$(ms "$compose_at" "$gate_at")" "$(ms "$gate_at" "$t1")" >>"$OUT/rounds.tsv"
    printf '  round %-3s up on %-6s %8s ms   (down --volumes %s ms)\n' "$r" "$e" "$(ms "$t0" "$t1")" "$(ms "$d0" "$d1")" >&2
}
# What `up`'s port check on another engine costs (not locally, where a bind
# says whether a port is free): a throwaway container in its host's network
# namespace that reads the host's listeners and routes
# (src/engine/placement.rs, probe_host). `up` runs it over the engine API on
# a tcp or unix context; the docker CLI's way, timed alone here, is what it
# does on an ssh context, and the image list what it asks first there.
bench "$WORK/repo" "$STATE" probe-images "docker --context dse1-tcp image ls (the CLI's image list)" "$SLOW_RUNS" 1 \
    "docker --context dse1-tcp image ls --format {{.Repository}}:{{.Tag}}"
bench "$WORK/repo" "$STATE" probe-run "docker --context dse1-tcp run --rm --network host (the probe, through the CLI)" "$SLOW_RUNS" 1 \
    "docker --context dse1-tcp run --rm --network host --entrypoint cat $IMAGE /proc/net/tcp /proc/net/tcp6 /proc/net/udp /proc/net/udp6"
BUSY2="$(cpu_busy)"
say "CPU busy before the rounds: ${BUSY2}%"
: >"$OUT/rounds.tsv"
say "$ROUNDS round(s), ABBA order (odd rounds local first, even rounds dse1 first), ${PAUSE}s rest before each up"
for r in $(seq 1 "$ROUNDS"); do
    if [ $((r % 2)) = 1 ]; then run_up "$r" local; run_up "$r" dse1; else run_up "$r" dse1; run_up "$r" local; fi
done

# Where the time of one `up` goes, by the processes it starts: one `up` on
# each engine under strace (which slows every process it follows), then down.
# children file -> "| start | took | command |" rows, the plugin itself last.
children() {
    awk '$3 ~ /^execve\(/ {
            if (!t0) { t0 = $2; me = $1; next }
            if ($1 in start) next
            start[$1] = $2; order[++k] = $1
            line = $0; sub(/^[^[]*\[/, "", line); sub(/\].*/, "", line)
            gsub(/"/, "", line); gsub(/, /, " ", line)
            n = split(line, w, " "); sub(/.*\//, "", w[1]); cmd = w[1]
            for (i = 2; i <= n && i <= 8; i++) cmd = cmd " " w[i]
            if (n > 8 || length(cmd) > 100) cmd = substr(cmd, 1, 100) " ..."
            argv[$1] = cmd
        }
        / \+\+\+ exited/ { end[$1] = $2 }
        END {
            for (i = 1; i <= k; i++) {
                p = order[i]
                took = (p in end) ? sprintf("%.0f ms", (end[p] - start[p]) * 1000) : "?"
                printf "| %.0f ms | %s | `%s` |\n", (start[p] - t0) * 1000, took, argv[p]
            }
            if (me in end) printf "| 0 ms | %.0f ms | the whole `up` |\n", (end[me] - t0) * 1000
        }' "$1"
}
for e in local dse1; do
    say "one \`up\` on $e under strace: the processes it starts"
    in_dir "$WORK/wt-$e" "$STATE" strace -f -q -ttt -s 200 -e trace=execve -o "$OUT/strace-up-$e.txt" "$BIN" up \
        >>"$OUT/up-$e.log" 2>&1 || die "up on $e under strace failed (see $OUT/up-$e.log)"
    in_dir "$WORK/wt-$e" "$STATE" "$BIN" down --volumes >>"$OUT/down.log" 2>&1 || die "down --volumes on $e failed (see $OUT/down.log)"
    children "$OUT/strace-up-$e.txt" >"$OUT/children-$e.md"
done

# --- summary ----------------------------------------------------------------------
hf() { jq -r '.results[0].median * 1000 * 100 | round / 100' "$OUT/$1.json"; }
hf_row() { # id
    jq -r '.results[0] | [.command, .median, .mean, .stddev, .min, .max, (.times | length)] | @tsv' "$OUT/$1.json" |
        awk -F'\t' '{ printf "| %s | %.2f ms | %.2f ms ± %.2f | %.2f ms | %.2f ms | %d |\n", $1, $2 * 1000, $3 * 1000, $4 * 1000, $5 * 1000, $6 * 1000, $7 }'
}
col() { awk -F'\t' -v e="$1" -v c="$2" '$2 == e && $c != "-" { print $c }' "$OUT/rounds.tsv"; }
row() { # name, "median mean min max sd n"
    local med mean min max sd n
    read -r med mean min max sd n <<<"$2"
    printf '| %s | %s ms | %s ms ± %s | %s ms | %s ms | %s |\n' "$1" "$med" "$mean" "$sd" "$min" "$max" "$n"
}
MET=met
for id in three three-json; do
    awk -v m="$(hf "$id")" -v t="$TARGET_MS" 'BEGIN { exit !(m < t) }' || MET=MISSED
done
UP_LOCAL="$(col local 3 | stats)"
UP_DSE1="$(col dse1 3 | stats)"
RATIO="$(awk -v a="${UP_DSE1%% *}" -v b="${UP_LOCAL%% *}" 'BEGIN { printf "%.3f", a / b }')"
{
    echo "## bench/engines.sh: slots on three engines"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(machine_line)."
    echo "Extra engines: dse1 and dse2 (tests/engine/engines.sh, Docker $(docker --context dse1 version -f '{{.Server.Version}}' 2>/dev/null || echo '?'), each in its own network namespace),"
    echo "$([ "$STARTED_ENGINES" = 1 ] && echo 'started by this run' || echo 'already up'). CPU busy before measuring: ${BUSY}%."
    echo "Pool of $SLOTS slots, one up on each engine (1 container each); running containers: local $N_LOCAL, dse1 $N_DSE1, dse2 $N_DSE2."
    echo "hyperfine -N, warm-up $WARMUP, $RUNS runs ($SLOW_RUNS runs, warm-up 1, through ssh)."
    echo
    echo "| Case | Median | Mean ± σ | Min | Max | n |"
    echo "|---|---:|---:|---:|---:|---:|"
    for id in floor one three three-json three-ssh tcp-ps ssh-ps; do hf_row "$id"; done
    echo
    echo "Goal: \`slots\` over three engines under $TARGET_MS ms median (table and JSON): **$MET**."
    echo "Three engines against one: +$(awk -v a="$(hf three)" -v b="$(hf one)" 'BEGIN { printf "%.2f", a - b }') ms; dse1 through ssh against tcp: $(awk -v a="$(hf three-ssh)" -v b="$(hf three)" 'BEGIN { printf "%.0f", a / b }')×."
    echo
    echo "strace (\`-f\`) of one run: connect calls, to the local socket, to dse1's tcp://$DSE1_TCP, to dse2's socket;"
    echo "child execve (other than the plugin's own), processes made (fork, or clone without CLONE_THREAD), threads:"
    echo
    echo "| Command | connect | local | dse1 tcp | dse2 socket | child execve | processes | threads | |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---|"
    printf '%s\n' "${strace_rows[@]}"
    echo
    echo "System calls of one \`slots\` over three engines (strace -c): ${SYSCALLS:-?}."
    echo
    echo "## \`up\` on an extra engine (dse1, tcp context) against \`up\` locally"
    echo
    echo "$ROUNDS rounds, ABBA order, ${PAUSE}s rest before each \`up\`; each \`up\` from a slot that is down"
    echo "(its claim held), to ready (the gate: an HTTP check of the slot's port on the engine's address)."
    echo "CPU busy before the rounds: ${BUSY2}%."
    echo
    echo "| Case | Median | Mean ± σ | Min | Max | n |"
    echo "|---|---:|---:|---:|---:|---:|"
    row "up, local" "$UP_LOCAL"
    row "up, dse1 (tcp)" "$UP_DSE1"
    row "down --volumes, local" "$(col local 4 | stats)"
    row "down --volumes, dse1 (tcp)" "$(col dse1 4 | stats)"
    row "up, local: start to \`compose up -d\`" "$(col local 5 | stats)"
    row "up, dse1: start to \`compose up -d\`" "$(col dse1 5 | stats)"
    row "up, local: \`compose up -d\`" "$(col local 6 | stats)"
    row "up, dse1: \`compose up -d\`" "$(col dse1 6 | stats)"
    row "up, local: gate, then exit" "$(col local 7 | stats)"
    row "up, dse1: gate, then exit" "$(col dse1 7 | stats)"
    echo
    echo "Ratio of medians, up on dse1 / up locally: **$RATIO**."
    echo
    echo "The port probe through the docker CLI, by itself (hyperfine -N, $SLOW_RUNS runs):"
    echo
    echo "| Case | Median | Mean ± σ | Min | Max | n |"
    echo "|---|---:|---:|---:|---:|---:|"
    hf_row probe-images
    hf_row probe-run
    for e in local dse1; do
        echo
        echo "Processes one \`up\` on $e starts (strace -f, which slows each): start after \`up\`'s own, and how long each ran:"
        echo
        echo "| Start | Took | Command |"
        echo "|---:|---:|---|"
        cat "$OUT/children-$e.md"
    done
} >"$OUT/summary.md"
echo
cat "$OUT/summary.md"
echo
say "hyperfine JSON, strace logs, per-round figures (rounds.tsv: round, engine, up ms, down ms, 3 phases of up): $OUT"
if [ "$CHECK" = 1 ]; then
    [ "$MET" = met ] || die "goal missed: a \`slots\` median over three engines is over $TARGET_MS ms"
    [ "$STRACE_OK" = 1 ] || die "strace check failed: see $OUT/strace-*.txt"
fi
