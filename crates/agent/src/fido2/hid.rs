//! HID transports for CTAPHID: a report is 64 bytes each way. Two devices implement the
//! same trait, so the CTAPHID and CTAP2 code above them is one path: Linux hidraw (USB
//! security keys) and a Unix SOCK_SEQPACKET socket carrying one report per packet (the tests'
//! software authenticator; the same framing a /dev/uhid bridge would carry).

#[cfg(unix)]
use super::sys::{SeqPacket, poll_readable};
#[cfg(unix)]
use std::fs::File;
use std::io;
#[cfg(unix)]
use std::io::{Read, Write};
#[cfg(unix)]
use std::os::fd::AsRawFd;
#[cfg(unix)]
use std::path::Path;
use std::path::PathBuf;
use std::time::Duration;

pub const REPORT_LEN: usize = 64;
pub type Report = [u8; REPORT_LEN];

/// A FIDO HID device: sends and receives 64-byte reports.
pub trait HidDevice: Send {
    fn send_report(&mut self, report: &Report) -> io::Result<()>;
    /// Next report, or None when nothing came within `timeout`.
    fn recv_report(&mut self, timeout: Duration) -> io::Result<Option<Report>>;
    /// For messages and logs.
    fn name(&self) -> String;
}

/// `/dev/hidrawN`: writes carry a leading report id 0 (FIDO devices have no numbered
/// reports), reads return the bare 64-byte report.
#[cfg(unix)]
pub struct Hidraw {
    file: File,
    path: PathBuf,
}

#[cfg(unix)]
impl Hidraw {
    pub fn open(path: &Path) -> io::Result<Hidraw> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)?;
        Ok(Hidraw {
            file,
            path: path.to_path_buf(),
        })
    }
}

#[cfg(unix)]
impl HidDevice for Hidraw {
    fn send_report(&mut self, report: &Report) -> io::Result<()> {
        let mut buf = [0u8; REPORT_LEN + 1];
        buf[1..].copy_from_slice(report);
        self.file.write_all(&buf)
    }

    fn recv_report(&mut self, timeout: Duration) -> io::Result<Option<Report>> {
        if !poll_readable(self.file.as_raw_fd(), timeout)? {
            return Ok(None);
        }
        let mut buf = [0u8; REPORT_LEN];
        let n = self.file.read(&mut buf)?;
        if n != REPORT_LEN {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{n}-byte HID report (64 expected)"),
            ));
        }
        Ok(Some(buf))
    }

    fn name(&self) -> String {
        self.path.display().to_string()
    }
}

/// A software authenticator behind a SOCK_SEQPACKET socket: one packet per report.
#[cfg(unix)]
pub struct UnixHid {
    sock: SeqPacket,
    path: PathBuf,
}

#[cfg(unix)]
impl UnixHid {
    pub fn connect(path: &Path) -> io::Result<UnixHid> {
        Ok(UnixHid {
            sock: SeqPacket::connect(path)?,
            path: path.to_path_buf(),
        })
    }
}

#[cfg(unix)]
impl HidDevice for UnixHid {
    fn send_report(&mut self, report: &Report) -> io::Result<()> {
        self.sock.send(report)
    }

    fn recv_report(&mut self, timeout: Duration) -> io::Result<Option<Report>> {
        let mut buf = [0u8; REPORT_LEN];
        match self.sock.recv(&mut buf, timeout)? {
            None => Ok(None),
            Some(REPORT_LEN) => Ok(Some(buf)),
            Some(n) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{n}-byte report (64 expected)"),
            )),
        }
    }

    fn name(&self) -> String {
        format!("unix:{}", self.path.display())
    }
}

/// Whether a HID report descriptor declares the FIDO Alliance usage page (0xF1D0): a
/// "Usage Page" short item (tag 0x04, global) with that value.
pub fn is_fido_descriptor(desc: &[u8]) -> bool {
    let mut i = 0;
    while i < desc.len() {
        let prefix = desc[i];
        if prefix == 0xFE {
            // Long item: size in the next byte.
            let size = usize::from(desc.get(i + 1).copied().unwrap_or(0));
            i += 3 + size;
            continue;
        }
        let size = match prefix & 0x03 {
            3 => 4,
            s => usize::from(s),
        };
        if prefix & 0xFC == 0x04 {
            let data = desc.get(i + 1..i + 1 + size).unwrap_or(&[]);
            let mut v: u32 = 0;
            for (k, b) in data.iter().enumerate() {
                v |= u32::from(*b) << (8 * k);
            }
            if v == 0xF1D0 {
                return true;
            }
        }
        i += 1 + size;
    }
    false
}

/// `/dev/hidrawN` devices whose report descriptor (from sysfs) is a FIDO one.
#[cfg(unix)]
pub fn detect_hidraw() -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(dir) = std::fs::read_dir("/sys/class/hidraw") else {
        return found;
    };
    let mut names: Vec<String> = dir
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in names {
        let desc = Path::new("/sys/class/hidraw")
            .join(&name)
            .join("device/report_descriptor");
        if std::fs::read(&desc).is_ok_and(|d| is_fido_descriptor(&d)) {
            found.push(Path::new("/dev").join(&name));
        }
    }
    found
}

/// Opens a device named as in `fido2_devices`: `unix:/path` or a hidraw path.
#[cfg(unix)]
pub fn open(spec: &str) -> io::Result<Box<dyn HidDevice>> {
    match spec.strip_prefix("unix:") {
        Some(path) => Ok(Box::new(UnixHid::connect(Path::new(path))?)),
        None => Ok(Box::new(Hidraw::open(Path::new(spec))?)),
    }
}

/// Windows: USB security keys are reached through the Windows WebAuthn API there, not raw
/// HID; the Windows agent has no FIDO2 transport yet (docs/windows.md).
#[cfg(not(unix))]
pub fn detect_hidraw() -> Vec<PathBuf> {
    Vec::new()
}

#[cfg(not(unix))]
pub fn open(spec: &str) -> io::Result<Box<dyn HidDevice>> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        format!("{spec}: FIDO2 keys are not supported by the Windows agent yet"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fido_usage_page_is_recognised() {
        // Start of a YubiKey's FIDO interface descriptor: Usage Page (0xF1D0), Usage (1).
        let yubikey = [0x06, 0xD0, 0xF1, 0x09, 0x01, 0xA1, 0x01, 0x09, 0x20];
        assert!(is_fido_descriptor(&yubikey));
        // A keyboard: Usage Page (Generic Desktop), Usage (Keyboard).
        let keyboard = [0x05, 0x01, 0x09, 0x06, 0xA1, 0x01, 0x05, 0x07];
        assert!(!is_fido_descriptor(&keyboard));
        // Truncated and long items do not panic.
        assert!(!is_fido_descriptor(&[0x06, 0xD0]));
        assert!(!is_fido_descriptor(&[0xFE, 0xFF, 0x00]));
        assert!(!is_fido_descriptor(&[]));
    }
}
