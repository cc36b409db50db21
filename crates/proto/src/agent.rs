//! The agent socket protocol: what a shell (the PAM module, the Windows credential provider,
//! `latchkey-agent login`) says to the local agent, and what the agent answers.
//!
//! Framing: each message is a 4-byte big-endian length followed by that many bytes of JSON
//! (at most [`MAX_FRAME`]). One connection carries one conversation: a login is `Begin`, then
//! one `Continue`/`Answer` per step, until `Success` or `Failure`. Closing the connection
//! abandons the login. Shells render steps and return answers; they decide nothing.

use crate::{ClientId, Secret, UserName};
use serde::{Deserialize, Serialize};

/// Largest frame either side accepts.
pub const MAX_FRAME: usize = 64 * 1024;

/// Protocol version, sent in `Begin` and checked by the agent.
pub const AGENT_PROTOCOL_VERSION: u32 = 1;

/// Default socket path on Linux.
pub const DEFAULT_SOCKET: &str = "/run/latchkey/agent.sock";

/// The agent's named pipe on Windows.
pub const DEFAULT_PIPE: &str = r"\\.\pipe\latchkey-agent";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum AgentRequest {
    /// Start a login. `client_id` overrides the agent's mapping from `service`.
    Begin {
        version: u32,
        user: UserName,
        service: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_id: Option<ClientId>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rhost: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tty: Option<String>,
        /// The shell may enrol a user who has no token at this prompt
        /// (docs/enrollment.md): absent, a user without a token is refused as before.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        enroll: Option<FirstFactor>,
    },
    /// Reply to `Prompt`: what the person typed (a code, a PIN, an offline answer).
    Answer { text: Secret },
    /// Reply to `Info`, `Qr` and `Wait`: shown, go on.
    Continue,
    /// `pam_sm_acct_mgmt`: may this account log in now (e.g. not locked out)?
    AccountCheck {
        user: UserName,
        service: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_id: Option<ClientId>,
    },
    /// A session was opened or closed (PAM session hooks).
    Session {
        event: SessionEvent,
        user: UserName,
        service: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tty: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rhost: Option<String>,
        /// systemd-logind session id (`XDG_SESSION_ID`) when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session_id: Option<String>,
        /// The access context the session's login used (the module line's `client_id=`);
        /// absent, the agent maps the service. Absent from modules before it was added.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_id: Option<ClientId>,
    },
    /// Agent state for `latchkey-agent status`.
    Status,
}

