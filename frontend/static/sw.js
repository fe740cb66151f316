// Service worker of the responder app: keeps the app shell (with the map library) so the
// app opens without a network. The API and the WebSocket are never cached (tasks come from
// the server and the app's own localStorage). Road tiles the phone has shown are kept in a
// second, bounded cache, so the task's map still has its roads in a dead zone. Network
// first, so a deploy is picked up at once when online.
const CACHE = "responder-shell-v1";
const TILES = "responder-tiles-v1";
const MAX_TILES = 400;  // tiles kept (~a few MB): the newest ones
const SHELL = [
  "/responder",
  "/static/responder.js",
  "/static/responder_map.js",
  "/static/crs.js",
  "/static/handoff.js",
  "/static/responder.css",
  "/static/live.js",
  "/static/vendor/maplibre-gl/maplibre-gl.js",
  "/static/vendor/maplibre-gl/maplibre-gl.css",
  "/static/manifest.webmanifest",
  "/static/icon.svg",
  "/static/icon-192.png",
];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((k) => k !== CACHE && k !== TILES).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== self.location.origin) return;
  if (url.pathname.startsWith("/tiles/roads/")) {
    event.respondWith(tile(event.request, url.pathname));
    return;
  }
  if (!SHELL.includes(url.pathname)) return;  // API calls: straight to the network
  event.respondWith(
    fetch(event.request)
      .then((response) => {
        if (response.ok) {
          const copy = response.clone();
          caches.open(CACHE).then((cache) => cache.put(url.pathname, copy));
        }
        return response;
      })
      .catch(() => caches.match(url.pathname)),
  );
});

/** A road tile: from the network (kept for later), else as kept. */
async function tile(request, path) {
  try {
    const response = await fetch(request);
    if (response.ok) {
      const copy = response.clone();
      caches.open(TILES).then(async (cache) => {
        await cache.put(path, copy);
        const keys = await cache.keys();
        for (const old of keys.slice(0, Math.max(0, keys.length - MAX_TILES))) await cache.delete(old);
      });
    }
    return response;
  } catch (err) {
    const kept = await caches.match(path, { cacheName: TILES });
    if (kept) return kept;
    throw err;
  }
}
