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
        (_, Some(o)) => Some(o.trim_end_matches('/').to_string()),
        // Port 0: the system picks the port when latchkeyd binds; the origin is made from
        // the bound port then (`default_origin`, called by `start`).
        (Some(_), None) if port == 0 => None,
        (Some(rp), None) => Some(default_origin(rp, port)),
        (None, None) => None,
    };
    let Some(o) = &origin else {
        return Ok((rp_id, None));
    };
    let host_port = o
        .strip_prefix("https://")
        .or_else(|| o.strip_prefix("http://localhost").map(|_| "localhost"))
        .ok_or_else(|| format!("web_origin {o:?} must start with https://"))?;
    let host = host_port.rsplit_once(':').map_or(host_port, |(h, p)| {
        if p.bytes().all(|b| b.is_ascii_digit()) {
            h
        } else {
            host_port
        }
    });
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    if !host_ok {
        return Err(format!(
            "web_origin {o:?} must be https://HOST[:PORT] with no path"
        ));
    }
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
        ] {
            let r = resolve(Args {
                web_rp_id: rp.map(str::to_string),
                web_origin: origin.map(str::to_string),
                ..Args::default()
            });
            assert!(r.is_err(), "{rp:?} {origin:?}");
        }
    }
}
