//! The fake camera: a QR code drawn as the PAM conversation draws it, played to Chromium as
//! a YUV4MPEG2 file, arrives in `getUserMedia` frames that still read as the same code.
//! Decoding in the page is the token app's job (with its vendored jsQR); here the frame the
//! page drew is sent back and read by the token CLI's own reader.

use base64::Engine;
use latchkey_testkit::TestServer;
use latchkey_testkit::browser::{Browser, LaunchOptions};
use latchkey_testkit::camera::{CAMERA_HEIGHT, CAMERA_WIDTH, y4m_from_qr_picture};
use qrcode::{Color, EcLevel, QrCode};

/// A QR code as the PAM conversation prints it (crates/agent/src/qr.rs, private there):
/// light modules and a 2-module quiet zone as blocks, dark modules blank, two rows a line,
/// an odd last row's missing bottom half lit.
fn terminal_qr(data: &str) -> String {
    const MARGIN: usize = 2;
    let code = QrCode::with_error_correction_level(data.as_bytes(), EcLevel::L).unwrap();
    let (width, colors) = (code.width(), code.to_colors());
    let size = width + 2 * MARGIN;
    let lit = |x: usize, y: usize| {
        y >= size
            || x < MARGIN
            || y < MARGIN
            || x >= MARGIN + width
            || y >= MARGIN + width
            || colors[(y - MARGIN) * width + (x - MARGIN)] == Color::Light
    };
    (0..size)
        .step_by(2)
        .map(|y| {
            (0..size)
                .map(|x| match (lit(x, y), lit(x, y + 1)) {
                    (true, true) => '█',
                    (true, false) => '▀',
                    (false, true) => '▄',
                    (false, false) => ' ',
                })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Opens the camera, waits for a decoded frame, draws it on a canvas and returns its size,
/// mean brightness and luma (base64, one byte a pixel).
const GRAB_FRAME: &str = r#"
const stream = await navigator.mediaDevices.getUserMedia({ video: true });
try {
  const video = document.createElement('video');
  video.muted = true;
  video.playsInline = true;
  video.srcObject = stream;
  await video.play();
  await new Promise((done) => video.requestVideoFrameCallback(() => done()));
  const canvas = document.createElement('canvas');
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  const g = canvas.getContext('2d', { willReadFrequently: true });
  g.drawImage(video, 0, 0);
  const rgba = g.getImageData(0, 0, canvas.width, canvas.height).data;
  const luma = new Uint8Array(rgba.length / 4);
  let sum = 0;
  for (let i = 0; i < luma.length; i++) {
    const y = 0.299 * rgba[4 * i] + 0.587 * rgba[4 * i + 1] + 0.114 * rgba[4 * i + 2];
    luma[i] = Math.round(y);
    sum += y;
  }
  let bin = '';
  for (let i = 0; i < luma.length; i += 0x8000) {
    bin += String.fromCharCode.apply(null, luma.subarray(i, i + 0x8000));
  }
  return {
    width: canvas.width,
    height: canvas.height,
    mean: sum / luma.length,
    label: stream.getVideoTracks()[0].label,
    luma: btoa(bin),
  };
} finally {
  stream.getTracks().forEach((t) => t.stop());
}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium and the driver's node_modules: scripts/test runs it"]
async fn the_fake_camera_shows_get_user_media_the_qr_code_it_was_given() {
    let text = "latchkey camera smoke test: otpauth://totp/alice?secret=JBSWY3DPEHPK3PXP";
    let dir = tempfile::tempdir().unwrap();
    let feed = dir.path().join("qr.y4m");
    let shown = y4m_from_qr_picture(&terminal_qr(text), &feed).unwrap();

    let srv = TestServer::start().await.unwrap();
    let opts = LaunchOptions::for_server(&srv).unwrap().camera(&feed);
    let mut b = Browser::launch(opts).await.unwrap();
    b.goto(&format!("{}/healthz", srv.url())).await.unwrap();
    let frame = b.eval(GRAB_FRAME).await.unwrap();

    assert_eq!(frame["width"], CAMERA_WIDTH, "{}", frame["label"]);
    assert_eq!(frame["height"], CAMERA_HEIGHT);
    let mean = frame["mean"].as_f64().unwrap();
    assert!(
        (mean - shown.mean()).abs() < 8.0,
        "the page sees mean brightness {mean:.1}, the file shows {:.1}",
        shown.mean()
    );

    let luma = base64::engine::general_purpose::STANDARD
        .decode(frame["luma"].as_str().unwrap())
        .unwrap();
    let seen = latchkey_testkit::camera::GreyImage {
        width: CAMERA_WIDTH,
        height: CAMERA_HEIGHT,
        pixels: luma,
    };
    let png = b.artefacts().join("camera-frame.png");
    seen.write_png(&png).unwrap();
    assert_eq!(latchkey_token::offline::read_png(&png).unwrap(), text);
    assert!(b.console().await.unwrap().errors.is_empty());
}
