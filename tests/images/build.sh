#!/usr/bin/env bash
# Builds the images osmen's Docker tests run. The engine here has no registry, so all are
# made locally: `osmen-standin:test` from the project's own stand-in (a static binary in a
# scratch image), `osmen-redis:test` from Debian's redis-tools package (Redis 7.0),
# `osmen-nginx:test` from Debian's nginx (the balancer in front of gateway replicas),
# `osmen-shell:test` from Debian's busybox-static (a container with a shell) and
# `osmen-postgres:test` from Debian's postgresql-15 package and the libraries it needs.
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

# --- a shell, from Debian's busybox-static ----------------------------------------------
# The console's `e` (a shell in a container) is tested on this one: /bin/sh is busybox.
# The stand-in has no shell at all, which the same test checks is said plainly.
digest=$( (echo "busybox-static v1"; sha256sum < "$here/build.sh") | sha256sum | cut -c1-16)
if [[ $force == --force || $(current_label osmen-shell:test) != "$digest" ]]; then
  mkdir -p "$work/bb" && cd "$work/bb"
  apt-get download busybox-static >/dev/null 2>&1 || {
    echo "apt-get download of busybox-static failed: run 'apt-get update' first" >&2; exit 1; }
  for d in ./*.deb; do dpkg-deb -x "$d" x; done
  rootfs="$work/bb-root"
  mkdir -p "$rootfs/bin" "$rootfs/tmp" "$rootfs/etc"
  cp x/bin/busybox "$rootfs/bin/busybox"
  for app in sh ls cat echo sleep env ps; do ln -s busybox "$rootfs/bin/$app"; done
  echo "root:x:0:0:root:/:/bin/sh" > "$rootfs/etc/passwd"
  tar -C "$rootfs" --owner=0 --group=0 --numeric-owner -c . | docker import \
    -c 'ENV PATH=/bin' -c 'WORKDIR /' \
    -c 'CMD ["/bin/sh", "-c", "trap \"exit 0\" TERM; while :; do sleep 1; done"]' \
    -c "LABEL osmen.source=$digest" - osmen-shell:test >/dev/null
  echo "built osmen-shell:test ($digest)"
fi

# --- nginx, from Debian packages --------------------------------------------------------
# The balancer in front of gateway replicas (x-osmen-balance). Its nginx.conf includes
# conf.d/*.conf, as the official images do; osmen writes conf.d/default.conf and sends
# SIGHUP. Until then a placeholder answers 503. `docker import` cannot set STOPSIGNAL:
# compose files set `stop_signal: SIGQUIT` (graceful) for it.
digest=$( (echo "nginx nginx-common libpcre2-8-0 libssl3 libcrypt1 zlib1g v1"; sha256sum < "$here/build.sh") \
  | sha256sum | cut -c1-16)
if [[ $force == --force || $(current_label osmen-nginx:test) != "$digest" ]]; then
  mkdir -p "$work/ngx" && cd "$work/ngx"
  apt-get download nginx nginx-common libpcre2-8-0 libssl3 libcrypt1 zlib1g >/dev/null 2>&1 || {
    echo "apt-get download of nginx failed: run 'apt-get update' first" >&2; exit 1; }
  for d in ./*.deb; do dpkg-deb -x "$d" x; done
  rootfs="$work/ngx-root"
  mkdir -p "$rootfs/usr/sbin" "$rootfs/etc/nginx/conf.d" "$rootfs/var/log/nginx" \
    "$rootfs/var/lib/nginx" "$rootfs/run" "$rootfs/tmp"
  cp x/usr/sbin/nginx "$rootfs/usr/sbin/nginx"
  cp x/etc/nginx/mime.types "$rootfs/etc/nginx/mime.types"
  cat > "$rootfs/etc/nginx/nginx.conf" <<'CONF'
user nobody nogroup;
worker_processes 2;
pid /run/nginx.pid;
error_log stderr warn;
events { worker_connections 4096; }
http {
    include /etc/nginx/mime.types;
    access_log off;
    include /etc/nginx/conf.d/*.conf;
}
CONF
  cat > "$rootfs/etc/nginx/conf.d/default.conf" <<'CONF'
server { listen 80; location / { return 503 "no upstream written yet\n"; } }
CONF
  echo "root:x:0:0:root:/root:/sbin/nologin" > "$rootfs/etc/passwd"
  echo "nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin" >> "$rootfs/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' > "$rootfs/etc/group"
  libpath="$work/ngx/x/usr/lib/x86_64-linux-gnu:$work/ngx/x/lib/x86_64-linux-gnu"
  LD_LIBRARY_PATH="$libpath" ldd "$rootfs/usr/sbin/nginx" | grep -o '/[^ ]*' | while read -r lib; do
    dest="$rootfs$lib"
    case $lib in "$work"/ngx/x/*) dest="$rootfs${lib#"$work"/ngx/x}" ;; esac
    mkdir -p "$(dirname "$dest")"
    cp -L "$lib" "$dest"
  done
  tar -C "$rootfs" --owner=0 --group=0 --numeric-owner -c . | docker import \
    -c 'EXPOSE 80' \
    -c 'CMD ["/usr/sbin/nginx", "-g", "daemon off;"]' \
    -c "LABEL osmen.source=$digest" - osmen-nginx:test >/dev/null
  echo "built osmen-nginx:test ($digest)"
fi

# --- postgresql 15, from Debian packages ------------------------------------------------
# The server, its client tools (pg_isready for the health check) and every library package
# of its dependency closure are downloaded and unpacked, so nothing depends on what the
# host has installed; ldd then copies exactly what the binaries load. JIT (LLVM) is left
# out: postgres loads llvmjit.so only when jit is on, and the image sets jit=off.
pg_src="$here/postgres/entrypoint.sh"
digest=$( (echo "postgresql-15 v1"; sha256sum < "$pg_src"; sha256sum < "$here/build.sh") | sha256sum | cut -c1-16)
if [[ $force == --force || $(current_label osmen-postgres:test) != "$digest" ]]; then
  mkdir -p "$work/pg" && cd "$work/pg"
  libs=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
      --no-breaks --no-replaces --no-enhances --no-pre-depends postgresql-15 2>/dev/null \
    | grep -E '^lib' | grep -vE '^(libc6|libc-bin|libc-l10n|libllvm|libz3|libperl|libelogind)' \
    | sort -u)
  # shellcheck disable=SC2086
  apt-get download postgresql-15 postgresql-client-15 dash tzdata $libs >/dev/null 2>&1 || {
    echo "apt-get download of postgresql-15 failed: run 'apt-get update' first" >&2; exit 1; }
  for d in ./*.deb; do dpkg-deb -x "$d" x; done
  rootfs="$work/pg-root"
  pgbin=usr/lib/postgresql/15/bin
  mkdir -p "$rootfs/$pgbin" "$rootfs/usr/lib/postgresql/15/lib" "$rootfs/usr/share" \
    "$rootfs/bin" "$rootfs/etc" "$rootfs/tmp" "$rootfs/var/lib/postgresql" "$rootfs/var/run/postgresql"
  for b in postgres initdb pg_isready psql; do
    cp "x/$pgbin/$b" "$rootfs/$pgbin/$b"
  done
  cp -a x/usr/lib/postgresql/15/lib/. "$rootfs/usr/lib/postgresql/15/lib/"
  rm -f "$rootfs/usr/lib/postgresql/15/lib/llvmjit"*
  rm -rf "$rootfs/usr/lib/postgresql/15/lib/bitcode"
  cp -a x/usr/share/postgresql "$rootfs/usr/share/"
  cp -a x/usr/share/zoneinfo "$rootfs/usr/share/"
  cp x/bin/dash "$rootfs/bin/sh"
  cp "$pg_src" "$rootfs/entrypoint.sh" && chmod 0755 "$rootfs/entrypoint.sh"
  echo "root:x:0:0:root:/root:/bin/sh" > "$rootfs/etc/passwd"
  echo "postgres:x:999:999:PostgreSQL:/var/lib/postgresql:/bin/sh" >> "$rootfs/etc/passwd"
  printf 'root:x:0:\npostgres:x:999:\n' > "$rootfs/etc/group"
  libpath="$work/pg/x/usr/lib/x86_64-linux-gnu:$work/pg/x/lib/x86_64-linux-gnu"
  for bin in "$rootfs/$pgbin"/* "$rootfs/bin/sh" "$rootfs/usr/lib/postgresql/15/lib/"*.so; do
    LD_LIBRARY_PATH="$libpath" ldd "$bin" 2>/dev/null | grep -q 'not found' && {
      echo "ldd: a library of $bin is missing:" >&2
      LD_LIBRARY_PATH="$libpath" ldd "$bin" | grep 'not found' >&2; exit 1; }
    { LD_LIBRARY_PATH="$libpath" ldd "$bin" 2>/dev/null || true; } | { grep -o '/[^ ]*' || true; } \
      | while read -r lib; do
      dest="$rootfs$lib"
      case $lib in "$work"/pg/x/*) dest="$rootfs${lib#"$work"/pg/x}" ;; esac
      [[ -e $dest ]] && continue
      mkdir -p "$(dirname "$dest")"
      cp -L "$lib" "$dest"
    done
  done
  # A named volume mounted on PGDATA takes the owner and mode of the image's directory.
  mkdir -p "$rootfs/var/lib/postgresql/data" && chmod 0700 "$rootfs/var/lib/postgresql/data"
  # Everything root's, but the directories postgres writes (uid 999).
  tar -C "$rootfs" --owner=0 --group=0 --numeric-owner --exclude=./var/lib/postgresql \
    --exclude=./var/run/postgresql -cf "$work/pg.tar" .
  tar -C "$rootfs" --owner=999 --group=999 --numeric-owner \
    -rf "$work/pg.tar" ./var/lib/postgresql ./var/run/postgresql
  docker import \
    -c 'ENV PATH=/usr/lib/postgresql/15/bin:/bin PGDATA=/var/lib/postgresql/data TZ=UTC' \
    -c 'USER postgres' -c 'EXPOSE 5432' \
    -c 'ENTRYPOINT ["/entrypoint.sh"]' -c 'CMD ["-c", "jit=off"]' \
    -c "LABEL osmen.source=$digest" "$work/pg.tar" osmen-postgres:test >/dev/null
  echo "built osmen-postgres:test ($digest)"
fi
