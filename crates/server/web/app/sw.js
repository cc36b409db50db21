// The token app's service worker: after the first visit the app opens and works with no
// network at all (codes and offline answers need none). latchkeyd replaces the version below
// with a hash over every asset, so any change brings a new worker and a new cache.
const VERSION = "__LK_ASSETS_VERSION__";
const CACHE = `latchkey-app-${VERSION}`;
const ASSETS = [
  "index.html", "app.css", "app.js", "accounts.js", "api.js", "crypto.js", "lock.js", "push.js",
  "scan.js", "store.js", "ui.js", "manifest.webmanifest", "icon.svg", "icon-192.png", "icon-512.png",
  "vendor/jsqr/jsQR.js", "vendor/noble-ciphers/chacha.js", "vendor/noble-ciphers/_arx.js",
  "vendor/noble-ciphers/_poly1305.js", "vendor/noble-ciphers/utils.js",
];

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches.open(CACHE).then((c) => c.addAll(ASSETS.map((a) => new Request(a, { cache: "no-cache" })))).then(() => self.skipWaiting()),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((k) => k.startsWith("latchkey-app-") && k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener("fetch", (event) => {
  const req = event.request;
  const url = new URL(req.url);
  const scope = new URL(self.registration.scope);
  // Only the app's own files; the API (/v1/…) always goes to the network, never a cache.
  if (req.method !== "GET" || url.origin !== scope.origin || !url.pathname.startsWith(scope.pathname)) return;
  // Pages of the app (/app/, /app/register?code=…) are the one index.html; the query holds a
  // one-time code and must never become a cache key.
  const page = req.mode === "navigate";
  const key = page ? new URL("index.html", scope).href : url.origin + url.pathname;
  event.respondWith(
    caches.open(CACHE).then(async (c) => {
      const hit = await c.match(key);
      if (hit) return hit;
      try {
        return await fetch(req);
      } catch {
        return new Response("latchkey: this file is not in the offline cache", { status: 504, headers: { "content-type": "text/plain" } });
      }
    }),
  );
});
