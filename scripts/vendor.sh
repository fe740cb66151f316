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
SWAGGER_UI_VERSION="5.36.0" # Apache-2.0: /docs, served from here (no CDN on a closed network)
REDOC_VERSION="2.5.4"       # MIT: /redoc

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
fetch swagger-ui-dist "$SWAGGER_UI_VERSION" swagger-ui \
  swagger-ui-bundle.js swagger-ui.css favicon-32x32.png LICENSE
fetch redoc "$REDOC_VERSION" redoc \
  bundles/redoc.standalone.js LICENSE
# ReDoc's sidebar draws the Redocly logo from cdn.redoc.ly on every load: on a closed network
# that is an outbound request. The one patch to a vendored file: an empty inline image.
sed -i 's#https://cdn.redoc.ly/redoc/logo-mini.svg#data:image/gif;base64,R0lGODlhAQABAAAAACwAAAAAAQABAAA=#' \
  "$VENDOR/redoc/redoc.standalone.js"

printf 'maplibre-gl %s BSD-3-Clause\necharts %s Apache-2.0\nswagger-ui-dist %s Apache-2.0\nredoc %s MIT\n' \
  "$MAPLIBRE_VERSION" "$ECHARTS_VERSION" "$SWAGGER_UI_VERSION" "$REDOC_VERSION" >"$VENDOR/VERSIONS"

cd "$VENDOR"
if [[ "${1:-}" == "--update" ]]; then
  find . -type f ! -name SHA256SUMS -printf '%P\n' | LC_ALL=C sort | xargs sha256sum >SHA256SUMS
  echo "wrote $VENDOR/SHA256SUMS"
else
  sha256sum --check --strict SHA256SUMS
fi
