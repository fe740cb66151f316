#!/usr/bin/env bash
# Set up everything the project needs, idempotently:
#   Python deps (uv + committed uv.lock), a local PostgreSQL with PostGIS (unless
#   DATABASE_URL points elsewhere), the `emergency` role and database, and a PostGIS
#   template database that tests clone. Pass --with-browser to install Chromium too,
#   --with-pgrouting to install pgRouting (the peer of bench/routing.py).
set -euo pipefail
cd "$(dirname "$0")/.."

WITH_BROWSER=0
WITH_PGROUTING=0
for arg in "$@"; do
  [[ "$arg" == "--with-browser" ]] && WITH_BROWSER=1
  [[ "$arg" == "--with-pgrouting" ]] && WITH_PGROUTING=1
done

log() { printf '\033[1;34m[setup]\033[0m %s\n' "$*" >&2; }
SUDO=""
if [[ $(id -u) -ne 0 ]] && command -v sudo >/dev/null; then SUDO="sudo"; fi
APT_UPDATED=0
apt_install() {
  command -v apt-get >/dev/null || { log "no apt-get: install $* yourself"; return 1; }
  if [[ $APT_UPDATED -eq 0 ]]; then $SUDO apt-get update -qq; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

# --- Python ------------------------------------------------------------------------
if ! command -v uv >/dev/null; then
  log "installing uv"
  python3 -m pip install --quiet --disable-pip-version-check uv
fi
UV="uv"; command -v uv >/dev/null || UV="python3 -m uv"
log "python dependencies (uv sync --frozen --extra distributed: the tests run Dask in local mode)"
$UV sync --frozen --extra distributed --quiet

# --- Chromium (browser tests) ---------------------------------------------------------
if [[ $WITH_BROWSER -eq 1 && ! -x /usr/bin/chromium ]]; then
  log "installing chromium (Debian package)"
  apt_install chromium fonts-noto-cjk || log "could not install chromium; browser tests will fail"
fi
# Without a CJK font the zh-CN screenshots show empty boxes instead of characters.
if [[ $WITH_BROWSER -eq 1 ]] && ! fc-list 2>/dev/null | grep -qi "Noto Sans CJK"; then
  log "installing fonts-noto-cjk (Chinese text in the browser)"
  apt_install fonts-noto-cjk || log "could not install fonts-noto-cjk; zh-CN text shows as boxes"
fi

# --- PostgreSQL + PostGIS ------------------------------------------------------------
if [[ -n "${DATABASE_URL:-}" ]]; then
  log "using DATABASE_URL; not touching a local PostgreSQL"
  exit 0
fi

pg_version() { ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -1; }
if [[ -z "$(pg_version)" ]]; then
  log "installing PostgreSQL"
  apt_install postgresql
fi
PGV="$(pg_version)"
if ! ls /usr/share/postgresql/"$PGV"/extension/postgis.control >/dev/null 2>&1; then
  log "installing PostGIS for PostgreSQL $PGV"
  apt_install "postgresql-$PGV-postgis-3"
fi
# pgRouting is only the routing benchmark's peer (bench/routing.py), never used by the app.
if [[ $WITH_PGROUTING -eq 1 ]] && ! ls /usr/share/postgresql/"$PGV"/extension/pgrouting.control >/dev/null 2>&1; then
  log "installing pgRouting for PostgreSQL $PGV (benchmark peer)"
  apt_install "postgresql-$PGV-pgrouting" || log "could not install pgRouting; bench.routing skips that peer"
fi
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  log "starting PostgreSQL $PGV"
  if command -v pg_ctlcluster >/dev/null; then
    $SUDO pg_ctlcluster --skip-systemctl-redirect "$PGV" main start || true
  fi
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi

as_postgres() {
  if [[ $(id -u) -eq 0 ]] && command -v runuser >/dev/null; then
    runuser -u postgres -- psql -v ON_ERROR_STOP=1 -qtA "$@"
  elif psql -h 127.0.0.1 -U postgres -d postgres -qtAc 'select 1' >/dev/null 2>&1; then
    psql -h 127.0.0.1 -U postgres -v ON_ERROR_STOP=1 -qtA "$@"
  else
    sudo -u postgres psql -v ON_ERROR_STOP=1 -qtA "$@"
  fi
}
log "role, database and PostGIS template"
as_postgres -d postgres <<'SQL'
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'emergency') THEN
    CREATE ROLE emergency LOGIN CREATEDB PASSWORD 'emergency';
  END IF;
END $$;
SQL
for db in emergency emergency_template; do
  if [[ -z "$(as_postgres -d postgres -c "SELECT 1 FROM pg_database WHERE datname = '$db'")" ]]; then
    as_postgres -d postgres -c "CREATE DATABASE $db OWNER emergency"
  fi
  as_postgres -d "$db" -c "CREATE EXTENSION IF NOT EXISTS postgis"
done
# pgRouting is not a trusted extension (superuser only): put it in the template once, so
# the benchmark's throwaway databases (cloned by the non-superuser role) have it.
if [[ $WITH_PGROUTING -eq 1 ]] && ls /usr/share/postgresql/"$PGV"/extension/pgrouting.control >/dev/null 2>&1; then
  as_postgres -d emergency_template -c "CREATE EXTENSION IF NOT EXISTS pgrouting"
fi
# Tests clone this template (CREATE DATABASE .. TEMPLATE), so they need no superuser.
as_postgres -d postgres -c "ALTER DATABASE emergency_template IS_TEMPLATE true"
log "done: postgresql://emergency:emergency@127.0.0.1:5432/emergency"
