//! A fake agent for PAM tests that need scripted replies (garbage, hang-ups, odd steps) the
//! real agent never sends. End-to-end tests use the real agent (`crate::agent`).

use anyhow::Result;
use latchkey_proto::agent::{AgentReply, AgentRequest, Step, blocking};
use std::io::Write;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use tempfile::TempDir;

/// What the scripted agent does with one request.
pub enum AgentAction {
    Reply(AgentReply),
    /// Bytes written as they are (garbage, a truncated frame…).
    Raw(Vec<u8>),
    /// Close the connection without a reply.
    Hangup,
}

impl From<AgentReply> for AgentAction {
    fn from(r: AgentReply) -> Self {
        AgentAction::Reply(r)
    }
}

impl From<Step> for AgentAction {
    fn from(s: Step) -> Self {
        AgentAction::Reply(AgentReply::Step(s))
    }
}

type Script = Box<dyn FnMut(&AgentRequest) -> AgentAction + Send>;

/// A stand-in for `latchkey-agent run` on a Unix socket in a temporary directory: a thread
/// that answers each request with what the script says and records every request. One
/// connection at a time, like the module uses it.
pub struct ScriptedAgent {
    _dir: TempDir,
    path: PathBuf,
    requests: Arc<Mutex<Vec<AgentRequest>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ScriptedAgent {
    pub fn start(
        script: impl FnMut(&AgentRequest) -> AgentAction + Send + 'static,
    ) -> Result<ScriptedAgent> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("agent.sock");
        let listener = UnixListener::bind(&path)?;
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (log, halt) = (requests.clone(), stop.clone());
        let mut script: Script = Box::new(script);
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if halt.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(mut conn) = conn else { continue };
                while let Ok(req) = blocking::read::<_, AgentRequest>(&mut conn) {
                    let action = script(&req);
                    log.lock().unwrap_or_else(PoisonError::into_inner).push(req);
                    let sent = match action {
                        AgentAction::Reply(r) => blocking::write(&mut conn, &r),
                        AgentAction::Raw(bytes) => conn.write_all(&bytes),
                        AgentAction::Hangup => break,
                    };
                    if sent.is_err() {
                        break;
                    }
                }
            }
        });
        Ok(ScriptedAgent {
            _dir: dir,
            path,
            requests,
            stop,
            thread: Some(thread),
        })
    }

    pub fn socket_path(&self) -> &Path {
        &self.path
    }

    /// The module option that points at this agent: `socket=/tmp/…/agent.sock`.
    pub fn socket_arg(&self) -> String {
        format!("socket={}", self.path.display())
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<AgentRequest> {
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for ScriptedAgent {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so the thread sees `stop`.
        let _ = UnixStream::connect(&self.path);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
