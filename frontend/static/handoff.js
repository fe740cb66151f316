// Hand-off links from the responder's task card to map apps on the phone (pure; no DOM).
// Each app gets the scene in its own datum: `geo:` (any maps app) WGS-84, 高德 / Amap
// GCJ-02 (uri.amap.com/navigation, coordinate=gaode), 百度 BD-09 (api.map.baidu.com
// /direction, coord_type=bd09ll; the app takes it over when installed). The links only
// leave the server when the responder taps one.
import { wgs84ToBd09, wgs84ToGcj02 } from "/static/crs.js";

// Names inside the links: the separators of their formats are left out.
const linkName = (text) => encodeURIComponent(String(text || "").replace(/[|,()]/g, " ").trim() || "scene");
const deg = (x) => x.toFixed(6);

/**
 * The links to drive to `scene` ([lon, lat], WGS-84) named `name`; `origin` ([lon, lat] or
 * null: the app's own position) is used where the format wants a start.
 * Returns {geo, amap, baidu}.
 */
export function handoffLinks(scene, name, origin = null, originName = "") {
  const label = linkName(name);
  const [lon, lat] = scene;
  const geo = `geo:${deg(lat)},${deg(lon)}?q=${deg(lat)},${deg(lon)}(${label})`;
  const [glon, glat] = wgs84ToGcj02(lon, lat);
  const amap = `https://uri.amap.com/navigation?to=${deg(glon)},${deg(glat)},${label}`
    + "&mode=car&src=emergency-responder&coordinate=gaode&callnative=1";
  const [blon, blat] = wgs84ToBd09(lon, lat);
  let start = "";
  if (origin) {
    const [olon, olat] = wgs84ToBd09(origin[0], origin[1]);
    start = `origin=latlng:${deg(olat)},${deg(olon)}|name:${linkName(originName)}&`;
  }
  const baidu = `https://api.map.baidu.com/direction?${start}destination=latlng:${deg(blat)},${deg(blon)}`
    + `|name:${label}&coord_type=bd09ll&mode=driving&output=html&src=webapp.emergency.responder`;
  return { geo, amap, baidu };
}
