//! Answering an offline login: the login screen shows a QR challenge (a code sealed with
//! HPKE to this app's X25519 key, with the login context readable beside it). The app finds
//! the account whose key it was sealed to, opens it, and shows the context and the code.

use crate::account::Account;
use crate::error::{Error, Result};
use latchkey_crypto::challenge;
use latchkey_proto::Secret;
use std::path::Path;

/// What the person sees: where the login is, and the code to type there.
#[derive(Debug)]
pub struct Opened {
    pub account: String,
    pub user: String,
    pub host: String,
    pub client_id: String,
    pub expires_at: i64,
    /// The code to type at the login screen (`Debug` shows `***`).
    pub code: Secret,
}

/// Why a challenge cannot be answered, in the order [`open`] checks. The names are the
/// `expect.error` of the shared test vectors (`tests/token-app-vectors.json`), which the web
/// token app checks the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unanswerable {
    /// No `LK1:` prefix, not base45, truncated, or not a challenge's layout.
    NotAChallenge,
    /// Its `expires_at` has passed (the login screen has made a new one).
    Expired,
    /// Sealed to a key none of the accounts holds.
    UnknownKey,
    /// The key matches an account of another user than the challenge names.
    WrongUser,
    /// It does not open (changed on the way, header or ciphertext, or forged), or what it
    /// holds is not a code.
    Damaged,
}

impl Unanswerable {
    pub fn as_str(self) -> &'static str {
        match self {
            Unanswerable::NotAChallenge => "not_a_challenge",
            Unanswerable::Expired => "expired",
            Unanswerable::UnknownKey => "unknown_key",
            Unanswerable::WrongUser => "wrong_user",
            Unanswerable::Damaged => "damaged",
        }
    }
}

fn err(kind: Unanswerable, message: impl Into<String>) -> Error {
    Error::Challenge {
        kind,
        message: message.into(),
    }
}

/// A text that [`challenge::from_text`] refused.
pub fn not_a_challenge(e: latchkey_crypto::Error) -> Error {
    err(
        Unanswerable::NotAChallenge,
        format!("not a latchkey offline challenge: {e}"),
    )
}

/// Opens a challenge text (`LK1:…`) with the matching account's key.
pub fn open(accounts: &[Account], text: &str, now: i64) -> Result<Opened> {
    let c = challenge::from_text(text).map_err(not_a_challenge)?;
    let expires_at = i64::from(c.expires_at);
    if now > expires_at {
        return Err(err(
            Unanswerable::Expired,
            format!(
                "this challenge for {}@{} expired at {}: start the login again",
                c.user,
                c.host,
                hhmm(expires_at)
            ),
        ));
    }
    let account = accounts
        .iter()
        .find(|a| challenge::key_id(&a.x25519_public()) == c.key_id)
        .ok_or_else(|| {
            err(
                Unanswerable::UnknownKey,
                format!(
                    "this challenge for {}@{} was made for another app's key (unknown key): none of this app's accounts can answer it",
                    c.user, c.host
                ),
            )
        })?;
    if account.user != c.user {
        return Err(err(
            Unanswerable::WrongUser,
            format!(
                "this challenge is for user {} but the matching account {} belongs to {}",
                c.user, account.name, account.user
            ),
        ));
    }
    let mut code = challenge::open(account.x25519_secret.expose(), &c).map_err(|_| {
        err(
            Unanswerable::Damaged,
            "the challenge does not open with this app's key (damaged or forged)",
        )
    })?;
    Ok(Opened {
        account: account.name.clone(),
        user: c.user,
        host: c.host,
        client_id: c.client_id,
        expires_at,
        code: Secret::from(std::mem::take(&mut *code)),
    })
}

/// Reads the QR code in a PNG picture (any PNG colour type; converted to grey here).
pub fn read_png(path: &Path) -> Result<String> {
    let file =
        std::fs::File::open(path).map_err(|e| Error::file(path, format!("cannot open: {e}")))?;
    let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
    // Expand palettes and low bit depths to 8-bit samples; strip 16-bit to 8.
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder
        .read_info()
        .map_err(|e| Error::file(path, format!("not a readable PNG: {e}")))?;
    let (w, h) = (reader.info().width as usize, reader.info().height as usize);
    if w == 0 || h == 0 || w > 8192 || h > 8192 {
        return Err(Error::file(
            path,
            "picture size is out of range (1 to 8192 pixels a side)",
        ));
    }
    let mut buf = vec![0u8; reader.output_buffer_size()];
    let frame = reader
        .next_frame(&mut buf)
        .map_err(|e| Error::file(path, format!("not a readable PNG: {e}")))?;
    let grey = to_grey(
        &buf[..frame.buffer_size()],
        frame.color_type,
        w,
        h,
        frame.line_size,
    )
    .ok_or_else(|| Error::file(path, "unsupported PNG pixel format"))?;
    let mut img = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| grey[y * w + x]);
    let grids = img.detect_grids();
    let grid = grids
        .first()
        .ok_or_else(|| Error::file(path, "no QR code found in the picture"))?;
    let (_, content) = grid
        .decode()
        .map_err(|e| Error::file(path, format!("the QR code cannot be read: {e}")))?;
    Ok(content)
}

/// 8-bit samples of any colour type to one grey byte per pixel (ITU-R BT.601 luma; alpha
/// composited over white, as a screenshot of a transparent picture would look).
fn to_grey(buf: &[u8], color: png::ColorType, w: usize, h: usize, line: usize) -> Option<Vec<u8>> {
    let channels = match color {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Indexed => return None,
    };
    let mut out = Vec::with_capacity(w * h);
    for y in 0..h {
        let row = buf.get(y * line..y * line + w * channels)?;
        for px in row.chunks_exact(channels) {
            let (luma, alpha) = match *px {
                [g] => (u32::from(g), 255),
                [g, a] => (u32::from(g), u32::from(a)),
                [r, g, b] => (
                    (299 * u32::from(r) + 587 * u32::from(g) + 114 * u32::from(b)) / 1000,
                    255,
                ),
                [r, g, b, a] => (
                    (299 * u32::from(r) + 587 * u32::from(g) + 114 * u32::from(b)) / 1000,
                    u32::from(a),
                ),
                _ => return None,
            };
            let v = (luma * alpha + 255 * (255 - alpha)) / 255;
            out.push(u8::try_from(v.min(255)).unwrap_or(255));
        }
    }
    Some(out)
}

/// Local `HH:MM` of a Unix time.
#[allow(unsafe_code)]
pub fn hhmm(unix: i64) -> String {
    let t: libc::time_t = unix as libc::time_t;
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers refer to live values of the right types in this frame;
    // localtime_r is the thread-safe variant and writes only into `tm`.
    let ok = !unsafe { libc::localtime_r(&t, &mut tm) }.is_null();
    if ok {
        format!("{:02}:{:02}", tm.tm_hour, tm.tm_min)
    } else {
        let s = unix.rem_euclid(86_400);
        format!("{:02}:{:02} UTC", s / 3600, s % 3600 / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grey_conversion_composites_alpha_over_white() {
        let rgba = [0, 0, 0, 255, 0, 0, 0, 0, 255, 255, 255, 255];
        let g = to_grey(&rgba, png::ColorType::Rgba, 3, 1, 12).unwrap();
        assert_eq!(g, vec![0, 255, 255]);
        let rgb = [255, 0, 0];
        assert_eq!(
            to_grey(&rgb, png::ColorType::Rgb, 1, 1, 3).unwrap(),
            vec![76]
        );
        assert!(to_grey(&[1, 2], png::ColorType::Rgb, 1, 1, 3).is_none());
    }
}
