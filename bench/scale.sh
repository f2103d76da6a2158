#!/usr/bin/env bash
# Benchmarks many slots up at once on one engine: a pool of N slots (default
# 99) of a small stack with two networks each (a web server on `front` and
# `back`, a sleeper on `back`), claimed by N worktrees and brought up a few at
# a time, every gate passed (a TCP check of the slot's port), then `slots`
# with N live slots timed with hyperfine, then all released with nothing left.
# Not a test: it measures and prints; the goal (`slots` with 99 live slots
# under 10 ms median) is checked with --check only.
#
# With --engine-subnets it shows why the pool has subnets of its own: the same
# pool with `[pool] subnets = "engine"` (the engine chooses each network's
# subnet, as compose does by itself), brought up slot after slot on a private
# dockerd of its own (in a network namespace, so the shared engine's address
# pools are never exhausted), until the engine runs out of address pools. It
# prints the first slot that failed and compose's message.
#
# Usage: bench/scale.sh [--slots N] [--at-once N] [--subnets RANGE] [--runs N]
#                       [--pool NAME] [--port-base N] [--target-ms MS]
#                       [--engine-subnets] [--no-build] [--check] [--keep]
#                       [--leave-up]
#   --slots N        slots in the pool, all up at once (default 99)
#   --at-once N      `up`s (and `release`s) at a time (default 4)
#   --subnets RANGE  the pool's range (default 10.211.0.0/16, apart from the
#                    default 10.213.0.0/16 and the engine suite's 10.101-190.x)
#   --runs N         hyperfine runs of `slots` (default 100)
#   --pool NAME      pool name, the compose projects' prefix (default benchscale)
#   --port-base N    web at N+slot (default 20400: 20401-20499 lie between the
#                    it-tests' and the engine suite's ports)
#   --target-ms MS   the goal for `slots` with N live slots (default 10)
#   --engine-subnets the exhaustion demo above, instead of the benchmark
#   --check          exit 1 when the goal is missed
#   --no-build       use the existing target/release/docker-sandbox (or $BIN)
#   --keep           keep the fixture folder
#   --leave-up       stop after timing `slots`, the slots left up (for profiling;
#                    release them with the printed command)
#
# Needs: tests/engine/setup.sh run once (the local image, compose v2),
# hyperfine and jq (installed with apt-get when run as root); --engine-subnets
# needs root, dockerd, ip and nsenter. Every container, volume and network of
# the pool is removed at the end.
set -euo pipefail

ME=scale.sh
SLOTS=99
AT_ONCE=4
SUBNETS=10.211.0.0/16
RUNS=100
POOL=benchscale
PORT_BASE=20400
TARGET_MS=10
ENGINE_SUBNETS=0
BUILD=1
CHECK=0
KEEP=0
LEAVE_UP=0
while [ $# -gt 0 ]; do
    case "$1" in
        --slots) SLOTS="$2"; shift ;;
        --at-once) AT_ONCE="$2"; shift ;;
        --subnets) SUBNETS="$2"; shift ;;
        --runs) RUNS="$2"; shift ;;
        --pool) POOL="$2"; shift ;;
        --port-base) PORT_BASE="$2"; shift ;;
        --target-ms) TARGET_MS="$2"; shift ;;
        --engine-subnets) ENGINE_SUBNETS=1 ;;
        --no-build) BUILD=0 ;;
        --check) CHECK=1 ;;
        --keep) KEEP=1 ;;
        --leave-up) LEAVE_UP=1; KEEP=1 ;;
        -h|--help) sed -n '2,40p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench/scale.sh: unknown argument \`$1\` (see --help)" >&2; exit 2 ;;
    esac
    shift
done

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
need_pkg jq jq
[ "$ENGINE_SUBNETS" = 1 ] || need_pkg hyperfine hyperfine
build_bin
check_engine

WORK="$(mktemp -d "${TMPDIR:-/tmp}/bench-scale.XXXXXX")"
REPO="$WORK/repo"
NS=dsbench
ENGINE_DIR="$WORK/engine"

# The plugin, with the bench's HOME and state folder (and, for the demo, its
# private engine).
ds() {
    HOME="$WORK/home" DOCKER_SANDBOX_HOME="$WORK/state" NO_COLOR=1 \
        DOCKER_SANDBOX_COMPOSE=plugin "$BIN" "$@"
}

