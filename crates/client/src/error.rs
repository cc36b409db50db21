//! The one error type of the client. Transport failures are typed so the agent can turn them
//! into "go offline" in one place ([`Error::is_unreachable`]).

use hyper::StatusCode;
use latchkey_proto::ErrorCode;
use std::io;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration cannot work (bad URL, unreadable CA file or key, bad pin syntax).
    #[error("invalid client configuration: {0}")]
    Config(String),

    /// No connection: refused, unreachable, name not resolved, proxy refused the tunnel, or the
    /// connection was lost before an answer arrived.
    #[error("cannot reach {server}: {reason}")]
    Connect { server: String, reason: String },

    /// Connect or request timeout elapsed.
    #[error("{server} did not answer within {}", humanize(*.after))]
    Timeout { server: String, after: Duration },

    /// This machine could not even try: no descriptor, no memory, no buffer for a new socket.
    /// Says nothing about the server, so it is never "unreachable": a caller that went
    /// offline on it would let any local process that exhausts the agent's descriptors
    /// push logins onto the offline path (and open the circuit breaker for everyone).
    #[error("this machine could not open a connection to {server}: {reason}")]
    Local { server: String, reason: String },

    /// TLS failed: untrusted certificate, pin mismatch, client certificate refused, …
    #[error("TLS with {server} failed: {reason}")]
    Tls { server: String, reason: String },

    /// The server answered with a non-2xx status. `error` is the stable machine-readable code
    /// (`not_found`, `unauthorized`, …); `message` one sentence meant for people.
    #[error("server said: {message} ({error})")]
    Api {
        status: StatusCode,
        error: String,
        message: String,
    },

    /// The server answered something we cannot understand (bad HTTP, bad JSON, too large).
    #[error("unexpected answer from {server}: {reason}")]
    Protocol { server: String, reason: String },

    /// No server of a [`ServerList`](crate::ServerList) gave an answer: each one failed or was
    /// skipped because its circuit is open. `tried` holds `(server, reason)` in the order the
    /// servers were considered.
    #[error("no latchkey server answered: {}", list_reasons(tried))]
    AllUnreachable { tried: Vec<(String, String)> },
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// True when the server should be considered unreachable for now: no connection, timeout,
    /// TLS failure, or a 5xx answer. The agent uses this to decide to go offline (and a
    /// server list to try the next server); anything else is a real answer to act on.
    pub fn is_unreachable(&self) -> bool {
        match self {
            Error::Connect { .. }
            | Error::Timeout { .. }
            | Error::Tls { .. }
            | Error::AllUnreachable { .. } => true,
            Error::Api { status, .. } => status.is_server_error(),
            Error::Config(_) | Error::Protocol { .. } | Error::Local { .. } => false,
        }
    }

    /// HTTP status of an API error answer.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Error::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Stable error code of an API error answer (`not_found`, …).
    pub fn api_code(&self) -> Option<&str> {
        match self {
            Error::Api { error, .. } => Some(error),
            _ => None,
        }
    }

    /// The typed code of an API error answer; `None` for other errors and for a code this
    /// build does not know (a newer server's).
    pub fn error_code(&self) -> Option<ErrorCode> {
        self.api_code().and_then(ErrorCode::parse)
    }

    /// Why one server failed, without the server's name (the caller shows it beside the reason).
    pub(crate) fn short_reason(&self) -> String {
        match self {
            Error::Connect { reason, .. } | Error::Local { reason, .. } => reason.clone(),
            Error::Timeout { after, .. } => format!("timed out after {}", humanize(*after)),
            Error::Tls { reason, .. } => format!("TLS failed: {reason}"),
            Error::Api {
                status,
                error,
                message,
            } => format!("HTTP {}: {message} ({error})", status.as_u16()),
            Error::Protocol { reason, .. } => reason.clone(),
            Error::Config(_) | Error::AllUnreachable { .. } => self.to_string(),
        }
    }
}

fn list_reasons(tried: &[(String, String)]) -> String {
    if tried.is_empty() {
        return "no server configured".into();
    }
    tried
        .iter()
        .map(|(server, reason)| format!("{server}: {reason}"))
        .collect::<Vec<_>>()
        .join("; ")
}

