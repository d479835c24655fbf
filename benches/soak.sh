#!/usr/bin/env bash
# Soak: the console (with its embedded gateway, collectors and probes) watching the
# probed stack (PostgreSQL and Redis from Debian's packages) for MINUTES (default 30)
# while a client sends RATE requests per second (default 5) to an agent answered by the
# stand-in LLM. Every 30 s the console process's RSS (and its anonymous and file-backed
# shares), open file descriptors, heap (the allocator's account, from /metrics) and
# history size are sampled; reported: each at 1 min, at 5 min and at the end, growth from
# each, and the range of descriptors. Bounded in time and count; loopback only.
#
#   bash benches/soak.sh            # 30 minutes
#   bash benches/soak.sh 5 2        # 5 minutes at 2 requests/s
#   SOAK_WRAP="heaptrack -o /tmp/ht" bash benches/soak.sh 10   # under a heap profiler
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
   OSMEN_RATE_LIMIT_PER_KEY=0 OSMEN_GATEWAY_LISTEN=127.0.0.1:$gw_port ${SOAK_WRAP:-} '$bin' -p $project"
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
echo "seconds,rss_kib,fds,history_points,series,heap_in_use_kib,heap_free_kib,rss_anon_kib,rss_file_kib" > "$samples"
# The allocator's own account (osmen_process_heap_bytes, from the embedded gateway's
# /metrics): what the program holds, and what was freed but kept by the allocator.
heap() {
  curl -s "http://127.0.0.1:$gw_port/metrics" | awk '
    /^osmen_process_heap_bytes\{state="in_use"\}/ {u=$2}
    /^osmen_process_heap_bytes\{state="free"\}/ {f=$2}
    END {printf "%d,%d\n", u/1024, f/1024}'
}
# The console keeps an hour of every series at collection resolution (bounded, by design:
# model/history.rs) and persists it each minute; its size is counted from that file so
# that the growth it explains can be told from any other.
history_points() {
  local f
  f=$(find "$work" -name history.json 2>/dev/null | head -1)
  [[ -n $f ]] || { echo "0,0"; return; }
  python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))["series"]; print(sum(len(x["fine"]) for x in s.values()), len(s), sep=",")' "$f" 2>/dev/null || echo "0,0"
}
t0=$(date +%s)
while (( $(date +%s) < end )); do
  sleep 30
  kill -0 "$pid" 2>/dev/null || { echo "the console died" >&2; exit 1; }
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")
  # RSS is the program's own memory (anonymous) plus the pages of the binary it has run
  # so far (file-backed, bounded by the binary's size): the two are told apart.
  split=$(awk '/^RssAnon:/ {a=$2} /^RssFile:/ {f=$2} END {print a "," f}' "/proc/$pid/status")
  fds=$(ls "/proc/$pid/fd" | wc -l)
  echo "$(( $(date +%s) - t0 )),$rss,$fds,$(history_points),$(heap),$split" | tee -a "$samples"
done
wait "$load" || true
python3 - "$samples" "$MINUTES" "$RATE" <<'PY'
import csv, sys
rows = [(int(r["seconds"]), int(r["rss_kib"]), int(r["fds"]), int(r["history_points"]), int(r["series"]),
         int(r["heap_in_use_kib"]), int(r["heap_free_kib"]), int(r["rss_anon_kib"]), int(r["rss_file_kib"]))
        for r in csv.DictReader(open(sys.argv[1]))]
def at(s):
    return min(rows, key=lambda r: abs(r[0] - s))
first, five, last = at(60), at(300), rows[-1]
g = lambda a: (last[1] - a[1]) / a[1] * 100
print(f"soak: {sys.argv[2]} min, {sys.argv[3]} req/s, {len(rows)} samples")
print(f"RSS KiB: at {first[0]} s {first[1]}, at {five[0]} s {five[1]}, at {last[0]} s {last[1]}")
print(f"growth: {g(first):+.1f} % from 1 min, {g(five):+.1f} % from 5 min")
print(f"open fds: min {min(r[2] for r in rows)}, max {max(r[2] for r in rows)}")
# A fine point is a (f64, f64): 16 bytes in its VecDeque (capacity rounding aside).
hist = (last[3] - five[3]) * 16 / 1024
print(f"history: {five[3]} points in {five[4]} series at {five[0]} s, {last[3]} in {last[4]} at {last[0]} s: "
      f"{hist:+.0f} KiB of points; RSS {last[1] - five[1]:+d} KiB over the same time, "
      f"{(last[1] - five[1] - hist) / five[1] * 100:+.1f} % of it beyond the history's points")
print(f"RSS anonymous KiB (the program's memory): at {first[0]} s {first[7]}, at {five[0]} s {five[7]}, at {last[0]} s {last[7]}: "
      f"{(last[7] - first[7]) / first[7] * 100:+.1f} % from 1 min, {(last[7] - five[7]) / five[7] * 100:+.1f} % from 5 min")
print(f"RSS file-backed KiB (the binary's pages run so far): {first[8]}, {five[8]}, {last[8]}")
print(f"heap in use KiB: at {first[0]} s {first[5]}, at {five[0]} s {five[5]}, at {last[0]} s {last[5]} "
      f"({last[5] - five[5]:+d} from 5 min); freed but kept by the allocator: {first[6]}, {five[6]}, {last[6]}")
PY
