//! QR codes for terminals (an offline challenge, an enrolment), drawn with Unicode half
//! blocks (two modules per character cell) so they fit an 80×24 terminal.

use qrcode::{Color, EcLevel, QrCode};

/// Quiet zone in modules. The standard asks for 4; phone scanners read a terminal QR code
/// with 2, and 2 keeps a version-5 code (37 modules) at 21 text rows.
const MARGIN: usize = 2;

/// Renders `data` for a dark-background terminal: light modules and the quiet zone are
/// drawn as blocks (the terminal's light foreground), dark modules as spaces — a scanner
/// sees dark modules on a light field. EC level L: a screen has no dirt to repair, and the
/// smallest version keeps the picture short.
pub fn render(data: &str) -> Result<String, qrcode::types::QrError> {
    let code = QrCode::with_error_correction_level(data.as_bytes(), EcLevel::L)?;
    let width = code.width();
    let colors = code.to_colors();
    let size = width + 2 * MARGIN;
    let lit = |x: usize, y: usize| -> bool {
        if x < MARGIN || y < MARGIN || x >= MARGIN + width || y >= MARGIN + width {
            return true;
        }
        colors[(y - MARGIN) * width + (x - MARGIN)] == Color::Light
    };
    let mut out = String::with_capacity(size * size);
    for row in (0..size).step_by(2) {
        for x in 0..size {
            let top = lit(x, row);
            // An odd size leaves the last row's bottom half outside the code: draw it lit.
            let bottom = row + 1 >= size || lit(x, row + 1);
            out.push(match (top, bottom) {
                (true, true) => '█',
                (true, false) => '▀',
                (false, true) => '▄',
                (false, false) => ' ',
            });
        }
        out.push('\n');
    }
    out.pop();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_challenge_sized_payload_fits_80x24_in_alphanumeric_mode() {
        // 142 characters: what alice@test-host/login gives (see crypto::challenge).
        let data = format!(
            "LK1:{}",
            "A1 $%*+-./:"
                .repeat(13)
                .chars()
                .take(138)
                .collect::<String>()
        );
        let picture = render(&data).unwrap();
        let rows: Vec<&str> = picture.lines().collect();
        assert!(rows.len() <= 21, "{} rows", rows.len());
        assert!(rows.iter().all(|r| r.chars().count() <= 80));
        let code = QrCode::with_error_correction_level(data.as_bytes(), EcLevel::L).unwrap();
        assert_eq!(
            code.version(),
            qrcode::Version::Normal(5),
            "alphanumeric mode keeps it at version 5"
        );
    }
}
