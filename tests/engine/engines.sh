#!/usr/bin/env bash
# Extra Docker engines for the real-engine suite, each as if it were another
# host: its own network namespace with its own address, its own dockerd (and
# the containerd it manages), data root, bridge and cgroup parent.
#
#   bash tests/engine/engines.sh up      start both (a running one is kept)
#   bash tests/engine/engines.sh down    stop both, remove all they made
#   bash tests/engine/engines.sh stop N  stop engine N's dockerd only (for
#                                        "an engine went away" tests)
#   bash tests/engine/engines.sh start N start engine N's dockerd again
#
# Engine N (1 or 2) is `dse<N>`: namespace `dse<N>`, address 10.231.N.2 (the
# host's side of its veth pair is 10.231.N.1), listening on
# unix://$RUN/dse<N>/docker.sock, tcp://10.231.N.2:2375 and, through an sshd
# in its namespace, ssh://root@10.231.N.2. The docker contexts `dse<N>`,
# `dse<N>-tcp` and `dse<N>-ssh` are in the private docker config folder
# $RUN/docker (with compose v2 linked as its plugin); `ssh` there finds the
# key through $RUN/bin/ssh, which must come first on PATH for the ssh
# contexts. The suite's test images are loaded into each engine.
#
# It never touches the host engine, /etc, ~/.docker, ~/.ssh or the host's
# firewall. A second dockerd is only ever started inside its own namespace:
# started in the host's, it would delete the host engine's docker0 bridge.
#
# Environment: DOCKER_SANDBOX_TEST_ENGINES (default /tmp/docker-sandbox-engines)
# is $RUN; DOCKER_SANDBOX_TEST_CACHE (default ~/.cache/docker-sandbox-test)
# keeps the unpacked sshd. Needs root, dockerd, ip, nsenter, unshare and curl; the ssh part
# unpacks Debian's openssh-server (not installed) when no sshd is there.

set -euo pipefail

RUN=${DOCKER_SANDBOX_TEST_ENGINES:-/tmp/docker-sandbox-engines}
# Downloads kept between runs, as tests/engine/setup.sh keeps its own.
CACHE=${DOCKER_SANDBOX_TEST_CACHE:-$HOME/.cache/docker-sandbox-test}
IMAGES=("docker-sandbox-test/busybox:1" "docker-sandbox-test/postgres:1")
# The host's docker config (its compose plugin), before ours replaces it.
HOST_DOCKER_CONFIG=${DOCKER_CONFIG:-$HOME/.docker}
export DOCKER_CONFIG=$RUN/docker

log() { printf '[engines] %s\n' "$*" >&2; }
die() { printf '[engines] error: %s\n' "$*" >&2; exit 1; }

name_of() { echo "dse$1"; }
ip_of() { echo "10.231.$1.2"; }
host_ip_of() { echo "10.231.$1.1"; }

