#!/usr/bin/env bash
# osmen's GPU figures against nvidia-smi's, on a machine with an NVIDIA driver: per GPU the
# name, memory total and used, utilisation, temperature and power draw, and per compute
# process its GPU memory, from `osmen status --json` and from
#   nvidia-smi --query-gpu=index,name,memory.total,memory.used,utilization.gpu,temperature.gpu,power.draw --format=csv,noheader,nounits
#   nvidia-smi --query-compute-apps=gpu_uuid,pid,used_memory --format=csv,noheader,nounits
# read right before and right after osmen's sample (a figure passes when it is within the
# tolerance of either reading). Memory passes within 2% or 64 MiB, whichever is larger;
# utilisation within 10 points, temperature within 3 degrees, power within 10% or 10 W
# (they move between two readings). Prints the table; exits 1 when a figure is off.
#
#   OSMEN=target/release/osmen bash benches/gpu-check.sh
#
# It needs no engine and no network (a device machine has neither): osmen reads NVML
# directly and the Docker sources simply report themselves unavailable. Without a driver
# it says so, shows what osmen reports then, and exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${OSMEN:-target/release/osmen}
bin=$(realpath "$bin" 2>/dev/null || echo "$bin")
[ -x "$bin" ] || { echo "gpu-check: no osmen binary at $bin (cargo build --release, or set OSMEN)" >&2; exit 2; }
command -v python3 >/dev/null || { echo "gpu-check: needs python3 to compare the JSON" >&2; exit 2; }
work=$(mktemp -d /tmp/osmen-gpu-check.XXXX)
trap 'rm -rf "$work"' EXIT
# A one-service project: status needs a compose file, not a running stack.
printf 'services:\n  app:\n    image: osmen-gpu-check:none\n' > "$work/compose.yaml"
status() { (cd "$work" && DOCKER_HOST=${DOCKER_HOST:-unix:///nonexistent-osmen-gpu-check} "$bin" -p osmen-gpu-check status --json); }

if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "gpu-check: SKIPPED: no NVIDIA driver here (nvidia-smi missing or failing)."
  status > "$work/status.json"
  python3 - "$work/status.json" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
print("osmen without a driver: gpus =", s["gpus"], "; gpu source:", s["sources"].get("gpu", {}).get("status"))
EOF
  exit 0
fi

q_gpu=index,name,memory.total,memory.used,utilization.gpu,temperature.gpu,power.draw
smi() {
  nvidia-smi --query-gpu=$q_gpu --format=csv,noheader,nounits > "$work/gpu.$1"
  nvidia-smi --query-compute-apps=gpu_uuid,pid,used_memory --format=csv,noheader,nounits > "$work/apps.$1" || true
  nvidia-smi --query-gpu=index,uuid --format=csv,noheader > "$work/uuid.$1"
}
smi before
status > "$work/status.json"
smi after

python3 - "$work" <<'EOF'
import json, os, sys
w = sys.argv[1]
MIB = 1024 * 1024

def rows(name):
    out = []
    for line in open(os.path.join(w, name)):
        line = line.strip()
        if line:
            out.append([c.strip() for c in line.split(",")])
    return out

def num(v):
    try:
        return float(v)
    except ValueError:
        return None  # [N/A], [Not Supported]

status = json.load(open(os.path.join(w, "status.json")))
gpus = {g["index"]: g for g in status["gpus"]}
health = status["sources"].get("gpu", {}).get("status")
table, bad = [], 0

def check(what, smi_vals, osmen_val, ok):
    global bad
    vals = [v for v in smi_vals if v is not None]
    if osmen_val is None and not vals:
        verdict = "n/a both"
    elif osmen_val is None or not vals:
        verdict, bad = "MISSING", bad + 1
    elif any(ok(v, osmen_val) for v in vals):
        verdict = "ok"
    else:
        verdict, bad = "OFF", bad + 1
    fmt = lambda v: str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)
    shown = " / ".join(fmt(v) for v in smi_vals)
    table.append((what, shown, "-" if osmen_val is None else str(osmen_val), verdict))

mem_ok = lambda a, b: abs(a - b) <= max(0.02 * a, 64)
before, after = rows("gpu.before"), rows("gpu.after")
uuids = {r[1]: int(r[0]) for r in rows("uuid.before")}
for b, a in zip(before, after):
    i = int(b[0])
    g = gpus.get(i)
    if g is None:
        table.append((f"gpu {i}", b[1], "-", "MISSING"))
        bad += 1
        continue
    check(f"gpu {i} name", [b[1]], g["name"], lambda x, y: x == y)
    check(f"gpu {i} memory.total MiB", [num(b[2]), num(a[2])], round(g["memory_total_bytes"] / MIB), mem_ok)
    check(f"gpu {i} memory.used MiB", [num(b[3]), num(a[3])], round(g["memory_used_bytes"] / MIB), mem_ok)
    check(f"gpu {i} utilization.gpu %", [num(b[4]), num(a[4])], g.get("gpu_util_percent"), lambda x, y: abs(x - y) <= 10)
    check(f"gpu {i} temperature.gpu C", [num(b[5]), num(a[5])], g.get("temperature_c"), lambda x, y: abs(x - y) <= 3)
    p = g.get("power_w")
    check(f"gpu {i} power.draw W", [num(b[6]), num(a[6])], None if p is None else round(p, 1),
          lambda x, y: abs(x - y) <= max(0.10 * x, 10))
procs = {}
for f in ("apps.before", "apps.after"):
    for r in rows(f):
        if len(r) >= 3 and r[1].isdigit():
            procs.setdefault((uuids.get(r[0], r[0]), int(r[1])), []).append(num(r[2]))
osmen_procs = {(g["index"], p["pid"]): round(p["used_memory_bytes"] / MIB) for g in status["gpus"] for p in g["processes"]}
for key in sorted(set(procs) | set(osmen_procs), key=str):
    check(f"gpu {key[0]} pid {key[1]} used_memory MiB", procs.get(key, [None]), osmen_procs.get(key), mem_ok)

w0 = max(len(r[0]) for r in table) if table else 10
w1 = max([len(r[1]) for r in table] + [10])
print(f"osmen's gpu source: {health}")
print(f"{'figure':<{w0}}  {'nvidia-smi (before / after)':<{w1}}  {'osmen':>12}  verdict")
for r in table:
    print(f"{r[0]:<{w0}}  {r[1]:<{w1}}  {r[2]:>12}  {r[3]}")
print(f"{len(table) - bad} of {len(table)} figures agree")
sys.exit(1 if bad else 0)
EOF
