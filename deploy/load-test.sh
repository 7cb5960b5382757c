#!/usr/bin/env bash
# Measures the operator's read path under load with wrk: GET /v1/services and GET /metrics,
# 30 s each, and prints requests/s and latency percentiles. A measurement, not a test.
#   deploy/load-test.sh [URL] [TOKEN_FILE]     (defaults: http://127.0.0.1:8080, no token)
set -euo pipefail
url="${1:-http://127.0.0.1:8080}"
token_file="${2:-}"
duration="${DURATION:-30s}"
connections="${CONNECTIONS:-32}"
threads="${THREADS:-2}"
command -v wrk >/dev/null 2>&1 || { echo "load-test: install wrk (apt-get install -y wrk)" >&2; exit 1; }
headers=()
if [ -n "$token_file" ]; then
  headers=(-H "Authorization: Bearer $(tr -d '[:space:]' <"$token_file")")
fi
for path in /v1/services /metrics; do
  printf '== GET %s (%s, %s connections, %s threads)\n' "$path" "$duration" "$connections" "$threads"
  wrk -t"$threads" -c"$connections" -d"$duration" --latency "${headers[@]}" "$url$path"
done
