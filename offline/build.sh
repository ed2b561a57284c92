#!/usr/bin/env bash
# Builds local stand-ins for every public image (and the docker compose v2
# plugin) on a machine that reaches no container registry, then records the
# image overrides in ../.images.env, which the Makefile, compose and the tests
# read by themselves. Idempotent: anything that already exists is skipped.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
# shellcheck source=offline/versions.env
source "$here/versions.env"
work="${OFFLINE_WORK_DIR:-$root/.offline-work}"
mkdir -p "$work"

log() { printf '[offline-images] %s\n' "$*"; }
image_exists() { docker image inspect "$1" >/dev/null 2>&1; }
# A stand-in built from a Dockerfile directory carries a hash of that directory in the label
# org.mlstack.source-hash; an image under the same tag from other sources is stale.
source_hash() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16); }
label_of() { docker image inspect --format "{{ index .Config.Labels \"$2\" }}" "$1" 2>/dev/null; }

# Runs "$@" and prints how long it took under the name $1.
timed() {
  local name="$1"; shift
  local start=$SECONDS
  "$@"
  log "built $name in $((SECONDS - start)) s"
}

# go_module_source MODULE VERSION DEST: copies a module's source out of the
# read-only module cache (go install refuses modules with replace directives).
go_module_source() {
  local dir
  dir=$(GOFLAGS=-mod=mod go mod download -json "$1@$2" \
        | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("Dir") or sys.exit(d.get("Error")))')
  rm -rf "$3"
  cp -r "$dir" "$3"
  chmod -R u+w "$3"
}

build_python_base() {
  local rootfs="$work/python-rootfs"
  rm -rf "$rootfs"
  debootstrap --variant=minbase \
    --include=python3,python3-venv,python-is-python3,ca-certificates \
    bookworm "$rootfs" "$DEBIAN_MIRROR" >"$work/debootstrap.log" 2>&1 \
    || { tail -20 "$work/debootstrap.log"; return 1; }
  # TLS to PyPI passes a proxy whose CA only this machine's bundle carries.
  cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | docker import \
    --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
    --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    - "$PYTHON_STANDIN" >/dev/null
  rm -rf "$rootfs"
}

build_mysql() {
  docker build -q --build-arg "BASE_IMAGE=$PYTHON_STANDIN" \
    --build-arg "SOURCE_HASH=$(source_hash "$here/mysql")" \
    -t "$MYSQL_STANDIN" "$here/mysql" >/dev/null
}

build_go_binary() {  # MODULE VERSION PACKAGE OUTPUT [EXTRA_LDFLAGS]
  local src="$work/src-$(basename "$4")"
  go_module_source "$1" "$2" "$src"
  (cd "$src" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w ${5:-}" -o "$4" "$3")
  rm -rf "$src"
}

build_minio() {
  mkdir -p "$work/minio"
  [ -x "$work/minio/minio" ] || build_go_binary github.com/minio/minio "$MINIO_GO_VERSION" . "$work/minio/minio"
  [ -x "$work/minio/mc" ] || build_go_binary github.com/minio/mc "$MC_GO_VERSION" . "$work/minio/mc"
  cp "$here/minio/Dockerfile" "$work/minio/Dockerfile"
  docker build -q --build-arg "BASE_IMAGE=$PYTHON_STANDIN" -t "$MINIO_STANDIN" "$work/minio" >/dev/null
}

build_compose_plugin() {
  local plugin_dir=/usr/local/lib/docker/cli-plugins
  mkdir -p "$plugin_dir"
  # Tools such as the SageMaker SDK look for "v2" in `docker compose version`.
  build_go_binary github.com/docker/compose/v2 "$COMPOSE_VERSION" ./cmd "$plugin_dir/docker-compose" \
    "-X github.com/docker/compose/v2/internal.Version=$COMPOSE_VERSION"
}

command -v docker >/dev/null || { echo "offline-images: docker CLI not found" >&2; exit 1; }
docker info >/dev/null 2>&1 || { echo "offline-images: no Docker engine answers; start dockerd first" >&2; exit 1; }

if image_exists "$PYTHON_STANDIN"; then log "exists: $PYTHON_STANDIN"; else
  command -v debootstrap >/dev/null || { echo "offline-images: debootstrap missing: apt-get install -y debootstrap" >&2; exit 1; }
  timed "$PYTHON_STANDIN" build_python_base
fi
if [ "$(label_of "$MYSQL_STANDIN" org.mlstack.source-hash)" = "$(source_hash "$here/mysql")" ]; then
  log "exists: $MYSQL_STANDIN"
else
  timed "$MYSQL_STANDIN" build_mysql
fi
if image_exists "$MINIO_STANDIN"; then log "exists: $MINIO_STANDIN"; else timed "$MINIO_STANDIN" build_minio; fi
if docker compose version 2>/dev/null | grep -q ' v2'; then log "exists: docker compose $(docker compose version --short)"; else
  timed "docker compose plugin $COMPOSE_VERSION" build_compose_plugin
fi

cat >"$root/.images.env" <<ENV
# Written by \`make offline-images\`: local stand-ins for public images that no
# registry here can serve. Delete this file to use the public images again.
PYTHON_BASE_IMAGE=$PYTHON_STANDIN
MYSQL_IMAGE=$MYSQL_STANDIN
MINIO_IMAGE=$MINIO_STANDIN
ENV
log "overrides recorded in .images.env"
