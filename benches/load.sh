#!/usr/bin/env bash
# `osmen bench` against wrk and oha, same target, same run (loopback only, bounded):
#  1. the guide's scenario (10 users x 100 requests) against the gateway's daily_brief
#     execute route, with a stand-in Ollama answering /api/chat after 20 ms;
#  2. the same route, 10 connections for 10 s: throughput and P50/P95/P99 of each tool;
#  3. a trivial endpoint (GET /api/v1/agents), 10 connections for 10 s: throughput;
#  4. osmen bench's peak RSS after 10,000 and after 1,000,000 requests (HDR: flat).
#
#   bash benches/load.sh      # needs wrk (apt) and oha (cargo install oha), python3
set -euo pipefail
cd "$(dirname "$0")/.."
OHA=${OHA:-$(command -v oha || echo /tmp/oha/bin/oha)}
[[ -x $OHA ]] || { echo "needs oha (cargo install oha); set OHA=path" >&2; exit 2; }
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)" >&2; exit 2; }
SECS=${SECS:-10}
BIG=${BIG:-1000000}
cargo build --release -q
bin=$PWD/target/release/osmen
work=$(mktemp -d /tmp/osmen-bench-load.XXXX)
rustc --edition 2024 -O tests/standin/standin.rs -o "$work/standin"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
llm=$(free_port); gwp=$(free_port)
PORT=$llm STANDIN_NAME=llm STANDIN_CHAT_DELAY_MS=20 "$work/standin" serve >/dev/null 2>&1 &
pids=($!)
cat > "$work/gateway.toml" <<TOML
[gateway]
cache_entries = 0
[providers.ollama]
url = "http://127.0.0.1:$llm"
concurrency = 128
retries = 0
[agents.daily_brief]
description = "bench"
prompt = "daily_brief.md"
concurrency = 128
queue = 256
TOML
OSMEN_API_KEYS=bench-key OSMEN_RUNTIME_DIR=$work "$bin" gateway --listen "127.0.0.1:$gwp" \
  --gateway-config "$work/gateway.toml" 2>/dev/null &
pids+=($!)
trap 'kill "${pids[@]}" 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 50); do (echo > "/dev/tcp/127.0.0.1/$gwp") 2>/dev/null && break; sleep 0.1; done
base=http://127.0.0.1:$gwp
exec_url=$base/api/v1/agents/daily_brief/execute

echo "== 1. the guide's scenario: osmen bench --url $base --key ... (10 users x 100 requests)"
"$bin" bench --url "$base" --key bench-key

cat > "$work/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"input":"Test request"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-API-Key"] = "bench-key"
LUA
cat > "$work/auth.lua" <<'LUA'
wrk.headers["X-API-Key"] = "bench-key"
LUA
compare() { # label, url, wrk script, osmen args...
  local label=$1 url=$2 script=$3; shift 3
  echo "== $label: 10 connections, ${SECS}s each"
  local o w h
  o=$("$bin" bench "$@" --users 10 --duration "${SECS}s" --json)
  w=$(wrk -t2 -c10 -d"${SECS}s" --latency -s "$work/$script" "$url")
  if [[ $script == post.lua ]]; then
    h=$("$OHA" --no-tui --output-format json -c 10 -z "${SECS}s" -m POST -T application/json \
        -H 'X-API-Key: bench-key' -d '{"input":"Test request"}' "$url")
  else
    h=$("$OHA" --no-tui --output-format json -c 10 -z "${SECS}s" -H 'X-API-Key: bench-key' "$url")
  fi
  python3 - "$o" "$w" "$h" <<'PY'
import json, re, sys
o = json.loads(sys.argv[1]); w = sys.argv[2]; h = json.loads(sys.argv[3])
def wrk_ms(p):
    m = re.search(r"^\s*%s%%\s+([\d.]+)(us|ms|s)" % p, w, re.M)
    if not m: return float("nan")
    v, u = float(m.group(1)), m.group(2)
    return v / 1000 if u == "us" else v * 1000 if u == "s" else v
wrk_rps = float(re.search(r"Requests/sec:\s+([\d.]+)", w).group(1))
hp = h["latencyPercentiles"]
rows = [
  ("osmen", o["throughput_rps"], o["p50_seconds"]*1e3, float("nan"), o["p95_seconds"]*1e3, o["p99_seconds"]*1e3, o["success_rate"]),
  ("wrk", wrk_rps, wrk_ms(50), wrk_ms(90), float("nan"), wrk_ms(99), float("nan")),
  ("oha", h["summary"]["requestsPerSec"], hp["p50"]*1e3, hp["p90"]*1e3, hp["p95"]*1e3, hp["p99"]*1e3, h["summary"]["successRate"]),
]
print(f"{'tool':6} {'req/s':>9} {'p50 ms':>8} {'p90 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'success':>8}")
for r in rows:
    print(f"{r[0]:6} {r[1]:9.1f} {r[2]:8.2f} {r[3]:8.2f} {r[4]:8.2f} {r[5]:8.2f} {r[6]:8.3f}")
print(f"osmen/wrk throughput {rows[0][1]/rows[1][1]:.3f}, osmen/oha throughput {rows[0][1]/rows[2][1]:.3f}")
for k, i in (("p50", 2), ("p95", 4), ("p99", 5)):
    print(f"osmen/oha {k} {rows[0][i]/rows[2][i]:.3f}")
PY
}
compare "2. execute route (stand-in LLM, 20 ms)" "$exec_url" post.lua --url "$base" --key bench-key
compare "3. trivial endpoint GET /api/v1/agents" "$base/api/v1/agents" auth.lua --raw --url "$base/api/v1/agents" --key bench-key

echo "== 4. osmen bench peak RSS (trivial endpoint, 10 connections)"
for n in 10000 "$BIG"; do
  per=$((n / 10))
  /usr/bin/time -f "%M" -o "$work/rss" "$bin" bench --raw --url "$base/api/v1/agents" --key bench-key \
    --users 10 --requests "$per" --json > "$work/out.json"
  printf '%9d requests: peak RSS %6d KiB, %s req/s\n' "$n" "$(cat "$work/rss")" \
    "$(python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["throughput_rps"]))' "$work/out.json")"
done
