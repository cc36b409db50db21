//! The offline QR challenge as the tile image: black modules on white with a quiet zone,
//! drawn into a 32-bit top-down DIB section that LogonUI shows in place of the logo.

use qrcode::{Color, QrCode};
use windows::Win32::Graphics::Gdi::{
    BI_RGB, BITMAPINFO, BITMAPINFOHEADER, CreateDIBSection, DIB_RGB_COLORS, HBITMAP,
};

/// Quiet zone, in modules (ISO/IEC 18004 asks for 4).
const QUIET: usize = 4;
/// Largest side in pixels (the tile image area is about 192-256 px).
const MAX_SIDE: usize = 256;

/// The QR as rows of dark (true) / light modules, quiet zone included.
pub fn modules(payload: &str) -> Result<Vec<Vec<bool>>, String> {
    let code = QrCode::new(payload.as_bytes()).map_err(|e| format!("QR: {e}"))?;
    let w = code.width();
    let colors = code.to_colors();
    let side = w + 2 * QUIET;
    let mut rows = vec![vec![false; side]; side];
    for y in 0..w {
        for x in 0..w {
            rows[y + QUIET][x + QUIET] = colors[y * w + x] == Color::Dark;
        }
    }
    Ok(rows)
}

/// BGRA pixels (top-down) and the side length, each module a square of whole pixels.
pub fn pixels(rows: &[Vec<bool>]) -> (Vec<u32>, usize) {
    let n = rows.len().max(1);
    let scale = (MAX_SIDE / n).max(1);
    let side = n * scale;
    let mut px = vec![0x00FF_FFFFu32; side * side];
    for (my, row) in rows.iter().enumerate() {
        for (mx, &dark) in row.iter().enumerate() {
            if !dark {
                continue;
            }
            for dy in 0..scale {
                let start = (my * scale + dy) * side + mx * scale;
                px[start..start + scale].fill(0);
            }
        }
    }
    (px, side)
}

/// An HBITMAP of `pixels`; the caller owns it (DeleteObject).
pub fn bitmap(px: &[u32], side: usize) -> Result<HBITMAP, String> {
    let info = BITMAPINFO {
        bmiHeader: BITMAPINFOHEADER {
            biSize: std::mem::size_of::<BITMAPINFOHEADER>() as u32,
            biWidth: side as i32,
            // Negative height: top-down rows.
            biHeight: -(side as i32),
            biPlanes: 1,
            biBitCount: 32,
            biCompression: BI_RGB.0,
            ..Default::default()
        },
        ..Default::default()
    };
    let mut bits: *mut core::ffi::c_void = std::ptr::null_mut();
    // SAFETY: `info` describes a side×side 32-bit DIB; `bits` receives its pixel memory.
    let bmp = unsafe { CreateDIBSection(None, &info, DIB_RGB_COLORS, &mut bits, None, 0) }
        .map_err(|e| format!("CreateDIBSection: {e}"))?;
    if bits.is_null() {
        return Err("CreateDIBSection gave no pixels".into());
    }
    // SAFETY: the section holds exactly side*side u32 pixels.
    unsafe { std::ptr::copy_nonoverlapping(px.as_ptr(), bits.cast::<u32>(), side * side) };
    Ok(bmp)
}

/// The tile image shown before any QR: a plain padlock-grey square.
pub fn logo() -> Result<HBITMAP, String> {
    let side = 128;
    let mut px = vec![0x0030_3840u32; side * side];
    // A white keyhole: a disc and a bar.
    for y in 0..side {
        for x in 0..side {
            let (dx, dy) = (x as i32 - 64, y as i32 - 52);
            if dx * dx + dy * dy < 14 * 14 || (dx.abs() < 6 && (52..92).contains(&(y as i32))) {
                px[y * side + x] = 0x00FF_FFFF;
            }
        }
    }
    bitmap(&px, side)
}
