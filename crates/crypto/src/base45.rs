//! Base45 (RFC 9285): bytes as characters of the QR code alphanumeric set, so a binary
//! payload fills a QR code in alphanumeric mode (5.5 bits per character) instead of byte mode.

use crate::{Error, Result};

const ALPHABET: &[u8; 45] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:";

fn value(c: u8) -> Option<u32> {
    ALPHABET.iter().position(|&a| a == c).map(|p| p as u32)
}

/// Encodes: each pair of bytes `[a, b]` is `n = a*256 + b` written as `c + d*45 + e*45²`
/// (three characters `c d e`); a trailing single byte as two characters (RFC 9285 §4).
pub fn encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(2) * 3);
    for chunk in data.chunks(2) {
        let (mut n, len) = match *chunk {
            [a, b] => (u32::from(a) * 256 + u32::from(b), 3),
            [a] => (u32::from(a), 2),
            _ => continue,
        };
        for _ in 0..len {
            out.push(char::from(ALPHABET[(n % 45) as usize]));
            n /= 45;
        }
    }
    out
}

/// Decodes strictly: only the 45 characters (upper case), groups of 3 (or a final 2), and
/// each group's value must fit its bytes (RFC 9285 §4.2: "GGW" is 65536, an error).
pub fn decode(text: &str) -> Result<Vec<u8>> {
    let bytes = text.as_bytes();
    if bytes.len() % 3 == 1 {
        return Err(Error::Encoding("base45 length is not valid".into()));
    }
    let mut out = Vec::with_capacity(bytes.len() / 3 * 2 + 1);
    for group in bytes.chunks(3) {
        let mut n: u32 = 0;
        for &c in group.iter().rev() {
            let v = value(c)
                .ok_or_else(|| Error::Encoding("character outside the base45 alphabet".into()))?;
            n = n * 45 + v;
        }
        if group.len() == 3 {
            let pair =
                u16::try_from(n).map_err(|_| Error::Encoding("base45 group too large".into()))?;
            out.extend_from_slice(&pair.to_be_bytes());
        } else {
            let one =
                u8::try_from(n).map_err(|_| Error::Encoding("base45 group too large".into()))?;
            out.push(one);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 9285 §4.3 and §4.4 examples.
    #[test]
    fn rfc9285_vectors() {
        assert_eq!(encode(b"AB"), "BB8");
        assert_eq!(encode(b"Hello!!"), "%69 VD92EX0");
        assert_eq!(encode(b"base-45"), "UJCLQE7W581");
        assert_eq!(decode("QED8WEX0").unwrap(), b"ietf!");
        assert_eq!(decode("BB8").unwrap(), b"AB");
        assert_eq!(decode("%69 VD92EX0").unwrap(), b"Hello!!");
        assert_eq!(decode("UJCLQE7W581").unwrap(), b"base-45");
        assert_eq!(encode(b""), "");
        assert_eq!(decode("").unwrap(), b"");
    }

    #[test]
    fn invalid_input_is_refused() {
        assert!(decode("GGW").is_err(), "65536 does not fit two bytes");
        assert!(decode("A").is_err(), "a lone character");
        assert!(decode("abc").is_err(), "lower case is outside the alphabet");
        assert!(decode("ZZ").is_err(), "two characters above 255");
        assert!(decode("BB8é").is_err());
    }

    #[test]
    fn round_trips_every_byte_pair_edge() {
        let data: Vec<u8> = (0..=255u8).chain([0, 255, 255, 0, 0]).collect();
        assert_eq!(decode(&encode(&data)).unwrap(), data);
        assert_eq!(decode(&encode(&[255, 255])).unwrap(), [255, 255]);
    }
}
