#!/usr/bin/env bash
# Time from `up` to every service healthy: osmen against docker-compose on the same test
# stack (tests/fixtures/stacks/basic: Redis + a service_healthy chain of stand-ins + an
# independent worker), alternating runs in one session. Prints medians, their ratio and
# osmen's peak RSS.   benches/up.sh [RUNS]   (default 5)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-5}
bash "$root/tests/images/build.sh" >/dev/null
# Always (re)build: a stale binary would measure old code.
cargo build --release --manifest-path "$root/Cargo.toml" -q
osmen=$root/target/release/osmen
command -v docker-compose >/dev/null || { echo "docker-compose is needed as the peer" >&2; exit 2; }
work=$(mktemp -d)
trap 'cd /; $osmen -f "$work/docker-compose.yml" -p bench-osmen down -v >/dev/null 2>&1 || true;
      docker-compose -p bench-compose -f "$work/v1.yml" down -v >/dev/null 2>&1 || true;
      rm -rf "$work"' EXIT
cp "$root/tests/fixtures/stacks/basic/docker-compose.yml" "$work/"
sed '/^name:/d' "$work/docker-compose.yml" > "$work/v1.yml"
services=(redis db api worker)

now() { date +%s.%N; }
all_healthy() { # project
  local n=0
  for s in "${services[@]}"; do
    # docker-compose v1 names containers <project>_<service>_<n>.
    [[ $(docker inspect -f '{{.State.Health.Status}}' "${1}_${s}_1" 2>/dev/null) == healthy ]] &&
      n=$((n+1))
  done
  ((n == ${#services[@]}))
}

o_times=(); c_times=(); rss=()
for i in $(seq "$runs"); do
  t0=$(now)
  /usr/bin/time -f %M -o "$work/rss" "$osmen" -f "$work/docker-compose.yml" -p bench-osmen \
    up --wait >/dev/null 2>&1
  t1=$(now)
  o_times+=("$(echo "$t1 - $t0" | bc)"); rss+=("$(cat "$work/rss")")
  "$osmen" -f "$work/docker-compose.yml" -p bench-osmen down -v >/dev/null 2>&1

  t0=$(now)
  docker-compose -p bench-compose -f "$work/v1.yml" up -d >/dev/null 2>&1
  until all_healthy bench-compose; do sleep 0.05; done
  t1=$(now)
  c_times+=("$(echo "$t1 - $t0" | bc)")
  docker-compose -p bench-compose -f "$work/v1.yml" down -v >/dev/null 2>&1
  echo "run $i: osmen ${o_times[-1]}s  docker-compose+wait ${c_times[-1]}s"
done

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
mo=$(median "${o_times[@]}"); mc=$(median "${c_times[@]}"); mr=$(median "${rss[@]}")
echo "median up-to-healthy: osmen ${mo}s, docker-compose up -d + wait ${mc}s"
echo "ratio osmen/docker-compose: $(echo "scale=3; $mo / $mc" | bc)"
echo "osmen up --wait peak RSS (median of $runs): $((mr / 1024)) MiB ($mr KiB)"
