#!/usr/bin/env bash
# Run the whole test suite against a real PostGIS: a throwaway database per run, created
# in CDT's own cluster (or on the server of CDT_DATABASE_URL) and dropped afterwards.
# Extra arguments go to pytest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
scripts/bootstrap.sh --dev
.venv/bin/cdt db start
exec .venv/bin/python -m pytest "$@"