fn humanize(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// True when `e` is this machine running out of something (descriptors, memory, socket
/// buffers), not an answer from the network.
pub(crate) fn is_local_resource(e: &io::Error) -> bool {
    if e.kind() == io::ErrorKind::OutOfMemory {
        return true;
    }
    #[cfg(unix)]
    const LOCAL: [i32; 4] = [libc::EMFILE, libc::ENFILE, libc::ENOMEM, libc::ENOBUFS];
    // WSAEMFILE, WSAENOBUFS, ERROR_NOT_ENOUGH_MEMORY, ERROR_OUTOFMEMORY.
    #[cfg(windows)]
    const LOCAL: [i32; 4] = [10024, 10055, 8, 14];
    e.raw_os_error().is_some_and(|code| LOCAL.contains(&code))
}

/// A short, lower-case description of a socket error for people, without the OS error number.
pub(crate) fn describe_io(e: &io::Error) -> String {
    use io::ErrorKind as K;
    match e.kind() {
        K::ConnectionRefused => "connection refused".into(),
        K::ConnectionReset => "connection reset".into(),
        K::ConnectionAborted => "connection aborted".into(),
        K::HostUnreachable => "host unreachable".into(),
        K::NetworkUnreachable => "network unreachable".into(),
        K::AddrNotAvailable => "address not available".into(),
        K::TimedOut => "timed out".into(),
        K::UnexpectedEof => "connection closed".into(),
        K::BrokenPipe => "connection closed".into(),
        K::OutOfMemory => "out of memory".into(),
        _ => match e.raw_os_error() {
            #[cfg(unix)]
            Some(libc::EMFILE) => "too many open files in the agent".into(),
            #[cfg(unix)]
            Some(libc::ENFILE) => "too many open files on this machine".into(),
            #[cfg(unix)]
            Some(libc::ENOBUFS) => "no socket buffer space".into(),
            _ => e.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreachable_covers_transport_and_5xx_only() {
        let s = || "https://x:1".to_string();
        assert!(
            Error::Connect {
                server: s(),
                reason: "r".into()
            }
            .is_unreachable()
        );
        assert!(
            Error::Timeout {
                server: s(),
                after: Duration::from_secs(1)
            }
            .is_unreachable()
        );
        assert!(
            Error::Tls {
                server: s(),
                reason: "r".into()
            }
            .is_unreachable()
        );
        let api = |status| Error::Api {
            status,
            error: "e".into(),
            message: "m".into(),
        };
        assert!(api(StatusCode::BAD_GATEWAY).is_unreachable());
        assert!(!api(StatusCode::NOT_FOUND).is_unreachable());
        assert!(!api(StatusCode::UNAUTHORIZED).is_unreachable());
        assert!(
            !Error::Protocol {
                server: s(),
                reason: "r".into()
            }
            .is_unreachable()
        );
        assert!(!Error::Config("c".into()).is_unreachable());
        assert!(
            !Error::Local {
                server: s(),
                reason: "too many open files in the agent".into()
            }
            .is_unreachable()
        );
    }

    #[test]
    #[cfg(unix)]
    fn resource_exhaustion_is_local() {
        for code in [libc::EMFILE, libc::ENFILE, libc::ENOMEM, libc::ENOBUFS] {
            assert!(
                is_local_resource(&io::Error::from_raw_os_error(code)),
                "{code}"
            );
        }
        for code in [
            libc::ECONNREFUSED,
            libc::ENETUNREACH,
            libc::EHOSTUNREACH,
            libc::ETIMEDOUT,
            libc::EADDRNOTAVAIL,
        ] {
            assert!(
                !is_local_resource(&io::Error::from_raw_os_error(code)),
                "{code}"
            );
        }
        assert_eq!(
            describe_io(&io::Error::from_raw_os_error(libc::EMFILE)),
            "too many open files in the agent"
        );
    }

    #[test]
    fn messages_read_well() {
        let e = Error::Api {
            status: StatusCode::NOT_FOUND,
            error: "not_found".into(),
            message: "user \"bob\" not found".into(),
        };
        assert_eq!(
            e.to_string(),
            "server said: user \"bob\" not found (not_found)"
        );
        assert_eq!(e.error_code(), Some(ErrorCode::NotFound));
        let newer = Error::Api {
            status: StatusCode::BAD_REQUEST,
            error: "some_later_code".into(),
            message: String::new(),
        };
        assert_eq!(newer.error_code(), None);
        assert_eq!(newer.api_code(), Some("some_later_code"));
        let e = Error::Connect {
            server: "https://127.0.0.1:8443".into(),
            reason: describe_io(&io::Error::from(io::ErrorKind::ConnectionRefused)),
        };
        assert_eq!(
            e.to_string(),
            "cannot reach https://127.0.0.1:8443: connection refused"
        );
        let e = Error::Timeout {
            server: "https://h:1".into(),
            after: Duration::from_millis(1500),
        };
        assert_eq!(e.to_string(), "https://h:1 did not answer within 1.5 s");
    }
}
