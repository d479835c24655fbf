#!/usr/bin/env bash
# Soak: the console (with its embedded gateway, collectors and probes) watching the
# probed stack (PostgreSQL and Redis from Debian's packages) for MINUTES (default 30)
# while a client sends RATE requests per second (default 5) to an agent answered by the
# stand-in LLM. Every 30 s the console process's RSS and open file descriptors are
# sampled; reported: RSS at 1 min, at 5 min and at the end, growth from each, and the
# range of descriptors. Bounded in time and count; loopback only.
#
#   bash benches/soak.sh            # 30 minutes
#   bash benches/soak.sh 5 2        # 5 minutes at 2 requests/s
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=${1:-30}
RATE=${2:-5}
for c in tmux docker curl rustc; do
  command -v "$c" >/dev/null || { echo "benches/soak.sh needs $c" >&2; exit 2; }
done
cargo build --release -q --bin osmen
bin=$PWD/target/release/osmen
work=$(mktemp -d /tmp/osmen-soak.XXXX)
project=osmen-soak
cp tests/fixtures/stacks/probes/docker-compose.yml "$work/"
rustc --edition 2024 -O tests/standin/standin.rs -o "$work/standin" 2>/dev/null
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
llm_port=$(free_port)
gw_port=$(free_port)
key=soak-key-$RANDOM
cleanup() {
  tmux kill-session -t osmen-soak 2>/dev/null || true
  [[ -n ${llm_pid:-} ]] && kill "$llm_pid" 2>/dev/null || true
  (cd "$work" && "$bin" -p "$project" down --volumes >/dev/null 2>&1) || true
  rm -rf "$work"
}
trap cleanup EXIT
PORT=$llm_port STANDIN_CHAT_DELAY_MS=20 "$work/standin" serve >/dev/null 2>&1 &
llm_pid=$!
tmux new-session -d -s osmen-soak -x 160 -y 48 \
  "cd '$work' && OLLAMA_URL=http://127.0.0.1:$llm_port OSMEN_API_KEYS=$key \
   OSMEN_RATE_LIMIT_PER_KEY=0 OSMEN_GATEWAY_LISTEN=127.0.0.1:$gw_port '$bin' -p $project"
for _ in $(seq 1 240); do
  curl -sf "http://127.0.0.1:$gw_port/health" >/dev/null && break
  sleep 0.5
done
pid=$(pgrep -f "^$bin -p $project" | head -1)
[[ -n $pid ]] || { echo "the console did not start" >&2; exit 1; }
# The console on its Agents view, as an operator would leave it.
tmux send-keys -t osmen-soak 3
end=$(( $(date +%s) + MINUTES * 60 ))
(
  i=0
  while (( $(date +%s) < end )); do
    curl -s -o /dev/null -X POST -H "X-API-Key: $key" -H 'content-type: application/json' \
      -d "{\"input\":\"soak $i\"}" "http://127.0.0.1:$gw_port/api/v1/agents/content_creator/execute" &
    i=$((i + 1))
    sleep "$(python3 -c "print(1/$RATE)")"
  done
  wait
) &
load=$!
samples="$work/samples.csv"
echo "seconds,rss_kib,fds" > "$samples"
t0=$(date +%s)
while (( $(date +%s) < end )); do
  sleep 30
  kill -0 "$pid" 2>/dev/null || { echo "the console died" >&2; exit 1; }
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")
  fds=$(ls "/proc/$pid/fd" | wc -l)
  echo "$(( $(date +%s) - t0 )),$rss,$fds" | tee -a "$samples"
done
wait "$load" || true
python3 - "$samples" "$MINUTES" "$RATE" <<'PY'
import csv, sys
rows = [(int(r["seconds"]), int(r["rss_kib"]), int(r["fds"])) for r in csv.DictReader(open(sys.argv[1]))]
def at(s):
    return min(rows, key=lambda r: abs(r[0] - s))
first, five, last = at(60), at(300), rows[-1]
g = lambda a: (last[1] - a[1]) / a[1] * 100
print(f"soak: {sys.argv[2]} min, {sys.argv[3]} req/s, {len(rows)} samples")
print(f"RSS KiB: at {first[0]} s {first[1]}, at {five[0]} s {five[1]}, at {last[0]} s {last[1]}")
print(f"growth: {g(first):+.1f} % from 1 min, {g(five):+.1f} % from 5 min")
print(f"open fds: min {min(r[2] for r in rows)}, max {max(r[2] for r in rows)}")
PY
