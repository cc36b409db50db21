//! The portal's WebAuthn settings (`web_rp_id`, `web_origin`), read with the rest of the
//! configuration in `config.rs`.

/// `web_rp_id` and `web_origin` checked together: the origin is `https://HOST[:PORT]`
/// (or `http://localhost`, which browsers treat as secure), and the rp id is its host or a
/// parent domain of it, as WebAuthn requires (§5.1.4.1).
pub(super) fn web_party(
    rp_id: Option<String>,
    origin: Option<String>,
    port: u16,
) -> Result<(Option<String>, Option<String>), String> {
    if let Some(rp) = &rp_id {
        let rp_ok = !rp.is_empty()
            && (rp.contains('.') || rp == "localhost")
            && rp
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
        if !rp_ok {
            return Err(format!(
                "web_rp_id {rp:?} must be a domain name such as mfa.example.com"
            ));
        }
    }
    let origin = match (&rp_id, origin) {
        (_, Some(o)) => Some(o.strip_suffix('/').unwrap_or(&o).to_string()),
        // Port 0: the system picks the port when latchkeyd binds; the origin is made from
        // the bound port then (`default_origin`, called by `start`).
        (Some(_), None) if port == 0 => None,
        (Some(rp), None) => Some(default_origin(rp, port)),
        (None, None) => None,
    };
    let Some(o) = &origin else {
        return Ok((rp_id, None));
    };
    let host = origin_host(o)?;
    if let Some(rp) = &rp_id
        && host != rp
        && !host.ends_with(&format!(".{rp}"))
    {
        return Err(format!(
            "web_rp_id {rp:?} must be the host of web_origin ({host}) or a parent domain of it"
        ));
    }
    Ok((rp_id, origin))
}

/// The host of an origin written exactly as a browser serialises one: `https://HOST` or
/// `https://HOST:PORT` (`http://` only for the host `localhost`), HOST a lowercase DNS name
/// or IPv4 address, PORT 1–65535 and not the scheme's default; nothing else (no user info,
/// path, query or fragment).
fn origin_host(o: &str) -> Result<&str, String> {
    let bad = || {
        format!(
            "web_origin {o:?} must be https://HOST[:PORT] (or http://localhost[:PORT]) with \
             nothing after it"
        )
    };
    let (rest, default_port) = if let Some(r) = o.strip_prefix("https://") {
        (r, 443)
    } else if let Some(r) = o.strip_prefix("http://") {
        (r, 80)
    } else {
        return Err(format!("web_origin {o:?} must start with https://"));
    };
    let (host, port) = match rest.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (rest, None),
    };
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    if host.is_empty() || host.len() > 253 || !host.split('.').all(label_ok) {
        return Err(bad());
    }
    if let Some(p) = port {
        let n: u32 = if !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) {
            p.parse().map_err(|_| bad())?
        } else {
            return Err(bad());
        };
        if n == 0 || n > 65535 || n == default_port || p.starts_with('0') {
            return Err(bad());
        }
    }
    if default_port == 80 && host != "localhost" {
        return Err(format!(
            "web_origin {o:?} must start with https:// (http:// only for localhost)"
        ));
    }
    Ok(host)
}

/// The origin the portal is reached at when only `web_rp_id` is set: that name, on the port
/// latchkeyd listens on.
pub fn default_origin(rp_id: &str, port: u16) -> String {
    if port == 443 {
        format!("https://{rp_id}")
    } else {
        format!("https://{rp_id}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::super::*;

    #[test]
    fn web_rp_id_gives_the_default_origin_and_must_match_it() {
        let (cfg, _) = resolve(Args::default()).unwrap();
        assert_eq!((cfg.web_rp_id, cfg.web_origin), (None, None));
        let (cfg, _) = resolve(Args {
            web_rp_id: Some("mfa.example.com".into()),
            ..Args::default()
        })
        .unwrap();
        assert_eq!(
            cfg.web_origin.as_deref(),
            Some("https://mfa.example.com:8443")
        );
        let (cfg, _) = resolve(Args {
            web_rp_id: Some("example.com".into()),
            web_origin: Some("https://mfa.example.com/".into()),
            ..Args::default()
        })
        .unwrap();
        assert_eq!(cfg.web_origin.as_deref(), Some("https://mfa.example.com"));
        for (rp, origin) in [
            (Some("latchkey"), None),
            (Some("other.com"), Some("https://mfa.example.com")),
            (Some("example.com"), Some("https://badexample.com")),
            (None, Some("http://mfa.example.com")),
            (None, Some("https://mfa.example.com/ui")),
            // Exactly scheme, host and port: nothing that only starts like one.
            (Some("localhost"), Some("http://localhost.evil.com")),
            (None, Some("http://localhost.evil.com")),
            (None, Some("http://localhost.evil.com:8443")),
            (Some("localhost"), Some("http://localhost/ui")),
            (Some("localhost"), Some("http://localhost:8443/x")),
            (Some("localhost"), Some("http://localhost@evil.com")),
            (None, Some("https://mfa.example.com:8443/ui")),
            (None, Some("https://mfa.example.com?x=1")),
            (None, Some("https://mfa.example.com#x")),
            (None, Some("https://user@mfa.example.com")),
            (None, Some("https://mfa.example.com:")),
            (None, Some("https://mfa.example.com:99999")),
            (None, Some("https://mfa.example.com:0")),
            (None, Some("https://mfa.example.com:08443")),
            (None, Some("https://mfa.example.com:443")),
            (None, Some("https://mfa.example.com:84:43")),
            (None, Some("https://MFA.example.com")),
            (None, Some("https://mfa..example.com")),
            (None, Some("https://.example.com")),
            (None, Some("https://-mfa.example.com")),
            (None, Some("https://mfa.example.com//")),
            (None, Some("https://")),
            (None, Some("ftp://mfa.example.com")),
        ] {
            let r = resolve(Args {
                web_rp_id: rp.map(str::to_string),
                web_origin: origin.map(str::to_string),
                ..Args::default()
            });
            assert!(r.is_err(), "{rp:?} {origin:?}");
        }
        for (rp, origin) in [
            (Some("localhost"), "http://localhost:8443"),
            (Some("localhost"), "http://localhost"),
            (Some("localhost"), "https://localhost:8443"),
            (Some("example.com"), "https://mfa.example.com:8443"),
            (None, "https://192.0.2.10:8443"),
            (None, "https://mfa-1.example.com/"),
        ] {
            let r = resolve(Args {
                web_rp_id: rp.map(str::to_string),
                web_origin: Some(origin.to_string()),
                ..Args::default()
            });
            assert!(r.is_ok(), "{rp:?} {origin:?}: {:?}", r.err());
        }
    }
}
