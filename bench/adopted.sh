#!/usr/bin/env bash
# Benchmarks a pool that adopts a repository's own compose file, on the real
# engine: the first `up` (provision, compose's model, compose up, the gate)
# against the first `up` of a template pool of the same stack, the no-op `up`
# of a running slot (with strace: how many child processes it starts), and
# `adopt --dry-run`. Not a test: it measures, prints a table and checks one
# goal, the no-op `up` under 30 ms median with no child process.
#
# Usage: bench/adopted.sh [--rounds N] [--noop-runs N] [--pool NAME]
#                         [--port-base N] [--target-ms MS] [--no-build] [--check] [--keep]
#   --rounds N      first `up`s of each pool, each from a released slot (default 5)
#   --noop-runs N   no-op `up`s of the running slot (default 30)
#   --pool NAME     the adopted pool's name, also its folder (default benchadopt);
#                   the template pool is NAME-t
#   --port-base N   web at N+slot, the template pool's at N+100+slot (default 62800)
#   --target-ms MS  the goal for the no-op `up` median (default 30)
#   --check         exit 1 when the goal is missed
#   --no-build      use the existing target/release/docker-sandbox (or $BIN)
#   --keep          keep the fixture folder
#
# Needs: tests/engine/setup.sh run once (the local image, compose v2), strace.
# Every container, volume and network of both pools is removed at the end.
set -euo pipefail

