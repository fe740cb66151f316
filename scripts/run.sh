#!/usr/bin/env bash
# Set up, migrate, load the demo city and its roads, and serve at http://127.0.0.1:8000 (OpenAPI at /docs).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
UV="uv"; command -v uv >/dev/null || UV="python3 -m uv"
# Signed checkpoints of the audit chain, outside the database (docs/security.md): here a
# folder of the checkout; in production a folder the database's superuser cannot write.
export EMERGENCY_AUDIT_CHECKPOINT_DIR="${EMERGENCY_AUDIT_CHECKPOINT_DIR:-$PWD/var/audit-checkpoints}"
$UV run emergency migrate
$UV run emergency seed demo
$UV run emergency load-osm ${EMERGENCY_OSM_FILE:+"$EMERGENCY_OSM_FILE"}
exec $UV run emergency serve "$@"
