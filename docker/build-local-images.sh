#!/usr/bin/env bash
# Build perflab's two local images from Debian's packages, for machines whose Docker daemon
# cannot reach an image registry (CI here): a minimal Debian root made by debootstrap from the
# mirror apt already uses, `docker import`ed, then one image with PostgreSQL 15 and one with
# Redis, built on top of it with --network host.
#
#   docker/build-local-images.sh            # builds what changed (the Debian root is made once)
#   docker/build-local-images.sh --force    # rebuilds everything, from a new Debian root
#
# Then point the docker provider at them (it prints these two lines at the end):
#   export PERFLAB_PG_IMAGE=perflab-local/postgres:15-bookworm
#   export PERFLAB_REDIS_IMAGE=perflab-local/redis:7-bookworm
#
# Needs: root (debootstrap), docker, debootstrap. Prints how long each step took.
set -euo pipefail
cd "$(dirname "$0")"

BASE=perflab-local/debian:bookworm-minbase
PG=perflab-local/postgres:15-bookworm
REDIS=perflab-local/redis:7-bookworm
force=0
[ "${1:-}" = "--force" ] && force=1

# The Debian mirror apt is configured with: deb822 sources first, then the one-line format.
mirror() {
    local uri
    uri=$(grep -h -E '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null \
        | awk '{print $2}' | grep -v -E 'security|nodesource|google' | head -n1 || true)
    if [ -z "$uri" ]; then
        uri=$(grep -h -E '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
            | awk '{ for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) { print $i; exit } }' \
            | grep -v -E 'security' | head -n1 || true)
    fi
    echo "${uri:-http://deb.debian.org/debian}"
}

have() { docker image inspect "$1" >/dev/null 2>&1; }
now() { date +%s.%N; }
took() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }

if [ $force -eq 1 ] || ! have "$BASE"; then
    root=$(mktemp -d /tmp/perflab-debootstrap.XXXXXX)
    trap 'rm -rf "$root"' EXIT
    src=$(mirror)
    echo "debootstrap --variant=minbase bookworm from $src"
    t=$(now)
    debootstrap --variant=minbase bookworm "$root" "$src" >"$root.log" 2>&1 \
        || { tail -n 20 "$root.log"; rm -f "$root.log"; echo "debootstrap failed" >&2; exit 1; }
    rm -f "$root.log"
    # apt inside the image uses the same mirror; no recommends, no caches kept.
    echo "deb $src bookworm main" >"$root/etc/apt/sources.list"
    printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' >"$root/etc/apt/apt.conf.d/90perflab"
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    echo "  root: $(took "$t") ($(du -sh "$root" | cut -f1))"
    t=$(now)
    tar -C "$root" -c . | docker import - "$BASE" >/dev/null
    echo "  docker import $BASE: $(took "$t")"
    rm -rf "$root"
    trap - EXIT
fi

build() {
    local tag=$1 file=$2 log t
    t=$(now)
    log=$(mktemp)
    # Always built: Docker's layer cache makes an unchanged image a no-op. The legacy builder
    # (no buildx here) warns on stderr that it is deprecated: that stays in the log.
    local cache=()
    if [ $force -eq 1 ]; then cache=(--no-cache); fi
    docker build --network host "${cache[@]}" \
        --build-arg BASE="$BASE" -t "$tag" -f "$file" . >"$log" 2>&1 \
        || { tail -n 30 "$log"; rm -f "$log"; echo "docker build $tag failed" >&2; exit 1; }
    rm -f "$log"
    echo "  docker build $tag: $(took "$t")"
}
build "$PG" postgres.Dockerfile
build "$REDIS" redis.Dockerfile
# Layers of earlier builds that no tag uses any more.
docker image prune -f >/dev/null

echo "export PERFLAB_PG_IMAGE=$PG"
echo "export PERFLAB_REDIS_IMAGE=$REDIS"
