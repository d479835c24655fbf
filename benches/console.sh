#!/usr/bin/env bash
# The console's cost, side by side with btop and htop (Debian packages), in the same run:
# each watches for SECONDS (default 60) at a 1 s refresh in a 120x40 tmux pane, after a
# warm-up, with its output recorded through `script` (a pty recorder). osmen watches the
# console test stack (six containers), brought up first. Reported per tool: CPU of its
# process as % of one core, RSS (now and peak), and bytes written to the terminal per
# second at steady state.
#
#   bash benches/console.sh            # needs docker, tmux, script (bsdutils), btop, htop
#   TOOLS=osmen SECONDS_MEASURED=30 bash benches/console.sh   # one tool, shorter
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_MEASURED=${SECONDS_MEASURED:-60}
WARMUP=${WARMUP:-15}
for c in tmux script btop htop docker; do
  command -v "$c" >/dev/null || { echo "benches/console.sh needs $c (apt-get install tmux bsdutils btop htop)" >&2; exit 2; }
done
cargo build --release -q
bin=$PWD/target/release/osmen
work=$(mktemp -d /tmp/osmen-bench-console.XXXX)
project=osmen-bench-console
cp tests/fixtures/stacks/console/docker-compose.yml "$work/"
mkdir -p "$work/config" "$work/xdg/btop"
# btop refreshes every 2 s by default; the comparison is at 1 s.
printf 'update_ms = 1000\n' > "$work/xdg/btop/btop.conf"
cleanup() {
  tmux kill-session -t osmen-bench 2>/dev/null || true
  (cd "$work" && "$bin" -p "$project" down --volumes >/dev/null 2>&1) || true
  rm -rf "$work"
}
trap cleanup EXIT
(cd "$work" && "$bin" -p "$project" up --wait >/dev/null)
hz=$(getconf CLK_TCK)

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }

measure() { # name, command line
  local name=$1 cmd=$2 rec="$work/rec.$1"
  tmux new-session -d -s osmen-bench -x 120 -y 40 \
    "cd $work && XDG_CONFIG_HOME=$work/xdg LANG=C.UTF-8 TERM=xterm-256color script -q -f -c '$cmd' $rec"
  local pid=""
  for _ in $(seq 50); do
    pid=$(pgrep -n -x "$name" || true)
    [[ -n $pid ]] && break
    sleep 0.2
  done
  [[ -n $pid ]] || { echo "$name did not start" >&2; exit 1; }
  sleep "$WARMUP"
  local t0 b0 t1 b1
  t0=$(ticks "$pid"); b0=$(stat -c %s "$rec")
  sleep "$SECONDS_MEASURED"
  t1=$(ticks "$pid"); b1=$(stat -c %s "$rec")
  local rss hwm
  rss=$(kb "$pid" VmRSS); hwm=$(kb "$pid" VmHWM)
  tmux send-keys -t osmen-bench q
  sleep 1
  tmux kill-session -t osmen-bench 2>/dev/null || true
  awk -v n="$name" -v dt="$((t1 - t0))" -v hz="$hz" -v s="$SECONDS_MEASURED" \
      -v db="$((b1 - b0))" -v rss="$rss" -v hwm="$hwm" 'BEGIN {
    printf "%-6s cpu %5.2f%% of one core   rss %6.1f MB (peak %6.1f MB)   terminal %7.0f B/s\n",
      n, dt / hz / s * 100, rss / 1024, hwm / 1024, db / s }'
}

echo "== $SECONDS_MEASURED s each after ${WARMUP} s warm-up, 120x40, 1 s refresh ($(nproc) cores)"
TOOLS=${TOOLS:-osmen btop htop}
for tool in $TOOLS; do
  case $tool in
    osmen) measure osmen "env OSMEN_GATEWAY_LISTEN=127.0.0.1:18089 $bin -p $project --no-up" ;;
    btop) measure btop "btop" ;;
    htop) measure htop "htop -d 10" ;;
    *) echo "unknown tool $tool (osmen, btop, htop)" >&2; exit 2 ;;
  esac
done
