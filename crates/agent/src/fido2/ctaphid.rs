//! CTAPHID (CTAP 2.1 §11.2): messages split into an initialization packet and continuation
//! packets of one 64-byte report each, on a channel id allocated with CTAPHID_INIT.

use super::Fido2Error;
use super::hid::{HidDevice, REPORT_LEN, Report};
use std::time::{Duration, Instant};

pub const CMD_PING: u8 = 0x81;
pub const CMD_MSG: u8 = 0x83;
pub const CMD_INIT: u8 = 0x86;
pub const CMD_WINK: u8 = 0x88;
pub const CMD_CBOR: u8 = 0x90;
pub const CMD_CANCEL: u8 = 0x91;
pub const CMD_KEEPALIVE: u8 = 0xBB;
pub const CMD_ERROR: u8 = 0xBF;

pub const BROADCAST_CID: u32 = 0xFFFF_FFFF;
pub const CAPABILITY_CBOR: u8 = 0x04;
pub const KEEPALIVE_UP_NEEDED: u8 = 2;

const INIT_DATA: usize = REPORT_LEN - 7;
const CONT_DATA: usize = REPORT_LEN - 5;
/// 57 + 128 × 59: the most one message can carry.
pub const MAX_MESSAGE: usize = INIT_DATA + 128 * CONT_DATA;

/// Splits a message into reports.
pub fn encode(cid: u32, cmd: u8, payload: &[u8]) -> Result<Vec<Report>, Fido2Error> {
    if payload.len() > MAX_MESSAGE {
        return Err(Fido2Error::Protocol(format!(
            "message of {} bytes is longer than CTAPHID allows",
            payload.len()
        )));
    }
    let mut out = Vec::new();
    let mut first = [0u8; REPORT_LEN];
    first[..4].copy_from_slice(&cid.to_be_bytes());
    first[4] = cmd | 0x80;
    first[5..7].copy_from_slice(&(payload.len() as u16).to_be_bytes());
    let n = payload.len().min(INIT_DATA);
    first[7..7 + n].copy_from_slice(&payload[..n]);
    out.push(first);
    for (seq, chunk) in payload[n..].chunks(CONT_DATA).enumerate() {
        let mut r = [0u8; REPORT_LEN];
        r[..4].copy_from_slice(&cid.to_be_bytes());
        r[4] = seq as u8;
        r[5..5 + chunk.len()].copy_from_slice(chunk);
        out.push(r);
    }
    Ok(out)
}

/// Reassembles one message from reports of one channel.
#[derive(Debug, Default)]
pub struct Reassembler {
    cmd: u8,
    want: usize,
    data: Vec<u8>,
    next_seq: u8,
    started: bool,
}

/// What a report did to a message being received.
#[derive(Debug, PartialEq, Eq)]
pub enum Fed {
    /// More continuation packets are needed.
    More,
    /// The message is complete: (command, payload).
    Done(u8, Vec<u8>),
}

impl Reassembler {
    pub fn new() -> Reassembler {
        Reassembler::default()
    }

    /// Feeds a report (already known to be for this channel).
    pub fn feed(&mut self, r: &Report) -> Result<Fed, Fido2Error> {
        if r[4] & 0x80 != 0 {
            if self.started {
                return Err(Fido2Error::Protocol(
                    "new message began before the last one ended".into(),
                ));
            }
            self.cmd = r[4];
            self.want = usize::from(u16::from_be_bytes([r[5], r[6]]));
            if self.want > MAX_MESSAGE {
                return Err(Fido2Error::Protocol("declared length too long".into()));
            }
            let n = self.want.min(INIT_DATA);
            self.data = r[7..7 + n].to_vec();
            self.started = true;
            self.next_seq = 0;
        } else {
            if !self.started {
                return Err(Fido2Error::Protocol(
                    "continuation packet without a message".into(),
                ));
            }
            if r[4] != self.next_seq {
                return Err(Fido2Error::Protocol(format!(
                    "continuation packet {} out of sequence (expected {})",
                    r[4], self.next_seq
                )));
            }
            self.next_seq = self.next_seq.wrapping_add(1);
            let n = (self.want - self.data.len()).min(CONT_DATA);
            self.data.extend_from_slice(&r[5..5 + n]);
        }
        if self.data.len() == self.want {
            self.started = false;
            Ok(Fed::Done(self.cmd, std::mem::take(&mut self.data)))
        } else {
            Ok(Fed::More)
        }
    }
}

pub fn cid_of(r: &Report) -> u32 {
    u32::from_be_bytes([r[0], r[1], r[2], r[3]])
}

/// An open CTAPHID channel on a device.
pub struct Channel {
    dev: Box<dyn HidDevice>,
    cid: u32,
    pub capabilities: u8,
}

/// How long one report may take when the device is not waiting for a person.
const REPORT_TIMEOUT: Duration = Duration::from_secs(3);