ping_engine() { curl -sf --max-time 2 --unix-socket "$RUN/$(name_of "$1")/docker.sock" http://x/_ping >/dev/null 2>&1; }

# The namespace and the veth pair of engine N.
network_up() {
  local n=$1 name; name=$(name_of "$n")
  [ -e "/run/netns/$name" ] && return 0
  ip netns add "$name"
  ip link add "${name}h" type veth peer name "${name}n"
  ip link set "${name}n" netns "$name"
  ip addr add "$(host_ip_of "$n")/24" dev "${name}h"
  ip link set "${name}h" up
  ip -n "$name" link set lo up
  ip -n "$name" addr add "$(ip_of "$n")/24" dev "${name}n"
  ip -n "$name" link set "${name}n" up
  ip -n "$name" route add default via "$(host_ip_of "$n")"
}

# dockerd of engine N, in its namespace, with a config file of its own (else
# it merges /etc/docker/daemon.json), explicit hosts (else it takes the host
# engine's socket), no TLS on tcp (else it sleeps 15 s on start) and a key
# path of its own (else both report the host engine's ID).
dockerd_start() {
  local n=$1 name dir; name=$(name_of "$n"); dir=$RUN/$name
  ping_engine "$n" && return 0
  mkdir -p "$dir/data" "$dir/exec"
  cat >"$dir/daemon.json" <<EOF
{
  "hosts": ["unix://$dir/docker.sock", "tcp://$(ip_of "$n"):2375"],
  "tls": false,
  "data-root": "$dir/data",
  "exec-root": "$dir/exec",
  "pidfile": "$dir/docker.pid",
  "deprecated-key-path": "$dir/key.json",
  "bip": "172.31.$n.1/24",
  "cgroup-parent": "/docker-$name",
  "log-driver": "json-file",
  "log-opts": {"max-size": "1m"}
}
EOF
  # nsenter, not `ip netns exec`: that one remounts /sys and hides cgroups.
  nsenter --net="/run/netns/$name" unshare --uts -- \
    sh -c 'hostname "$0"; exec dockerd --config-file "$1"' "$name" "$dir/daemon.json" \
    >>"$dir/dockerd.log" 2>&1 </dev/null &
  local pid=$! i
  for i in $(seq 600); do
    ping_engine "$n" && { log "$name: dockerd answers at $(ip_of "$n")"; return 0; }
    kill -0 "$pid" 2>/dev/null || { tail -20 "$dir/dockerd.log" >&2; die "$name: dockerd exited"; }
    sleep 0.1
  done
  die "$name: dockerd did not answer within 60 s (see $dir/dockerd.log)"
}

dockerd_stop() {
  local n=$1 dir pid i; dir=$RUN/$(name_of "$n")
  [ -s "$dir/docker.pid" ] || return 0
  pid=$(cat "$dir/docker.pid")
  kill -TERM "$pid" 2>/dev/null || return 0
  for i in $(seq 300); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}

# Stops engine N's sshd: its /run/docker.sock is a bind of the socket file
# that dockerd made, which a restarted dockerd replaces.
sshd_stop() {
  local n=$1 dir pid i; dir=$RUN/$(name_of "$n")
  [ -s "$dir/sshd.pid" ] || return 0
  pid=$(cat "$dir/sshd.pid")
  kill -TERM "$pid" 2>/dev/null || return 0
  for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  rm -f "$dir/sshd.pid"
}

# An sshd in engine N's namespace whose /run/docker.sock is that engine's,
# for the `ssh://` context.
sshd_start() {
  local n=$1 name dir sshd lib=""; name=$(name_of "$n"); dir=$RUN/$name
  if [ -s "$dir/sshd.pid" ] && kill -0 "$(cat "$dir/sshd.pid")" 2>/dev/null; then return 0; fi
  if [ -x /usr/sbin/sshd ]; then
    sshd=/usr/sbin/sshd
  else
    local root=$CACHE/sshroot
    if [ ! -x "$root/usr/sbin/sshd" ]; then
      mkdir -p "$CACHE/debs" "$root"
      (cd "$CACHE/debs" && { apt-get download openssh-server libwrap0 >/dev/null 2>&1 ||
        { apt-get update -qq && apt-get download openssh-server libwrap0 >/dev/null; }; }) ||
        die "cannot download Debian's openssh-server (apt-get download)"
      local deb
      for deb in "$CACHE"/debs/*.deb; do dpkg-deb -x "$deb" "$root"; done
    fi
    sshd=$root/usr/sbin/sshd
    lib=$root/usr/lib/x86_64-linux-gnu
  fi
  local keys=$RUN/ssh
  mkdir -p "$keys" && chmod 700 "$keys"
  [ -f "$keys/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -f "$keys/id_ed25519" -C docker-sandbox-test
  [ -f "$dir/ssh_host_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -f "$dir/ssh_host_ed25519" -C "$name"
  cp "$keys/id_ed25519.pub" "$dir/authorized_keys"
  cp /etc/passwd "$dir/passwd"
  getent passwd sshd >/dev/null || echo 'sshd:x:74:65534:privsep:/run/sshd:/usr/sbin/nologin' >>"$dir/passwd"
  cat >"$dir/sshd_config" <<EOF
ListenAddress $(ip_of "$n"):22
HostKey $dir/ssh_host_ed25519
PidFile $dir/sshd.pid
AuthorizedKeysFile $dir/authorized_keys
StrictModes no
UsePAM no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
MaxStartups 100:30:200
MaxSessions 100
EOF
  cat >"$dir/sshd-ns.sh" <<EOF
#!/bin/sh
set -e
mount --bind $dir/passwd /etc/passwd
mount -t tmpfs -o mode=755 tmpfs /run
mkdir -m 755 /run/sshd
touch /run/docker.sock && mount --bind $dir/docker.sock /run/docker.sock
export LD_LIBRARY_PATH=$lib
exec $sshd -D -e -f $dir/sshd_config
EOF
  chmod +x "$dir/sshd-ns.sh"
  rm -f "$dir/sshd.pid"
  nsenter --net="/run/netns/$name" unshare --mount --propagation private "$dir/sshd-ns.sh" \
    >>"$dir/sshd.log" 2>&1 </dev/null &
  echo "$(ip_of "$n") $(cut -d' ' -f1,2 "$dir/ssh_host_ed25519.pub")" >"$keys/known_hosts.$name"
  cat >"$keys/config.$name" <<EOF
Host $(ip_of "$n")
  User root
  IdentityFile $keys/id_ed25519
  IdentitiesOnly yes
  UserKnownHostsFile $keys/known_hosts.$name
  StrictHostKeyChecking yes
  BatchMode yes
  ConnectTimeout 10
EOF
  echo "Include $keys/config.*" >"$keys/config"
  mkdir -p "$RUN/bin"
  printf '#!/bin/sh\nexec /usr/bin/ssh -F %s "$@"\n' "$keys/config" >"$RUN/bin/ssh"
  chmod +x "$RUN/bin/ssh"
  local i
  for i in $(seq 100); do
    "$RUN/bin/ssh" "$(ip_of "$n")" true 2>/dev/null && return 0
    sleep 0.1
  done
  cat "$dir/sshd.log" >&2
  die "$name: ssh to $(ip_of "$n") does not work"
}

contexts() {
  local n=$1 name; name=$(name_of "$n")
  mkdir -p "$DOCKER_CONFIG/cli-plugins"
  # compose 1.29 with --context needs a config.json.
  [ -f "$DOCKER_CONFIG/config.json" ] || echo '{}' >"$DOCKER_CONFIG/config.json"
  local plugin
  plugin=$(docker --config "${HOST_DOCKER_CONFIG}" info --format \
    '{{range .ClientInfo.Plugins}}{{if eq .Name "compose"}}{{.Path}}{{end}}{{end}}' 2>/dev/null || true)
  [ -n "$plugin" ] && ln -sfn "$plugin" "$DOCKER_CONFIG/cli-plugins/docker-compose"
  docker context inspect "$name" >/dev/null 2>&1 ||
    docker context create "$name" --docker "host=unix://$RUN/$name/docker.sock" >/dev/null 2>&1 ||
    die "cannot create the docker context $name"
  docker context inspect "$name-tcp" >/dev/null 2>&1 ||
    docker context create "$name-tcp" --docker "host=tcp://$(ip_of "$n"):2375" >/dev/null 2>&1 ||
    die "cannot create the docker context $name-tcp"
  docker context inspect "$name-ssh" >/dev/null 2>&1 ||
    docker context create "$name-ssh" --docker "host=ssh://root@$(ip_of "$n")" >/dev/null 2>&1 ||
    die "cannot create the docker context $name-ssh"
}

# The suite's images, moved without a registry; only those missing.
images() {
  local n=$1 sock image; sock=unix://$RUN/$(name_of "$n")/docker.sock
  for image in "${IMAGES[@]}"; do
    docker -H "$sock" image inspect "$image" >/dev/null 2>&1 && continue
    docker --config "$HOST_DOCKER_CONFIG" image inspect "$image" >/dev/null 2>&1 ||
      die "image $image is missing on this host's engine: run bash tests/engine/setup.sh"
    docker --config "$HOST_DOCKER_CONFIG" save "$image" | docker -H "$sock" load -q >/dev/null
    log "$(name_of "$n"): loaded $image"
  done
}

# Everything of engine N, even after its dockerd was killed: only processes
# proven to be its own (pid files, its namespace, its cgroup) are stopped.
teardown() {
  local n=$1 name dir; name=$(name_of "$n"); dir=$RUN/$name
  if ping_engine "$n"; then
    local ids
    ids=$(docker -H "unix://$dir/docker.sock" ps -aq)
    [ -n "$ids" ] && docker -H "unix://$dir/docker.sock" rm -f $ids >/dev/null 2>&1 || true
  fi
  if [ -s "$dir/sshd.pid" ]; then kill -TERM "$(cat "$dir/sshd.pid")" 2>/dev/null || true; fi
  dockerd_stop "$n"
  if [ -e "/run/netns/$name" ]; then
    local ino p
    ino=$(stat -L -c %i "/run/netns/$name")
    for p in /proc/[0-9]*; do
      [ "$(readlink "$p/ns/net" 2>/dev/null)" = "net:[$ino]" ] && kill -KILL "${p#/proc/}" 2>/dev/null || true
    done
  fi
  local f c
  for f in /sys/fs/cgroup/docker-"$name"/*/cgroup.procs /sys/fs/cgroup/*/docker-"$name"/*/cgroup.procs; do
    [ -f "$f" ] && xargs -r kill -KILL <"$f" 2>/dev/null || true
  done
  sleep 0.2
  grep -F " $dir/" /proc/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  for c in /sys/fs/cgroup/docker-"$name" /sys/fs/cgroup/*/docker-"$name"; do
    [ -d "$c" ] && find "$c" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
  ip link del "${name}h" 2>/dev/null || true
  ip netns del "$name" 2>/dev/null || true
  for c in "$name" "$name-tcp" "$name-ssh"; do docker context rm -f "$c" >/dev/null 2>&1 || true; done
  rm -f "$RUN/ssh/config.$name" "$RUN/ssh/known_hosts.$name"
  rm -rf "$dir"
}

[ "$(id -u)" = 0 ] || die "extra engines need root (network namespaces, dockerd)"

case "${1:-}" in
  up)
    mkdir -p "$RUN" "$DOCKER_CONFIG"
    for n in 1 2; do
      network_up "$n"
      dockerd_start "$n"
      sshd_start "$n"
      contexts "$n"
      images "$n"
    done
    log "up: contexts dse1, dse2 (and -tcp, -ssh) in DOCKER_CONFIG=$DOCKER_CONFIG"
    ;;
  down)
    for n in 1 2; do teardown "$n"; done
    rm -rf "$RUN"
    log "down"
    ;;
  stop) dockerd_stop "${2:?engine number}" ;;
  start)
    # The sshd starts again too, binding the new dockerd's socket.
    dockerd_start "${2:?engine number}"
    sshd_stop "$2"
    sshd_start "$2"
    ;;
  *) die "usage: engines.sh up|down|stop N|start N" ;;
esac
