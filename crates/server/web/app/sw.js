// Placeholder of the server branch (app-serving): the token app's real service worker
// replaces it. latchkeyd replaces the marker below with a hash over all the app's files, so
// any change to any file gives a new service worker and a new cache.
const CACHE = 'latchkey-app-__LK_ASSETS_VERSION__';
