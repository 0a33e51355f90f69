#!/usr/bin/env bash
# Install what CDT needs and is missing: Debian packages (as root; otherwise name them),
# then a virtualenv with the package. Fast when everything is already there.
# Usage: scripts/bootstrap.sh [--dev]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
EXTRAS=""
[ "${1:-}" = "--dev" ] && EXTRAS="[dev]"

need=(python3-venv)
# The map client's packages come from npm (web/package-lock.json); the browser tests drive Debian's Chromium.
command -v npm >/dev/null 2>&1 || need+=(nodejs npm)
[ "${1:-}" = "--dev" ] && need+=(chromium)
# An external database (CDT_DATABASE_URL) needs no local PostgreSQL server.
if [ -z "${CDT_DATABASE_URL:-}" ]; then
  need+=(postgresql-15 postgresql-15-postgis-3 postgresql-15-pgrouting)
fi
missing=()
for pkg in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "CDT needs these Debian packages; install them as root and run again:" >&2
    echo "  sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi

PY="${CDT_PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "creating the virtualenv in .venv"
  "$PY" -m venv .venv
fi
stamp=".venv/.cdt-installed"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)${EXTRAS}"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "installing CDT and its Python dependencies into .venv"
  log=.venv/pip-install.log
  if ! { .venv/bin/python -m pip install --upgrade pip && .venv/bin/python -m pip install -e ".${EXTRAS}"; } >"$log" 2>&1
  then
    tail -40 "$log" >&2
    echo "pip install failed; full log in $log" >&2
    exit 1
  fi
  echo "$want" > "$stamp"
fi

# The map client: its pinned front-end packages, installed again only when the lock file changes.
web_stamp="web/node_modules/.cdt-installed"
web_want="$(sha256sum web/package-lock.json | cut -d' ' -f1)"
if [ ! -f "$web_stamp" ] || [ "$(cat "$web_stamp")" != "$web_want" ]; then
  echo "installing the map client's packages (npm ci in web/)"
  if ! (cd web && npm ci --no-audit --no-fund --loglevel=error) >.venv/npm-install.log 2>&1; then
    tail -40 .venv/npm-install.log >&2
    echo "npm ci failed; full log in .venv/npm-install.log" >&2
    exit 1
  fi
  echo "$web_want" > "$web_stamp"
fi
