#!/usr/bin/env bash
# Re-fetch the vendored browser libraries with `npm pack` (exact versions, from the npm
# registry) into frontend/static/vendor/, keeping only the dist files and their licences,
# and check them against frontend/static/vendor/SHA256SUMS.
#
#   scripts/vendor.sh            fetch and verify (fails if any file differs from SHA256SUMS)
#   scripts/vendor.sh --update   fetch and rewrite SHA256SUMS (after changing a version here)
set -euo pipefail

MAPLIBRE_VERSION="5.24.1"   # BSD-3-Clause
ECHARTS_VERSION="5.6.0"     # Apache-2.0

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENDOR="$ROOT/frontend/static/vendor"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# fetch <package> <version> <dest dir> <file in package>...
fetch() {
  local pkg="$1" version="$2" dest="$3"
  shift 3
  local tarball
  tarball="$(cd "$WORK" && npm pack --silent "$pkg@$version" | tail -n 1)"
  mkdir -p "$WORK/$pkg" "$VENDOR/$dest"
  tar -xzf "$WORK/$tarball" -C "$WORK/$pkg"
  for file in "$@"; do
    install -m 0644 "$WORK/$pkg/package/$file" "$VENDOR/$dest/$(basename "$file")"
  done
}

fetch maplibre-gl "$MAPLIBRE_VERSION" maplibre-gl \
  dist/maplibre-gl.js dist/maplibre-gl.css LICENSE.txt
fetch echarts "$ECHARTS_VERSION" echarts \
  dist/echarts.min.js LICENSE NOTICE

printf 'maplibre-gl %s BSD-3-Clause\necharts %s Apache-2.0\n' \
  "$MAPLIBRE_VERSION" "$ECHARTS_VERSION" >"$VENDOR/VERSIONS"

cd "$VENDOR"
if [[ "${1:-}" == "--update" ]]; then
  find . -type f ! -name SHA256SUMS -printf '%P\n' | LC_ALL=C sort | xargs sha256sum >SHA256SUMS
  echo "wrote $VENDOR/SHA256SUMS"
else
  sha256sum --check --strict SHA256SUMS
fi
