//! Pictures for the tests' eyes: a QR code as the PAM conversation draws it in half blocks,
//! turned back into pixels, and a fake camera feed of it for Chromium.
//!
//! A terminal QR code (crates/agent/src/qr.rs) draws light modules and its quiet zone as
//! blocks and dark modules as blanks, two modules a character cell ('▀' is a lit top half).
//! Reading it back here, and not with the renderer's own code, keeps the tests honest: what
//! a phone would scan is what the text shows.

use anyhow::{Context, Result, bail, ensure};
use std::io::Write;
use std::path::Path;

/// An 8-bit greyscale picture, rows top to bottom: 0 is black, 255 white.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GreyImage {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<u8>,
}

impl GreyImage {
    /// A `width`×`height` picture of one shade.
    pub fn filled(width: usize, height: usize, shade: u8) -> GreyImage {
        GreyImage {
            width,
            height,
            pixels: vec![shade; width * height],
        }
    }

    /// The half-block text of a QR code (lines of '█', '▀', '▄', ' '), each module drawn as
    /// a `scale`×`scale` square: blocks white, blanks black. Every line must have the same
    /// number of cells: a blank is a dark module, so a line whose trailing blanks were
    /// trimmed would read as a different code, and is refused instead of guessed at.
    pub fn from_half_blocks(picture: &str, scale: usize) -> Result<GreyImage> {
        ensure!(scale > 0, "scale must be at least 1");
        let rows: Vec<Vec<char>> = picture.lines().map(|l| l.chars().collect()).collect();
        let width = rows.iter().map(Vec::len).max().unwrap_or(0);
        ensure!(width > 0, "no QR code in the picture");
        if let Some(r) = rows.iter().position(|r| r.len() != width) {
            bail!(
                "half-block line {r} has {} cells, not {width}",
                rows[r].len()
            );
        }
        let mut img = GreyImage::filled(width * scale, rows.len() * 2 * scale, 255);
        for (r, row) in rows.iter().enumerate() {
            for (x, c) in row.iter().enumerate() {
                let (top, bottom) = match c {
                    '█' => (true, true),
                    '▀' => (true, false),
                    '▄' => (false, true),
                    ' ' => (false, false),
                    other => bail!("not a half block: {other:?} at line {r}, cell {x}"),
                };
                for (y, lit) in [(2 * r, top), (2 * r + 1, bottom)] {
                    if !lit {
                        img.fill_square(x * scale, y * scale, scale, 0);
                    }
                }
            }
        }
        Ok(img)
    }

    fn fill_square(&mut self, left: usize, top: usize, size: usize, shade: u8) {
        for y in top..(top + size).min(self.height) {
            let row = y * self.width;
            let end = (left + size).min(self.width);
            if left < end {
                self.pixels[row + left..row + end].fill(shade);
            }
        }
    }

    /// This picture in the middle of a `width`×`height` one of `background` (cut to fit).
    pub fn centered(&self, width: usize, height: usize, background: u8) -> GreyImage {
        let mut out = GreyImage::filled(width, height, background);
        let (dx, sx) = offsets(width, self.width);
        let (dy, sy) = offsets(height, self.height);
        let cols = self.width.min(width);
        for y in 0..self.height.min(height) {
            let src = (sy + y) * self.width + sx;
            let dst = (dy + y) * width + dx;
            out.pixels[dst..dst + cols].copy_from_slice(&self.pixels[src..src + cols]);
        }
        out
    }

    /// The mean shade, 0–255.
    pub fn mean(&self) -> f64 {
        if self.pixels.is_empty() {
            return 0.0;
        }
        self.pixels.iter().map(|&p| f64::from(p)).sum::<f64>() / self.pixels.len() as f64
    }

