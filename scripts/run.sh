#!/usr/bin/env bash
# Set up, migrate, load the demo city (roads included), and serve at http://127.0.0.1:8000 (OpenAPI at /docs).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
UV="uv"; command -v uv >/dev/null || UV="python3 -m uv"
# Signed checkpoints of the audit chain, outside the database (docs/security.md): here a
# folder of the checkout; in production a folder the database's superuser cannot write.
export EMERGENCY_AUDIT_CHECKPOINT_DIR="${EMERGENCY_AUDIT_CHECKPOINT_DIR:-$PWD/var/audit-checkpoints}"
$UV run emergency migrate
# The demo city (EMERGENCY_DEMO_CITY, default columbus) with its roads and place index;
# with EMERGENCY_OSM_FILE set, that file's roads and places replace the demo's.
if [ -n "${EMERGENCY_OSM_FILE:-}" ]; then
  $UV run emergency seed demo --no-roads
  $UV run emergency load-osm "$EMERGENCY_OSM_FILE"
else
  $UV run emergency seed demo
fi
exec $UV run emergency serve "$@"
