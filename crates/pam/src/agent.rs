//! One conversation with the agent over its Unix socket (`crates/proto/src/agent.rs`).

use crate::error::{Error, Result};
use latchkey_proto::Secret;
use latchkey_proto::agent::{AgentReply, AgentRequest, blocking, encode_frame};
use std::io::{ErrorKind, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;
use zeroize::Zeroizing;

/// A live agent accepts at once; this only bounds a wedged one whose backlog is full.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) struct AgentConn {
    stream: UnixStream,
    timeout: Duration,
}

impl AgentConn {
    /// Connects; a missing socket or a stopped agent fails at once (ENOENT, ECONNREFUSED).
    pub(crate) fn connect(path: &Path, timeout: Duration) -> Result<AgentConn> {
        let connect_err = |source| Error::Connect {
            path: path.to_path_buf(),
            source,
        };
        let stream =
            crate::ffi::connect_unix(path, timeout.min(CONNECT_TIMEOUT)).map_err(connect_err)?;
        // Only root's agent (or, for an unprivileged caller such as a screen locker running as
        // the user, a process of that same user) may answer: a socket left by anyone else is
        // not our agent, whatever its path.
        let peer = crate::ffi::peer_uid(&stream).map_err(connect_err)?;
        if !trusted_agent(peer, crate::ffi::euid()) {
            return Err(connect_err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!("the process on the socket runs as uid {peer}, not root"),
            )));
        }
        stream
            .set_read_timeout(Some(timeout))
            .and_then(|()| stream.set_write_timeout(Some(timeout)))
            .map_err(connect_err)?;
        Ok(AgentConn { stream, timeout })
    }

    pub(crate) fn call(&mut self, req: &AgentRequest) -> Result<AgentReply> {
        blocking::write(&mut self.stream, req).map_err(|e| self.io_error(e))?;
        self.recv()
    }

    /// Sends the person's answer and reads the next reply. The answer (an OTP code) lives
    /// only in zeroized buffers on our side.
    pub(crate) fn answer(&mut self, mut text: Zeroizing<String>) -> Result<AgentReply> {
        let req = AgentRequest::Answer {
            text: Secret::from(std::mem::take(&mut *text)),
        };
        let frame = encode_frame(&req).map(Zeroizing::new);
        // The Secret wipes the answer as it goes; the frame is wiped when sent.
        drop(req);
        let frame = frame.map_err(Error::Protocol)?;
        self.stream
            .write_all(&frame)
            .and_then(|()| self.stream.flush())
            .map_err(|e| self.io_error(e))?;
        self.recv()
    }

    fn recv(&mut self) -> Result<AgentReply> {
        blocking::read(&mut self.stream).map_err(|e| self.io_error(e))
    }

    fn io_error(&self, e: std::io::Error) -> Error {
        match e.kind() {
            ErrorKind::InvalidData => Error::Protocol(e.to_string()),
            ErrorKind::UnexpectedEof => Error::Protocol("the agent closed the connection".into()),
            ErrorKind::WouldBlock | ErrorKind::TimedOut => Error::Io(std::io::Error::new(
                ErrorKind::TimedOut,
                format!("no answer within {} s", self.timeout.as_secs()),
            )),
            _ => Error::Io(e),
        }
    }
}

/// Whether an agent running as `peer` may answer a module running as `me`.
pub(crate) fn trusted_agent(peer: u32, me: u32) -> bool {
    peer == 0 || peer == me
}

#[cfg(test)]
mod trust_tests {
    use super::trusted_agent;

    #[test]
    fn only_root_or_our_own_uid_may_be_the_agent() {
        assert!(trusted_agent(0, 0));
        assert!(trusted_agent(0, 1000));
        assert!(trusted_agent(1000, 1000));
        assert!(
            !trusted_agent(1000, 0),
            "a user's process cannot answer root's sudo"
        );
        assert!(!trusted_agent(1001, 1000));
    }
}
