#!/usr/bin/env bash
# Run the platform: install what is missing, start CDT's own PostGIS unless CDT_DATABASE_URL
# is set, migrate, load the demo city, serve on http://127.0.0.1:8000 (CDT_HOST, CDT_PORT).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
scripts/bootstrap.sh
.venv/bin/cdt db start
.venv/bin/cdt db migrate
.venv/bin/cdt load demo
exec .venv/bin/cdt serve
