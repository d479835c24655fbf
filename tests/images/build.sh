#!/usr/bin/env bash
# Builds the images osmen's Docker tests run. The engine here has no registry, so both are
# made locally: `osmen-standin:test` from the project's own stand-in (a static binary in a
# scratch image) and `osmen-redis:test` from Debian's redis-tools package (Redis 7.0).
# An image is rebuilt only when its sources changed (a label holds their digest).
#   tests/images/build.sh [--force]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
force=${1:-}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

current_label() { # image -> value of osmen.source, or nothing
  docker image inspect -f '{{ index .Config.Labels "osmen.source" }}' "$1" 2>/dev/null || true
}

# --- stand-in --------------------------------------------------------------------------
src="$root/tests/standin/standin.rs"
digest=$( (sha256sum < "$src"; rustc --version) | sha256sum | cut -c1-16)
if [[ $force == --force || $(current_label osmen-standin:test) != "$digest" ]]; then
  mkdir -p "$work/standin"
  rustc --edition 2024 -O -C strip=symbols -C target-feature=+crt-static \
    --target x86_64-unknown-linux-gnu "$src" -o "$work/standin/standin"
  tar -C "$work/standin" -c standin | docker import \
    -c 'ENTRYPOINT ["/standin"]' -c 'CMD ["serve"]' -c 'EXPOSE 8080' \
    -c "LABEL osmen.source=$digest" - osmen-standin:test >/dev/null
  echo "built osmen-standin:test ($digest)"
fi

# --- redis, from Debian packages --------------------------------------------------------
digest=$(echo "redis-tools liblzf1 libjemalloc2 v1" | sha256sum | cut -c1-16)
if [[ $force == --force || $(current_label osmen-redis:test) != "$digest" ]]; then
  cd "$work"
  apt-get download redis-tools liblzf1 libjemalloc2 >/dev/null 2>&1 || {
    echo "apt-get download failed: run 'apt-get update' first" >&2; exit 1; }
  for d in ./*.deb; do dpkg-deb -x "$d" x; done
  rootfs="$work/redis-root"
  mkdir -p "$rootfs/usr/bin" "$rootfs/data" "$rootfs/tmp"
  # redis-check-rdb is the redis-server binary: it picks its role from argv[0].
  cp x/usr/bin/redis-check-rdb "$rootfs/usr/bin/redis-server"
  cp x/usr/bin/redis-cli "$rootfs/usr/bin/redis-cli"
  for bin in "$rootfs/usr/bin/redis-server" "$rootfs/usr/bin/redis-cli"; do
    LD_LIBRARY_PATH="$work/x/usr/lib/x86_64-linux-gnu" ldd "$bin" \
      | grep -o '/[^ ]*' | while read -r lib; do
        dest="$rootfs$lib"
        case $lib in "$work"/x/*) dest="$rootfs${lib#"$work"/x}" ;; esac
        mkdir -p "$(dirname "$dest")"
        cp -L "$lib" "$dest"
      done
  done
  tar -C "$rootfs" -c . | docker import \
    -c 'ENV PATH=/usr/bin:/bin' -c 'WORKDIR /data' -c 'EXPOSE 6379' \
    -c 'CMD ["redis-server", "--bind", "0.0.0.0", "--protected-mode", "no"]' \
    -c "LABEL osmen.source=$digest" - osmen-redis:test >/dev/null
  echo "built osmen-redis:test ($digest)"
fi
