// Service worker: keeps the app shell available offline. It never touches /api: generations,
// the gallery and provenance checks always go to the server.

const CACHE = "genstudio-shell-v1";
const SHELL = [
  "/",
  "/static/app.css",
  "/static/js/app.js",
  "/static/js/api.js",
  "/manifest.webmanifest",
  "/static/icons/icon-192.png",
  "/static/icons/icon-512.png",
  "/static/icons/apple-touch-icon.png",
];
const SHELL_PATHS = new Set(SHELL);

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((k) => k.startsWith("genstudio-") && k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

// Network first, so a server upgrade shows at once; the cached shell only when offline.
self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (url.pathname.startsWith("/api/") || url.pathname === "/api") return;
  const path = url.pathname;
  if (!SHELL_PATHS.has(path)) return;
  event.respondWith(
    fetch(request)
      .then((response) => {
        if (response.ok && url.search === "") {
          const copy = response.clone();
          caches.open(CACHE).then((cache) => cache.put(path, copy));
        }
        return response;
      })
      .catch(() => caches.match(path).then((hit) => hit || Response.error())),
  );
});