ME=adopted.sh
ROUNDS=5
NOOP_RUNS=30
POOL=benchadopt
PORT_BASE=62800
TARGET_MS=30
BUILD=1
CHECK=0
KEEP=0
SLOTS=6
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) ROUNDS="$2"; shift ;;
        --noop-runs) NOOP_RUNS="$2"; shift ;;
        --pool) POOL="$2"; shift ;;
        --port-base) PORT_BASE="$2"; shift ;;
        --target-ms) TARGET_MS="$2"; shift ;;
        --no-build) BUILD=0 ;;
        --check) CHECK=1 ;;
        --keep) KEEP=1 ;;
        -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench/adopted.sh: unknown argument \`$1\` (see --help)" >&2; exit 2 ;;
    esac
    shift
done

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
need_pkg strace strace
build_bin
check_engine

WORK="$(mktemp -d "${TMPDIR:-/tmp}/bench-adopted.XXXXXX")"
ADOPTED="$WORK/$POOL"
TEMPLATED="$WORK/$POOL-t"
cleanup() {
    local d
    for d in "$ADOPTED" "$TEMPLATED"; do
        [ -d "$d" ] && (cd "$d" && run_in "$d" "$BIN" release --force >/dev/null 2>&1) || true
    done
    for p in $(seq 1 "$SLOTS"); do
        for name in "$POOL-slot-$p" "$POOL-t-slot-$p"; do
            ids="$(docker ps -aq --filter "label=com.docker.compose.project=$name")"
            # shellcheck disable=SC2086
            [ -z "$ids" ] || docker rm -f -v $ids >/dev/null 2>&1 || true
        done
    done
    [ "$KEEP" = 1 ] && say "kept $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT

# The stack: a web server with a fixed container name and a named volume, and
# a worker; as a compose file, and as the same stack in templates.
stack() { # web port
    cat <<EOF
services:
  web:
    image: docker-sandbox-test/busybox:1
    command: ["sh", "-c", "mkdir -p /www && echo hello > /www/index.html && exec httpd -f -p 8080 -h /www"]
    ports:
      - "127.0.0.1:$1:8080"
    volumes:
      - data:/data
  worker:
    image: docker-sandbox-test/busybox:1
    command: ["sleep", "100000"]
volumes:
  data:
EOF
}

run_in() { # dir, command...
    local dir="$1"; shift
    (cd "$dir" && env -u DOCKER_SANDBOX_CONFIG -u DOCKER_SANDBOX_COMPOSE -u DOCKER_SANDBOX_HOME \
        -u XDG_STATE_HOME -u COMPOSE_PROJECT_NAME -u COMPOSE_FILE \
        HOME="$WORK/home" DOCKER_CONFIG="${DOCKER_CONFIG:-$HOME/.docker}" NO_COLOR=1 "$@")
}

mkdir -p "$WORK/home" "$ADOPTED" "$TEMPLATED/sandbox"
stack "$PORT_BASE" >"$ADOPTED/compose.yaml"
cat >"$TEMPLATED/sandbox/docker-compose.yml.hbs" <<'EOF'
services:
  web:
    image: docker-sandbox-test/busybox:1
    command: ["sh", "-c", "mkdir -p /www && echo hello > /www/index.html && exec httpd -f -p 8080 -h /www"]
    ports:
      - "127.0.0.1:{{ports.web}}:8080"
    volumes:
      - data:/data
    labels:
{{#each labels}}
      {{@key}}: "{{this}}"
{{/each}}
  worker:
    image: docker-sandbox-test/busybox:1
    command: ["sleep", "100000"]
    labels:
{{#each labels}}
      {{@key}}: "{{this}}"
{{/each}}
volumes:
  data:
    labels:
{{#each labels}}
      {{@key}}: "{{this}}"
{{/each}}
EOF
printf 'SLOT_ID={{slot}}\nCOMPOSE_PROJECT_NAME={{project}}\n' >"$TEMPLATED/sandbox/env.sandbox.hbs"
slots=""
for i in $(seq 1 "$SLOTS"); do slots+="$i = \"light\""$'\n'; done
printf '[pool]\nname = "%s-t"\ntemplates = "sandbox"\n[slots]\n%s[profiles]\nlight = {}\n[ports]\nweb = [%s, 1]\n[[gate]]\ntcp = "web"\n' \
    "$POOL" "$slots" "$((PORT_BASE + 100))" >"$TEMPLATED/docker-sandbox.toml"
for d in "$ADOPTED" "$TEMPLATED"; do
    git -C "$d" init -q && git -C "$d" add . \
        && git -C "$d" -c user.name=b -c user.email=b@example.invalid commit -qm stack
done
run_in "$TEMPLATED" "$BIN" provision >/dev/null

ms_of() { # command... : prints the wall time in ms
    local a b
    a=$(now_us); "$@" >/dev/null 2>&1 || die "failed: $*"; b=$(now_us)
    echo $(((b - a) / 1000))
}

say "first up, $ROUNDS rounds each (released in between)"
: >"$WORK/first-adopted"; : >"$WORK/first-templated"
for _ in $(seq 1 "$ROUNDS"); do
    ms_of run_in "$ADOPTED" "$BIN" up >>"$WORK/first-adopted"
    run_in "$ADOPTED" "$BIN" release >/dev/null
    ms_of run_in "$TEMPLATED" "$BIN" up >>"$WORK/first-templated"
    run_in "$TEMPLATED" "$BIN" release >/dev/null
done

say "no-op up, $NOOP_RUNS runs"
run_in "$ADOPTED" "$BIN" up >/dev/null
: >"$WORK/noop"
for _ in $(seq 1 "$NOOP_RUNS"); do ms_of run_in "$ADOPTED" "$BIN" up >>"$WORK/noop"; done
run_in "$ADOPTED" strace -f -qq -e trace=execve -o "$WORK/strace" "$BIN" up >/dev/null 2>&1
children=$(($(grep -c 'execve(' "$WORK/strace") - 1))

dry="-"
if run_in "$ADOPTED" "$BIN" adopt --help >/dev/null 2>&1; then
    : >"$WORK/dry"
    for _ in $(seq 1 "$NOOP_RUNS"); do ms_of run_in "$ADOPTED" "$BIN" adopt --dry-run >>"$WORK/dry"; done
    dry="$(stats <"$WORK/dry")"
fi

echo
echo "machine: $(machine_line)"
printf '%-36s %s\n' "what (ms)" "median mean min max sd n"
printf '%-36s %s\n' "first up, adopted compose file" "$(stats <"$WORK/first-adopted")"
printf '%-36s %s\n' "first up, templates, same stack" "$(stats <"$WORK/first-templated")"
printf '%-36s %s\n' "no-op up, adopted" "$(stats <"$WORK/noop")"
printf '%-36s %s\n' "adopt --dry-run" "$dry"
echo "child processes of a no-op up: $children"
median="$(stats <"$WORK/noop" | cut -d' ' -f1)"
if awk -v m="$median" -v t="$TARGET_MS" 'BEGIN { exit !(m < t) }' && [ "$children" = 0 ]; then
    echo "goal met: no-op up median ${median} ms < ${TARGET_MS} ms, no child process"
else
    echo "goal missed: no-op up median ${median} ms (goal < ${TARGET_MS} ms), $children child process(es)"
    [ "$CHECK" = 1 ] && exit 1
fi
