// Service worker: keeps the app shell available offline. Generations, the gallery and provenance checks
// always go to the server; the one exception is the on-device melody model (/api/music/onnx/*) and the
// libraries under /static/vendor/, kept after first use so the music page samples with no server.

const CACHE = "genstudio-shell-v7";
const SHELL = [
  "/",
  "/music",
  "/faceswap",
  "/models",
  "/static/app.css",
  "/static/music.css",
  "/static/js/api.js",
  "/static/js/ui.js",
  "/static/js/jobcard.js",
  "/static/js/gallery.js",
  "/static/js/verify.js",
  "/static/js/app.js",
  "/static/js/editor.js",
  "/static/js/customise.js",
  "/static/js/models.js",
  "/static/js/faceswap.js",
  "/static/js/facepicker.js",
  "/static/js/music.js",
  "/static/js/music/page.js",
  "/static/js/music/roll.js",
  "/static/js/music/sheet.js",
  "/static/js/music/player.js",
  "/static/js/music/forms.js",
  "/static/js/music/picks.js",
  "/static/js/music/cards.js",
  "/static/js/music/uploads.js",
  "/static/js/music/device.js",
  "/static/js/music-ondevice.js",
  "/manifest.webmanifest",
  "/static/icons/icon-192.png",
  "/static/icons/icon-512.png",
  "/static/icons/apple-touch-icon.png",
];
const SHELL_PATHS = new Set(SHELL);
// Cached when first fetched (large: the onnxruntime-web wasm is 14 MB), not at install.
const RUNTIME_PREFIXES = ["/static/vendor/", "/api/music/onnx/"];

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
  const path = url.pathname;
  const runtime = RUNTIME_PREFIXES.some((prefix) => path.startsWith(prefix));
  if (!runtime && (path.startsWith("/api/") || path === "/api")) return;
  if (!runtime && !SHELL_PATHS.has(path)) return;
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
