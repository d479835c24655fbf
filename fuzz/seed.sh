#!/usr/bin/env bash
# Seeds each fuzz target's corpus from the project's test fixtures.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
c="$root/fuzz/corpus"
mkdir -p "$c/compose_load" "$c/prometheus_parse" "$c/config_load" "$c/gateway_body"
find "$root/tests/fixtures/compose" "$root/tests/fixtures/stacks" -name '*.yml' \
  -exec sh -c 'cp "$1" "$2/$(echo "$1" | sha1sum | cut -c1-16)"' _ {} "$c/compose_load" \;
cp "$root/docker-compose.yml" "$c/compose_load/shipped"
find "$root/tests/fixtures/prometheus" "$root/tests/fixtures/probes" -name '*.txt' \
  -exec sh -c 'cp "$1" "$2/$(echo "$1" | sha1sum | cut -c1-16)"' _ {} "$c/prometheus_parse" \;
cp "$root/config/osmen.toml" "$c/config_load/osmen"
cp "$root/config/gateway.toml" "$c/config_load/gateway"
printf '\000{"input":"what is on today?","context":{"user":"op"}}' > "$c/gateway_body/execute"
printf '\001{"query":"deploy notes","top_k":3}' > "$c/gateway_body/search"
printf '\002{"payload":{"run":1}}' > "$c/gateway_body/trigger"
printf '\000{"input":' > "$c/gateway_body/truncated"
echo "seeded $(find "$c" -type f | wc -l) inputs"
