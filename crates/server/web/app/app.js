// Placeholder of the server branch (app-serving): the token app's real modules replace it.
if ('serviceWorker' in navigator) {
  navigator.serviceWorker.register('sw.js', { scope: './' });
}
