//! What the harness reads back from the DLL, independently of its code: bitmaps (written as
//! PGM files in `session` mode), serialized credentials, and the names of enum values.

use crate::{DUMPS, STREAM};
use serde_json::{Value, json};
use windows::Win32::Graphics::Gdi::{
    BI_RGB, BITMAP, BITMAPINFO, BITMAPINFOHEADER, CreateCompatibleDC, DIB_RGB_COLORS, DeleteDC,
    GetDIBits, GetObjectW, HBITMAP, HGDIOBJ,
};
use windows::Win32::Security::Credentials::{CRED_PACK_FLAGS, CredUnPackAuthenticationBufferW};
use windows::Win32::UI::Shell::{
    CPGSR_NO_CREDENTIAL_FINISHED, CPGSR_NO_CREDENTIAL_NOT_FINISHED,
    CPGSR_RETURN_CREDENTIAL_FINISHED, CPGSR_RETURN_NO_CREDENTIAL_FINISHED, CPSI_ERROR, CPSI_NONE,
    CPSI_SUCCESS, CPSI_WARNING, CREDENTIAL_PROVIDER_GET_SERIALIZATION_RESPONSE,
    CREDENTIAL_PROVIDER_STATUS_ICON,
};
use windows::core::{GUID, PWSTR};

pub fn bitmap_size(bmp: HBITMAP) -> (i32, i32) {
    let mut b = BITMAP::default();
    let n = unsafe {
        GetObjectW(
            HGDIOBJ(bmp.0),
            std::mem::size_of::<BITMAP>() as i32,
            Some((&mut b as *mut BITMAP).cast()),
        )
    };
    if n == 0 {
        (0, 0)
    } else {
        (b.bmWidth, b.bmHeight.abs())
    }
}

/// Reads a bitmap's pixels with GetDIBits (32-bit, top-down) and writes them to the session's
/// dump directory as a greyscale PGM; returns the file name (None outside `session`).
pub fn dump_bitmap(bmp: HBITMAP, prefix: &str) -> Value {
    let Some(dir) = STREAM.get() else {
        return Value::Null;
    };
    let (w, h) = bitmap_size(bmp);
    if w <= 0 || h <= 0 {
        return json!({"error": "no bitmap"});
    }
    let mut info = BITMAPINFO {
        bmiHeader: BITMAPINFOHEADER {
            biSize: std::mem::size_of::<BITMAPINFOHEADER>() as u32,
            biWidth: w,
            biHeight: -h,
            biPlanes: 1,
            biBitCount: 32,
            biCompression: BI_RGB.0,
            ..Default::default()
        },
        ..Default::default()
    };
    let mut px = vec![0u32; (w * h) as usize];
    let lines = unsafe {
        let dc = CreateCompatibleDC(None);
        let n = GetDIBits(
            dc,
            bmp,
            0,
            h as u32,
            Some(px.as_mut_ptr().cast()),
            &mut info,
            DIB_RGB_COLORS,
        );
        let _ = DeleteDC(dc);
        n
    };
    if lines != h {
        return json!({"error": format!("GetDIBits gave {lines} of {h} lines")});
    }
    let grey: Vec<u8> = px
        .iter()
        .map(|p| {
            let (b, g, r) = (p & 0xff, (p >> 8) & 0xff, (p >> 16) & 0xff);
            ((299 * r + 587 * g + 114 * b) / 1000) as u8
        })
        .collect();
    let n = DUMPS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let name = format!("{prefix}-{n}.pgm");
    let mut file = format!("P5\n{w} {h}\n255\n").into_bytes();
    file.extend_from_slice(&grey);
    std::fs::write(format!("{dir}\\{name}"), file).expect("writing the bitmap dump");
    json!({"file": name, "width": w, "height": h})
}

pub fn guid_str(g: &GUID) -> String {
    format!("{:?}", g)
}

pub fn response_name(r: CREDENTIAL_PROVIDER_GET_SERIALIZATION_RESPONSE) -> &'static str {
    match r {
        CPGSR_RETURN_CREDENTIAL_FINISHED => "CPGSR_RETURN_CREDENTIAL_FINISHED",
        CPGSR_NO_CREDENTIAL_NOT_FINISHED => "CPGSR_NO_CREDENTIAL_NOT_FINISHED",
        CPGSR_NO_CREDENTIAL_FINISHED => "CPGSR_NO_CREDENTIAL_FINISHED",
        CPGSR_RETURN_NO_CREDENTIAL_FINISHED => "CPGSR_RETURN_NO_CREDENTIAL_FINISHED",
        _ => "unknown",
    }
}

pub fn icon_name(i: CREDENTIAL_PROVIDER_STATUS_ICON) -> &'static str {
    match i {
        CPSI_NONE => "none",
        CPSI_ERROR => "error",
        CPSI_WARNING => "warning",
        CPSI_SUCCESS => "success",
        _ => "unknown",
    }
}

/// Parses a packed KERB_INTERACTIVE_UNLOCK_LOGON (64-bit layout), checking every offset.
pub fn parse_kerb(b: &[u8]) -> Value {
    fn string_at(b: &[u8], at: usize) -> Result<String, String> {
        let len = u16::from_le_bytes([b[at], b[at + 1]]) as usize;
        let max = u16::from_le_bytes([b[at + 2], b[at + 3]]) as usize;
        let off = u64::from_le_bytes(b[at + 8..at + 16].try_into().unwrap()) as usize;
        if len > max || !len.is_multiple_of(2) || off < 64 || off + len > b.len() {
            return Err(format!(
                "bad UNICODE_STRING at {at}: len {len} max {max} offset {off} in {}",
                b.len()
            ));
        }
        let units: Vec<u16> = b[off..off + len]
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        String::from_utf16(&units).map_err(|e| e.to_string())
    }
    if b.len() < 64 {
        return json!({"error": "shorter than KERB_INTERACTIVE_UNLOCK_LOGON"});
    }
    let message_type = u32::from_le_bytes(b[0..4].try_into().unwrap());
    match (string_at(b, 8), string_at(b, 24), string_at(b, 40)) {
        (Ok(d), Ok(u), Ok(p)) => {
            json!({"format": "kerb_interactive_unlock_logon", "message_type": message_type, "domain": d, "user": u, "password": p, "size": b.len()})
        }
        (d, u, p) => json!({"error": format!("{:?} {:?} {:?}", d.err(), u.err(), p.err())}),
    }
}

/// Unpacks a CredUI buffer with CredUnPackAuthenticationBufferW.
pub fn parse_credui(b: &[u8]) -> Value {
    let mut user = vec![0u16; 512];
    let mut domain = vec![0u16; 512];
    let mut pass = vec![0u16; 512];
    let (mut nu, mut nd, mut np) = (512u32, 512u32, 512u32);
    let r = unsafe {
        CredUnPackAuthenticationBufferW(
            CRED_PACK_FLAGS(0),
            b.as_ptr().cast(),
            b.len() as u32,
            Some(PWSTR(user.as_mut_ptr())),
            &mut nu,
            Some(PWSTR(domain.as_mut_ptr())),
            Some(&mut nd),
            Some(PWSTR(pass.as_mut_ptr())),
            &mut np,
        )
    };
    let cut = |v: &[u16]| {
        String::from_utf16_lossy(&v[..v.iter().position(|&c| c == 0).unwrap_or(v.len())])
    };
    match r {
        Ok(()) => {
            json!({"format": "credui", "user": cut(&user), "domain": cut(&domain), "password": cut(&pass), "size": b.len()})
        }
        Err(e) => json!({"format": "credui", "error": e.to_string(), "size": b.len()}),
    }
}
