//! QR codes drawn in the terminal with Unicode half blocks (two modules per character cell).

use qrcode::render::unicode::Dense1x2;
use qrcode::{EcLevel, QrCode};

/// Renders `data` as a QR code for a terminal with a dark background.
///
/// A full block is drawn in the terminal's (light) foreground colour and a space shows its
/// (dark) background, so the QR code's *light* modules and its quiet zone are drawn as blocks
/// and its *dark* modules as spaces. The phone then sees dark modules on a light field, which
/// is what scanners expect. EC level L keeps an `otpauth://` URI small enough for 80×24; a
/// screen has no dirt or creases for the extra redundancy to repair.
pub fn render_terminal(data: &str) -> Result<String, qrcode::types::QrError> {
    let code = QrCode::with_error_correction_level(data.as_bytes(), EcLevel::L)?;
    Ok(code
        .render::<Dense1x2>()
        .dark_color(Dense1x2::Light)
        .light_color(Dense1x2::Dark)
        .quiet_zone(true)
        .build())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use qrcode::Color;

    /// Reads the half-block picture back into rows of "is this module drawn as a block".
    fn lit_pixels(image: &str) -> Vec<Vec<bool>> {
        let mut rows = Vec::new();
        for line in image.lines() {
            let (top, bottom): (Vec<bool>, Vec<bool>) = line
                .chars()
                .map(|c| match c {
                    '█' => (true, true),
                    '▀' => (true, false),
                    '▄' => (false, true),
                    ' ' => (false, false),
                    other => panic!("unexpected character {other:?}"),
                })
                .unzip();
            rows.push(top);
            rows.push(bottom);
        }
        rows
    }

    #[test]
    fn dark_modules_are_spaces_and_light_modules_and_quiet_zone_are_blocks() {
        let data = "otpauth://totp/latchkey:bob?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=latchkey&algorithm=SHA1&digits=6&period=30";
        let image = render_terminal(data).unwrap();
        let code = QrCode::with_error_correction_level(data.as_bytes(), EcLevel::L).unwrap();
        let width = code.width();
        let colors = code.to_colors();
        let quiet = 4;
        let size = width + 2 * quiet;

        let pixels = lit_pixels(&image);
        assert!(pixels.len() >= size, "{} rows", pixels.len());
        for (y, row) in pixels.iter().take(size).enumerate() {
            assert_eq!(row.len(), size, "row {y}");
            for (x, &lit) in row.iter().enumerate() {
                let in_code =
                    (quiet..quiet + width).contains(&x) && (quiet..quiet + width).contains(&y);
                let expect_lit = if in_code {
                    colors[(y - quiet) * width + (x - quiet)] == Color::Light
                } else {
                    true
                };
                assert_eq!(lit, expect_lit, "module ({x},{y})");
            }
        }
        // Fits a standard terminal: at most 80 columns wide.
        assert!(size <= 80, "{size} columns");
        // The finder pattern's dark outer ring (top-left) is drawn as spaces.
        assert!(!pixels[quiet][quiet] && !pixels[quiet][quiet + 6]);
    }

    #[test]
    fn empty_and_long_data_render_or_fail_cleanly() {
        assert!(render_terminal("").is_ok());
        assert!(render_terminal(&"x".repeat(10_000)).is_err());
    }
}
