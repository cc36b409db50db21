// Reads a QR code from the camera: frames from getUserMedia drawn to a canvas and handed to
// the vendored jsQR (vendor/jsqr, loaded as a classic script: `globalThis.jsQR`).

const SCAN_EVERY_MS = 150;
const GIVE_UP_MS = 120000;

/// Starts the rear camera in `video` and resolves with the first QR text `accept` takes
/// (`accept(text)` returns true to stop). Rejects with one clear sentence when the camera is
/// refused or missing. `stop()` on the returned handle ends the scan.
export function scanQr(video, accept) {
  let stream = null;
  let timer = null;
  let stopped = false;
  let rejectOuter = null;
  const stop = () => {
    stopped = true;
    if (timer) clearTimeout(timer);
    if (stream) for (const t of stream.getTracks()) t.stop();
    video.srcObject = null;
    if (rejectOuter) rejectOuter(new Error("scan stopped"));
  };
  const done = new Promise((resolve, reject) => {
    rejectOuter = reject;
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      reject(new Error("This browser gives the app no camera: paste the text instead."));
      return;
    }
    if (typeof globalThis.jsQR !== "function") {
      reject(new Error("The QR reader did not load: paste the text instead."));
      return;
    }
    const started = Date.now();
    navigator.mediaDevices
      .getUserMedia({ video: { facingMode: "environment" }, audio: false })
      .then(async (s) => {
        stream = s;
        if (stopped) return stop();
        video.srcObject = s;
        video.setAttribute("playsinline", "");
        video.muted = true;
        await video.play().catch(() => {});
        const canvas = document.createElement("canvas");
        const ctx = canvas.getContext("2d", { willReadFrequently: true });
        const tick = () => {
          if (stopped) return;
          if (Date.now() - started > GIVE_UP_MS) {
            rejectOuter = null;
            stop();
            reject(new Error("No QR code was found: hold the camera closer, or paste the text."));
            return;
          }
          const w = video.videoWidth;
          const h = video.videoHeight;
          if (w && h) {
            canvas.width = w;
            canvas.height = h;
            ctx.drawImage(video, 0, 0, w, h);
            const img = ctx.getImageData(0, 0, w, h);
            const found = globalThis.jsQR(img.data, w, h, { inversionAttempts: "attemptBoth" });
            if (found && found.data && accept(found.data)) {
              rejectOuter = null;
              stop();
              resolve(found.data);
              return;
            }
          }
          timer = setTimeout(tick, SCAN_EVERY_MS);
        };
        tick();
      })
      .catch((e) => {
        const why =
          e && e.name === "NotAllowedError"
            ? "The camera was not allowed: allow it for this app, or paste the text."
            : "No camera could be opened: paste the text instead.";
        reject(new Error(why));
      });
  });
  return { done, stop };
}