/// How a shell that offers inline enrolment vouches for the first factor, which must be
/// verified before anyone may enrol a token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "first_factor", rename_all = "snake_case", deny_unknown_fields)]
pub enum FirstFactor {
    /// The PAM line says `enroll`: the admin states the password module before it is
    /// `requisite`, so this module runs only after a right password. The agent believes it
    /// only from root callers.
    Verified,
    /// The Windows tile: the password typed on it, which the agent checks itself (LogonUser,
    /// as the system) before it offers enrolment.
    Password {
        password: Secret,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        domain: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SessionEvent {
    Open,
    Close,
}

/// One thing for the shell to show or ask.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    /// Text to show (PAM_TEXT_INFO). Reply `Continue`.
    Info { text: String },
    /// A QR code to show: `text` (an instruction, then the code drawn for terminals), and
    /// for copying `copy`, or the payload when `copy` is absent. Reply `Continue`.
    Qr {
        payload: String,
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        copy: Option<String>,
    },
    /// The user has no token and may enrol one now (the shell sent `enroll`). Show `text`;
    /// reply `Continue` to enrol with the first of `methods`, or `Answer` with a method's
    /// name or number (from 1) to pick one; an empty `Answer` skips enrolment when `skip`
    /// is set (it says how many logins without a token are left). `label` is the prompt
    /// for the choice. With one method and no skip there is nothing to ask: a terminal
    /// may go on at once without showing `text` (the QR step that follows says what to do).
    Enroll {
        text: String,
        methods: Vec<crate::enroll::EnrollMethod>,
        label: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        skip: Option<String>,
    },
    /// Ask the person. Reply `Answer`.
    Prompt { label: String, echo: bool },
    /// Something is pending (a push); show `text`. Reply `Continue`; the agent answers when
    /// it is settled.
    Wait { text: String },
    /// MFA passed.
    Success { message: String },
    /// MFA failed; `reason` is for the person logging in.
    Failure { reason: String },
}

impl Step {
    pub fn is_final(&self) -> bool {
        matches!(self, Step::Success { .. } | Step::Failure { .. })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum AgentReply {
    Step(Step),
    Account {
        allowed: bool,
        message: String,
    },
    Ack,
    Status(AgentStatus),
    /// The request was not understood or not allowed (e.g. a non-root caller asking for
    /// another user). Shells treat it as a failure.
    Error {
        message: String,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AgentStatus {
    pub machine_id: String,
    pub selection: String,
    pub servers: Vec<ServerStatus>,
    /// Sessions opened through the PAM session hooks and not closed yet.
    #[serde(default)]
    pub open_sessions: Vec<OpenSession>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OpenSession {
    pub user: String,
    pub service: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Unix seconds.
    pub opened_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ServerStatus {
    pub url: String,
    /// `closed` (in use), `open` (skipped until `retry_in`), `half_open`.
    pub circuit: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_in_secs: Option<u64>,
    /// Unix seconds of the last answer from this server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_contact: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// Encodes one frame.
pub fn encode_frame<T: Serialize>(msg: &T) -> Result<Vec<u8>, String> {
    let body = serde_json::to_vec(msg).map_err(|e| e.to_string())?;
    if body.len() > MAX_FRAME {
        return Err(format!(
            "message of {} bytes exceeds the {MAX_FRAME}-byte limit",
            body.len()
        ));
    }
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Reads the length of a frame from its 4-byte header, refusing oversized frames.
pub fn frame_len(header: [u8; 4]) -> Result<usize, String> {
    let len = u32::from_be_bytes(header) as usize;
    if len > MAX_FRAME {
        return Err(format!(
            "frame of {len} bytes exceeds the {MAX_FRAME}-byte limit"
        ));
    }
    Ok(len)
}

/// Blocking frame I/O for synchronous shells (the PAM module): no async runtime needed.
pub mod blocking {
    use super::*;
    use std::io::{Read, Write};

    pub fn write<W: Write, T: Serialize>(w: &mut W, msg: &T) -> std::io::Result<()> {
        let frame = encode_frame(msg).map_err(std::io::Error::other)?;
        w.write_all(&frame)?;
        w.flush()
    }

    pub fn read<R: Read, T: for<'de> Deserialize<'de>>(r: &mut R) -> std::io::Result<T> {
        let mut header = [0u8; 4];
        r.read_exact(&mut header)?;
        let len = frame_len(header)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        let mut body = vec![0u8; len];
        r.read_exact(&mut body)?;
        serde_json::from_slice(&body)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_refuse_oversize() {
        let req = AgentRequest::Begin {
            version: AGENT_PROTOCOL_VERSION,
            user: "alice".parse().unwrap(),
            service: "sudo".into(),
            client_id: None,
            rhost: None,
            tty: Some("/dev/pts/1".into()),
            enroll: None,
        };
        let mut buf = Vec::new();
        blocking::write(&mut buf, &req).unwrap();
        let back: AgentRequest = blocking::read(&mut &buf[..]).unwrap();
        assert_eq!(back, req);
        let mut huge = (MAX_FRAME as u32 + 1).to_be_bytes().to_vec();
        huge.extend_from_slice(b"{}");
        assert!(blocking::read::<_, AgentRequest>(&mut &huge[..]).is_err());
        assert!(blocking::read::<_, AgentRequest>(&mut &b"\x00\x00\x00\x02{"[..]).is_err());
    }

    #[test]
    fn a_begin_with_a_password_never_prints_it_and_older_begins_still_read() {
        let text = r#"{"op":"begin","version":1,"user":"alice","service":"login","enroll":{"first_factor":"password","password":"hunter2"}}"#;
        let req: AgentRequest = serde_json::from_str(text).unwrap();
        assert!(!format!("{req:?}").contains("hunter2"));
        let old = r#"{"op":"begin","version":1,"user":"alice","service":"login"}"#;
        let AgentRequest::Begin { enroll, .. } = serde_json::from_str(old).unwrap() else {
            panic!("not a begin");
        };
        assert_eq!(enroll, None);
        let qr = r#"{"step":"qr","payload":"LK1:X","text":"Scan"}"#;
        let Step::Qr { copy, .. } = serde_json::from_str(qr).unwrap() else {
            panic!("not a qr step");
        };
        assert_eq!(copy, None, "steps of older agents read as before");
    }

    #[test]
    fn a_session_report_without_client_id_still_reads() {
        // What a PAM module from before `client_id` was added sends.
        let old = r#"{"op":"session","event":"open","user":"ann","service":"sshd"}"#;
        match serde_json::from_str::<AgentRequest>(old) {
            Ok(AgentRequest::Session { client_id, .. }) => assert_eq!(client_id, None),
            other => panic!("{other:?}"),
        }
        let new = AgentRequest::Session {
            event: SessionEvent::Open,
            user: "ann".parse().unwrap(),
            service: "sshd".into(),
            tty: None,
            rhost: None,
            session_id: None,
            client_id: Some("elevation".parse().unwrap()),
        };
        let text = serde_json::to_string(&new).unwrap();
        assert!(text.contains(r#""client_id":"elevation""#), "{text}");
        assert_eq!(serde_json::from_str::<AgentRequest>(&text).unwrap(), new);
    }

    #[test]
    fn a_bad_user_or_client_id_does_not_deserialize() {
        for bad in [
            r#"{"op":"begin","version":1,"user":"a b","service":"sudo"}"#,
            r#"{"op":"begin","version":1,"user":"ann","service":"sudo","client_id":"x;y"}"#,
            r#"{"op":"session","event":"open","user":"../ann","service":"sshd"}"#,
            r#"{"op":"session","event":"open","user":"ann","service":"sshd","client_id":"a:b"}"#,
            r#"{"op":"account_check","user":"","service":"sshd"}"#,
        ] {
            assert!(serde_json::from_str::<AgentRequest>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_answer_is_a_plain_string_that_never_prints() {
        let text = r#"{"op":"answer","text":"123456"}"#;
        let req: AgentRequest = serde_json::from_str(text).unwrap();
        assert_eq!(serde_json::to_string(&req).unwrap(), text);
        assert!(!format!("{req:?}").contains("123456"), "{req:?}");
    }

    #[test]
    fn wire_shape_is_stable() {
        let s = serde_json::to_string(&AgentReply::Step(Step::Prompt {
            label: "Code:".into(),
            echo: false,
        }))
        .unwrap();
        assert_eq!(
            s,
            r#"{"reply":"step","step":"prompt","label":"Code:","echo":false}"#
        );
    }
}
