#!/usr/bin/env bash
# Benchmark: time from `git clone` to a serving platform (/health passes), then a second start.
# Uses its own ports and data folder so it does not touch a running CDT. The Debian packages are
# whatever this machine has; the virtualenv is built from scratch from PyPI.
set -euo pipefail
SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="$(mktemp -d /var/tmp/cdt-clone-XXXX)"
chmod 755 "$WORK"
export CDT_PORT=${CDT_BENCH_PORT:-8799} CDT_PG_PORT=${CDT_BENCH_PG_PORT:-54399}
export CDT_DATA_DIR="$WORK/data"
unset CDT_DATABASE_URL

serve_until_healthy() {
  local start=$1
  (cd "$WORK/cdt" && exec scripts/run.sh) >"$WORK/run.log" 2>&1 &
  local pid=$!
  until curl -fs "http://127.0.0.1:$CDT_PORT/health" >/dev/null 2>&1; do
    if ! kill -0 $pid 2>/dev/null; then echo "run.sh died:"; tail -20 "$WORK/run.log"; exit 1; fi
    sleep 0.5
  done
  local end; end=$(date +%s.%N)
  kill $pid; wait $pid 2>/dev/null || true
  echo "$end - $start" | bc
}

t0=$(date +%s.%N)
git clone -q "$SRC" "$WORK/cdt"
cold=$(serve_until_healthy "$t0")
t1=$(date +%s.%N)
warm=$(serve_until_healthy "$t1")
"$WORK/cdt/.venv/bin/cdt" db stop >/dev/null
printf "%-40s %8s\n" "step" "seconds"
printf "%-40s %8.1f\n" "git clone -> serving (new venv, new DB)" "$cold"
printf "%-40s %8.1f\n" "second start (nothing to do)" "$warm"
rm -rf "$WORK"