engine_up() {
    [ "$(id -u)" = 0 ] || die "--engine-subnets starts a dockerd of its own: run it as root"
    command -v dockerd >/dev/null && command -v nsenter >/dev/null && command -v ip >/dev/null \
        || die "--engine-subnets needs dockerd, nsenter and ip"
    [ -e "/run/netns/$NS" ] && die "the network namespace $NS exists: another run is going on, or remove it (ip netns del $NS)"
    say "starting a private dockerd in network namespace $NS"
    ip netns add "$NS"
    ip link add "${NS}h" type veth peer name "${NS}n"
    ip link set "${NS}n" netns "$NS"
    ip addr add 10.232.0.1/24 dev "${NS}h"
    ip link set "${NS}h" up
    ip -n "$NS" link set lo up
    ip -n "$NS" addr add 10.232.0.2/24 dev "${NS}n"
    ip -n "$NS" link set "${NS}n" up
    mkdir -p "$ENGINE_DIR/data" "$ENGINE_DIR/exec"
    cat >"$ENGINE_DIR/daemon.json" <<EOF
{
  "hosts": ["unix://$ENGINE_DIR/docker.sock"],
  "data-root": "$ENGINE_DIR/data",
  "exec-root": "$ENGINE_DIR/exec",
  "pidfile": "$ENGINE_DIR/docker.pid",
  "bip": "172.31.250.1/24",
  "cgroup-parent": "/docker-$NS",
  "log-driver": "json-file"
}
EOF
    # Its own namespace: a second dockerd in the host's would take over docker0.
    nsenter --net="/run/netns/$NS" dockerd --config-file "$ENGINE_DIR/daemon.json" \
        >>"$ENGINE_DIR/dockerd.log" 2>&1 </dev/null &
    local i
    for i in $(seq 300); do
        docker -H "unix://$ENGINE_DIR/docker.sock" version >/dev/null 2>&1 && break
        sleep 0.2
    done
    docker -H "unix://$ENGINE_DIR/docker.sock" version >/dev/null 2>&1 \
        || { tail -20 "$ENGINE_DIR/dockerd.log" >&2; die "the private dockerd did not start"; }
    docker save docker-sandbox-test/busybox:1 | docker -H "unix://$ENGINE_DIR/docker.sock" load -q >/dev/null
    export DOCKER_HOST="unix://$ENGINE_DIR/docker.sock"
}

engine_down() {
    [ -s "$ENGINE_DIR/docker.pid" ] && {
        local pid i; pid=$(cat "$ENGINE_DIR/docker.pid")
        kill -TERM "$pid" 2>/dev/null || true
        for i in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$pid" 2>/dev/null || true
    }
    ip link del "${NS}h" 2>/dev/null || true
    ip netns del "$NS" 2>/dev/null || true
    # Mounts dockerd left under its data root.
    { grep -o " $ENGINE_DIR[^ ]*" /proc/mounts || true; } | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
}