impl Channel {
    /// Allocates a channel with CTAPHID_INIT on the broadcast channel.
    pub fn open(mut dev: Box<dyn HidDevice>) -> Result<Channel, Fido2Error> {
        let nonce = latchkey_crypto::random_bytes(8).map_err(|e| Fido2Error::Io(e.to_string()))?;
        for r in encode(BROADCAST_CID, CMD_INIT, &nonce)? {
            dev.send_report(&r).map_err(io_err)?;
        }
        let deadline = Instant::now() + REPORT_TIMEOUT;
        let mut asm = Reassembler::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(r) = dev.recv_report(left).map_err(io_err)? else {
                return Err(Fido2Error::Protocol(format!(
                    "{} did not answer CTAPHID_INIT",
                    dev.name()
                )));
            };
            if cid_of(&r) != BROADCAST_CID {
                continue;
            }
            match asm.feed(&r)? {
                Fed::More => continue,
                Fed::Done(CMD_INIT, p) if p.len() >= 17 && p[..8] == nonce[..] => {
                    let cid = u32::from_be_bytes([p[8], p[9], p[10], p[11]]);
                    if cid == 0 || cid == BROADCAST_CID {
                        return Err(Fido2Error::Protocol(
                            "device allocated an invalid channel".into(),
                        ));
                    }
                    return Ok(Channel {
                        dev,
                        cid,
                        capabilities: p[16],
                    });
                }
                // Another client's INIT answer (other nonce): keep waiting.
                Fed::Done(..) => continue,
            }
        }
    }

    pub fn device_name(&self) -> String {
        self.dev.name()
    }

    /// Sends one request and returns the answer's payload. KEEPALIVE packets (the key
    /// waiting for a touch) extend the wait up to `deadline`; `on_up_needed` is called once
    /// when the key first says it waits for the person. At the deadline the request is
    /// cancelled (CTAPHID_CANCEL) and `Timeout` returned.
    pub fn transact(
        &mut self,
        cmd: u8,
        payload: &[u8],
        deadline: Instant,
        on_up_needed: &mut dyn FnMut(),
    ) -> Result<Vec<u8>, Fido2Error> {
        for r in encode(self.cid, cmd, payload)? {
            self.dev.send_report(&r).map_err(io_err)?;
        }
        let mut asm = Reassembler::new();
        let mut told = false;
        loop {
            let now = Instant::now();
            if now >= deadline {
                self.cancel();
                return Err(Fido2Error::Timeout);
            }
            let wait = (deadline - now).min(Duration::from_millis(500));
            let Some(r) = self.dev.recv_report(wait).map_err(io_err)? else {
                continue;
            };
            if cid_of(&r) != self.cid {
                continue;
            }
            match asm.feed(&r)? {
                Fed::More => {}
                Fed::Done(CMD_KEEPALIVE, p) => {
                    if p.first() == Some(&KEEPALIVE_UP_NEEDED) && !told {
                        told = true;
                        on_up_needed();
                    }
                }
                Fed::Done(CMD_ERROR, p) => {
                    return Err(Fido2Error::Protocol(format!(
                        "CTAPHID error 0x{:02x}",
                        p.first().copied().unwrap_or(0)
                    )));
                }
                Fed::Done(c, p) if c == cmd => return Ok(p),
                Fed::Done(c, _) => {
                    return Err(Fido2Error::Protocol(format!(
                        "answer to command 0x{cmd:02x} came as 0x{c:02x}"
                    )));
                }
            }
        }
    }

    fn cancel(&mut self) {
        if let Ok(reports) = encode(self.cid, CMD_CANCEL, &[]) {
            for r in reports {
                let _ = self.dev.send_report(&r);
            }
        }
    }
}

fn io_err(e: std::io::Error) -> Fido2Error {
    Fido2Error::Io(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(len: usize) {
        let payload: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        let reports = encode(0x0102_0304, CMD_CBOR, &payload).unwrap();
        let expected = if len <= INIT_DATA {
            1
        } else {
            1 + (len - INIT_DATA).div_ceil(CONT_DATA)
        };
        assert_eq!(reports.len(), expected, "len {len}");
        let mut asm = Reassembler::new();
        for (i, r) in reports.iter().enumerate() {
            assert_eq!(cid_of(r), 0x0102_0304);
            match asm.feed(r).unwrap() {
                Fed::More => assert!(i + 1 < reports.len()),
                Fed::Done(cmd, p) => {
                    assert_eq!(i + 1, reports.len());
                    assert_eq!(cmd, CMD_CBOR);
                    assert_eq!(p, payload);
                }
            }
        }
    }

    #[test]
    fn messages_round_trip_across_fragment_boundaries() {
        for len in [0, 1, 56, 57, 58, 115, 116, 117, 1000, 4096, MAX_MESSAGE] {
            round_trip(len);
        }
        assert!(encode(1, CMD_CBOR, &vec![0; MAX_MESSAGE + 1]).is_err());
    }

    #[test]
    fn out_of_order_and_stray_packets_are_errors_not_panics() {
        let payload = vec![9u8; 200];
        let reports = encode(7, CMD_CBOR, &payload).unwrap();
        let mut asm = Reassembler::new();
        asm.feed(&reports[0]).unwrap();
        assert!(asm.feed(&reports[2]).is_err());
        let mut asm = Reassembler::new();
        assert!(asm.feed(&reports[1]).is_err());
        // A declared length beyond the maximum.
        let mut bad = reports[0];
        bad[5] = 0xFF;
        bad[6] = 0xFF;
        assert!(Reassembler::new().feed(&bad).is_err());
        // Arbitrary reports never panic.
        let mut x = 0x1234_5678u32;
        for _ in 0..2000 {
            let mut r = [0u8; REPORT_LEN];
            for b in r.iter_mut() {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                *b = x as u8;
            }
            let _ = asm.feed(&r);
        }
    }
}
