// Coordinate systems of the Chinese map apps, from WGS-84 (pure functions, no DOM).
// GCJ-02 is the obfuscated datum of maps published in China (高德 / Amap uses it); BD-09 is
// Baidu's further offset of GCJ-02. The forward transform is the published closed form, in
// the same arithmetic and constants as gis/crs.py (which uses the `prcoords` package), and
// like gis/crs.py it applies only inside China's bounding box: outside, both equal WGS-84.

const GCJ_A = 6378245;                        // Krasovsky 1940 semi-major axis (m)
const GCJ_EE = 0.00669342162296594323;        // its first eccentricity squared
const BD_DLAT = 0.006;                        // Baidu's fixed offsets (deg)
const BD_DLON = 0.0065;
const RAD = Math.PI / 180;

/** Whether [lon, lat] is in the box where the transforms apply (prcoords' sanity check). */
export function inChina(lon, lat) {
  return lat >= 0.8293 && lat <= 55.8271 && lon >= 72.004 && lon <= 137.8347;
}

/** WGS-84 to GCJ-02 without the China check: [lon, lat] in degrees. */
function wgsToGcj(lon, lat) {
  const x = lon - 105;
  const y = lat - 35;
  // Offsets as arc lengths in metres ...
  const dLatM = -100 + 2 * x + 3 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * Math.sqrt(Math.abs(x)) + (
    2 * Math.sin(x * 6 * Math.PI) + 2 * Math.sin(x * 2 * Math.PI)
    + 2 * Math.sin(y * Math.PI) + 4 * Math.sin(y / 3 * Math.PI)
    + 16 * Math.sin(y / 12 * Math.PI) + 32 * Math.sin(y / 30 * Math.PI)
  ) * 20 / 3;
  const dLonM = 300 + x + 2 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * Math.sqrt(Math.abs(x)) + (
    2 * Math.sin(x * 6 * Math.PI) + 2 * Math.sin(x * 2 * Math.PI)
    + 2 * Math.sin(x * Math.PI) + 4 * Math.sin(x / 3 * Math.PI)
    + 15 * Math.sin(x / 12 * Math.PI) + 30 * Math.sin(x / 30 * Math.PI)
  ) * 20 / 3;
  // ... turned into degrees with the Krasovsky ellipsoid's degree lengths.
  const radLat = lat * RAD;
  const magic = 1 - GCJ_EE * Math.pow(Math.sin(radLat), 2);
  const latDegM = (GCJ_A * (1 - GCJ_EE)) / Math.pow(magic, 1.5) * RAD;
  const lonDegM = GCJ_A * Math.cos(radLat) / Math.sqrt(magic) * RAD;
  return [lon + dLonM / lonDegM, lat + dLatM / latDegM];
}

/** GCJ-02 to BD-09 (no China check, as prcoords' gcj_bd). */
function gcjToBd(lon, lat) {
  const r = Math.sqrt(lon * lon + lat * lat) + 0.00002 * Math.sin(lat * RAD * 3000);
  const theta = Math.atan2(lat, lon) + 0.000003 * Math.cos(lon * RAD * 3000);
  return [r * Math.cos(theta) + BD_DLON, r * Math.sin(theta) + BD_DLAT];
}

/** WGS-84 [lon, lat] to GCJ-02 (unchanged outside China). */
export function wgs84ToGcj02(lon, lat) {
  return inChina(lon, lat) ? wgsToGcj(lon, lat) : [lon, lat];
}

/** WGS-84 [lon, lat] to BD-09 (unchanged outside China). */
export function wgs84ToBd09(lon, lat) {
  return inChina(lon, lat) ? gcjToBd(...wgsToGcj(lon, lat)) : [lon, lat];
}

/** WGS-84 [lon, lat] to `crs` ("wgs84", "gcj02" or "bd09"), as gis/crs.py's from_wgs84. */
export function fromWgs84(lon, lat, crs) {
  if (crs === "gcj02") return wgs84ToGcj02(lon, lat);
  if (crs === "bd09") return wgs84ToBd09(lon, lat);
  if (crs === "wgs84") return [lon, lat];
  throw new Error(`unknown crs ${crs}`);
}