    pub fn write_png(&self, path: &Path) -> Result<()> {
        let file = std::fs::File::create(path).with_context(|| path.display().to_string())?;
        let mut enc = png::Encoder::new(
            std::io::BufWriter::new(file),
            u32::try_from(self.width)?,
            u32::try_from(self.height)?,
        );
        enc.set_color(png::ColorType::Grayscale);
        enc.set_depth(png::BitDepth::Eight);
        enc.write_header()?.write_image_data(&self.pixels)?;
        Ok(())
    }
}

/// Where a picture of `inner` starts inside `outer` (destination, source): centred, or cut.
fn offsets(outer: usize, inner: usize) -> (usize, usize) {
    if inner <= outer {
        ((outer - inner) / 2, 0)
    } else {
        (0, (inner - outer) / 2)
    }
}

/// The frame size of the fake camera: what a phone's preview typically asks for.
pub const CAMERA_WIDTH: usize = 640;
pub const CAMERA_HEIGHT: usize = 480;
/// Pixels a module when the code fits; a bigger code is drawn smaller (at least 2).
const CAMERA_MODULE_PX: usize = 8;
/// White around the code on every side, in pixels, past its own quiet zone: a held-up
/// screen seen by a camera is never cropped to the code's edge.
const CAMERA_BORDER_PX: usize = 32;
/// Chromium loops the file, so a few identical frames make a steady picture.
const CAMERA_FRAMES: usize = 5;

/// Writes a fake camera feed showing the half-block QR `picture` (as the PAM conversation
/// printed it) in the middle of a 640×480 white frame; returns the picture as shown, for a
/// test to compare with what the page saw.
pub fn y4m_from_qr_picture(picture: &str, path: &Path) -> Result<GreyImage> {
    let rows = picture.lines().count();
    let cols = picture
        .lines()
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(0);
    let modules = cols.max(rows * 2).max(1);
    let room = CAMERA_HEIGHT.min(CAMERA_WIDTH) - 2 * CAMERA_BORDER_PX;
    let scale = (room / modules).clamp(2, CAMERA_MODULE_PX);
    let code = GreyImage::from_half_blocks(picture, scale)?;
    let frame = code.centered(CAMERA_WIDTH, CAMERA_HEIGHT, 255);
    y4m_from_grey(&frame, path)?;
    Ok(frame)
}

/// Writes `img` as a YUV4MPEG2 file Chromium plays as a camera
/// (`--use-file-for-fake-video-capture`). Chromium's reader takes 4:2:0 planar only
/// ("C420"; it refuses 4:4:4 and mono), progressive, even sizes. Greys map to BT.601 studio
/// range (16–235), which Chromium assumes for camera frames, so white stays white on a
/// canvas; chroma is neutral (128).
pub fn y4m_from_grey(img: &GreyImage, path: &Path) -> Result<()> {
    ensure!(
        img.width.is_multiple_of(2)
            && img.height.is_multiple_of(2)
            && img.width > 0
            && img.height > 0,
        "a 4:2:0 frame needs even, non-zero sizes, not {}x{}",
        img.width,
        img.height
    );
    ensure!(
        img.pixels.len() == img.width * img.height,
        "picture has {} pixels, not {}x{}",
        img.pixels.len(),
        img.width,
        img.height
    );
    let luma: Vec<u8> = img
        .pixels
        .iter()
        .map(|&p| (16 + (u32::from(p) * 219 + 127) / 255) as u8)
        .collect();
    let chroma = vec![128u8; (img.width / 2) * (img.height / 2) * 2];
    let file = std::fs::File::create(path).with_context(|| path.display().to_string())?;
    let mut out = std::io::BufWriter::new(file);
    writeln!(
        out,
        "YUV4MPEG2 W{} H{} F10:1 Ip A1:1 C420",
        img.width, img.height
    )?;
    for _ in 0..CAMERA_FRAMES {
        out.write_all(b"FRAME\n")?;
        out.write_all(&luma)?;
        out.write_all(&chroma)?;
    }
    out.flush()?;
    Ok(())
}