cleanup() {
    local p
    if [ "$LEAVE_UP" = 1 ]; then
        say "left up: HOME=$WORK/home DOCKER_SANDBOX_HOME=$WORK/state $BIN slots (in $REPO);"
        say "release: for t in $WORK/t*; do (cd \$t && HOME=$WORK/home DOCKER_SANDBOX_HOME=$WORK/state $BIN release); done; rm -rf $WORK"
        return
    fi
    for p in $(projects); do
        docker ps -aq --filter "label=com.docker.compose.project=$p" | xargs -r docker rm -f -v >/dev/null 2>&1 || true
        docker network ls -q --filter "label=com.docker.compose.project=$p" | xargs -r docker network rm >/dev/null 2>&1 || true
    done
    [ "$ENGINE_SUBNETS" = 1 ] && engine_down
    unset DOCKER_HOST
    if [ "$KEEP" = 1 ]; then say "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

[ "$ENGINE_SUBNETS" = 1 ] && engine_up
[ "$ENGINE_SUBNETS" = 1 ] && SUBNETS=engine

# The stack: the engine suite's scale test's (tests/engine/scale.rs).
TEMPLATES="$ROOT/tests/engine/fixtures/templates-scale"
mkdir -p "$WORK/home" "$REPO"
{
    echo "# Generated by bench/$ME: $SLOTS slots of two services and two networks."
    echo '[pool]'
    echo "name = \"$POOL\""
    echo "templates = \"$TEMPLATES\""
    echo "subnets = \"$SUBNETS\""
    echo 'gate_timeout = 120'
    echo
    echo '[slots]'
    for i in $(seq 1 "$SLOTS"); do echo "$i = \"light\""; done
    echo
    echo '[profiles]'
    echo 'light = {}'
    echo
    echo '[ports]'
    echo "web = [$PORT_BASE, 1]"
    echo
    echo '[[gate]]'
    echo 'tcp = "web"'
} >"$REPO/docker-sandbox.toml"
git -C "$REPO" init -q -b main
git -C "$REPO" add docker-sandbox.toml
git -C "$REPO" -c user.name=bench -c user.email=bench@localhost commit -q -m pool
(cd "$REPO" && ds provision >/dev/null) || die "provision failed"
say "making $SLOTS worktrees"
for i in $(seq 1 "$SLOTS"); do
    git -C "$REPO" worktree add -q -b "t$i" "$WORK/t$i" 2>/dev/null || die "git worktree add t$i failed"
done

if [ "$ENGINE_SUBNETS" = 1 ]; then
    say "up --no-wait slot after slot, the engine choosing each network's subnet"
    failed=""
    for i in $(seq 1 "$SLOTS"); do
        if ! (cd "$WORK/t$i" && ds up --no-wait >"$WORK/up-$i.log" 2>&1); then
            failed=$i
            break
        fi
    done
    if [ -z "$failed" ]; then
        echo "all $SLOTS slots came up: the engine did not run out of address pools"
    else
        slot=$(sed -n 's/^Claimed slot \([0-9]*\).*/\1/p' "$WORK/up-$failed.log")
        echo "worktree $failed (slot ${slot:-?}) failed after $((failed - 1)) slots with $((2 * (failed - 1))) networks were up:"
        grep -i -m3 -e 'address pool' -e 'error' "$WORK/up-$failed.log" | sed 's/^/    /'
    fi
    say "releasing"
    for i in $(seq 1 "$SLOTS"); do (cd "$WORK/t$i" && ds release >/dev/null 2>&1) || true; done
    left=$(docker network ls -q --filter "label=org.docker-sandbox.pool=$POOL" | wc -l)
    echo "networks of the pool left: $left"
    exit 0
fi

busy=$(cpu_busy)
say "CPU busy before the run: ${busy}%"
say "up: $SLOTS slots, $AT_ONCE at a time"
start=$(now_us)
seq 1 "$SLOTS" | xargs -P "$AT_ONCE" -I{} sh -c \
    'cd "$0/t$1" && HOME="$0/home" DOCKER_SANDBOX_HOME="$0/state" NO_COLOR=1 DOCKER_SANDBOX_COMPOSE=plugin "$2" up >"$0/up-$1.log" 2>&1 || { echo "up in t$1 failed:"; tail -5 "$0/up-$1.log"; exit 255; }' \
    "$WORK" {} "$BIN" || die "an up failed (see above)"
up_us=$(($(now_us) - start))

json=$(cd "$REPO" && ds slots --format json)
running=$(jq '[.slots[] | select(.status == "running" and .claimed_by != null)] | length' <<<"$json")
[ "$(jq .live <<<"$json")" = true ] || die "slots did not ask the engine"
[ "$running" = "$SLOTS" ] || die "slots shows $running running slots, not $SLOTS"
networks=$(docker network ls -q --filter "label=org.docker-sandbox.pool=$POOL" | wc -l)

say "hyperfine: slots with $SLOTS live slots"
(cd "$REPO" && HOME="$WORK/home" DOCKER_SANDBOX_HOME="$WORK/state" NO_COLOR=1 \
    hyperfine -N --warmup 10 --runs "$RUNS" --export-json "$WORK/slots.json" \
    "$BIN slots" "$BIN slots --format json" >/dev/null)
median_ms() { jq -r ".results[$1].median * 1000 | . * 100 | round / 100" "$WORK/slots.json"; }
slots_ms=$(median_ms 0)
slots_json_ms=$(median_ms 1)

echo "slots with $SLOTS live slots: $slots_ms ms median (--format json: $slots_json_ms ms)"
[ "$LEAVE_UP" = 1 ] && exit 0

say "release: $SLOTS slots, $AT_ONCE at a time"
start=$(now_us)
seq 1 "$SLOTS" | xargs -P "$AT_ONCE" -I{} sh -c \
    'cd "$0/t$1" && HOME="$0/home" DOCKER_SANDBOX_HOME="$0/state" NO_COLOR=1 DOCKER_SANDBOX_COMPOSE=plugin "$2" release >/dev/null 2>&1 || { echo "release in t$1 failed"; exit 255; }' \
    "$WORK" {} "$BIN" || die "a release failed"
release_us=$(($(now_us) - start))
left=$(leftovers)

cat <<EOF

| $SLOTS slots, $AT_ONCE at a time (CPU busy before: ${busy}%) | figure |
|---|---|
| all up, every gate passed | $((up_us / 1000000)).$(((up_us / 100000) % 10)) s ($((up_us / SLOTS / 1000)) ms a slot) |
| networks of the pool up at once | $networks |
| \`slots\`, $SLOTS live slots (median) | $slots_ms ms |
| \`slots --format json\`, $SLOTS live slots (median) | $slots_json_ms ms |
| all released | $((release_us / 1000000)).$(((release_us / 100000) % 10)) s |
| left behind | ${left:-nothing} |
EOF

[ -z "$left" ] || die "left behind: $left"
if [ "$CHECK" = 1 ] && awk -v m="$slots_ms" -v t="$TARGET_MS" 'BEGIN { exit !(m > t) }'; then
    die "\`slots\` with $SLOTS live slots: $slots_ms ms median, over the goal of $TARGET_MS ms"
fi
