//! The agent's own terminal shell: `latchkey-agent login` runs a login through the running
//! agent exactly as PAM would, so an admin can test a setup without locking themselves out;
//! `latchkey-agent status` shows the servers.

use crate::error::{AgentError, Result};
use latchkey_proto::agent::{
    AGENT_PROTOCOL_VERSION, AgentReply, AgentRequest, AgentStatus, Step, blocking,
};
use latchkey_proto::{ClientId, Secret, UserName};
use std::io::{BufRead, Write};
#[cfg(unix)]
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

#[cfg(unix)]
type Conn = UnixStream;
/// The client end of the agent's named pipe opens like a file.
#[cfg(windows)]
type Conn = std::fs::File;

fn unreachable(socket: &Path, e: std::io::Error) -> AgentError {
    AgentError::Socket(format!(
        "cannot reach the agent at {}: {e} (is latchkey-agent running?)",
        socket.display()
    ))
}

#[cfg(unix)]
fn connect(socket: &Path) -> Result<Conn> {
    let s = UnixStream::connect(socket).map_err(|e| unreachable(socket, e))?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(600)));
    Ok(s)
}

#[cfg(windows)]
fn connect(socket: &Path) -> Result<Conn> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(socket)
        .map_err(|e| unreachable(socket, e))
}

fn exchange(s: &mut Conn, req: &AgentRequest) -> Result<AgentReply> {
    let lost = |e: std::io::Error| AgentError::Socket(format!("agent connection: {e}"));
    blocking::write(s, req).map_err(lost)?;
    blocking::read(s).map_err(lost)
}

/// Runs one login in the terminal; Ok(true) when MFA passed.
pub fn login(socket: &Path, user: &UserName, client_id: Option<&ClientId>) -> Result<bool> {
    let mut s = connect(socket)?;
    let mut req = AgentRequest::Begin {
        version: AGENT_PROTOCOL_VERSION,
        user: user.clone(),
        service: "latchkey-agent".to_string(),
        client_id: client_id.cloned(),
        rhost: None,
        tty: None,
        // The agent offers enrolment only to root callers (PAM), never to this command.
        enroll: None,
    };
    let stdin = std::io::stdin();
    loop {
        let step = match exchange(&mut s, &req)? {
            AgentReply::Step(step) => step,
            AgentReply::Error { message } => {
                return Err(AgentError::Socket(format!("agent: {message}")));
            }
            other => {
                return Err(AgentError::Socket(format!(
                    "agent answered out of turn: {other:?}"
                )));
            }
        };
        req = match step {
            Step::Info { text } | Step::Wait { text } => {
                println!("{text}");
                AgentRequest::Continue
            }
            Step::Qr {
                payload,
                text,
                copy,
            } => {
                println!("{text}\n{}", copy.unwrap_or(payload));
                AgentRequest::Continue
            }
            Step::Enroll { text, .. } => {
                // Never sent to this command (it does not ask for enrolment).
                println!("{text}");
                AgentRequest::Continue
            }
            Step::Prompt { label, echo } => {
                print!("{label} ");
                let _ = std::io::stdout().flush();
                let mut line = String::new();
                {
                    let _guard = (!echo).then(|| crate::sys::EchoOff::new(0));
                    stdin
                        .lock()
                        .read_line(&mut line)
                        .map_err(|e| AgentError::Local(format!("terminal: {e}")))?;
                }
                if !echo {
                    println!();
                }
                // Moved, not copied, into the Secret, which wipes it once sent.
                let typed = line.trim_end_matches(['\r', '\n']).len();
                line.truncate(typed);
                AgentRequest::Answer {
                    text: Secret::from(line),
                }
            }
            Step::Success { message } => {
                println!(
                    "MFA passed{}",
                    if message.is_empty() {
                        String::new()
                    } else {
                        format!(": {message}")
                    }
                );
                return Ok(true);
            }
            Step::Failure { reason } => {
                eprintln!("MFA failed: {reason}");
                return Ok(false);
            }
        };
    }
}

pub fn status(socket: &Path) -> Result<AgentStatus> {
    let mut s = connect(socket)?;
    match exchange(&mut s, &AgentRequest::Status)? {
        AgentReply::Status(st) => Ok(st),
        AgentReply::Error { message } => Err(AgentError::Socket(format!("agent: {message}"))),
        other => Err(AgentError::Socket(format!(
            "agent answered out of turn: {other:?}"
        ))),
    }
}

pub fn print_status(st: &AgentStatus) {
    println!("machine {}  selection {}", st.machine_id, st.selection);
    println!(
        "{:<40} {:<10} {:<10} {:<22} LAST ERROR",
        "SERVER", "CIRCUIT", "RETRY IN", "LAST CONTACT"
    );
    for s in &st.servers {
        let last = s
            .last_contact
            .map(|t| {
                humantime::format_rfc3339_seconds(
                    std::time::UNIX_EPOCH + Duration::from_secs(t.max(0) as u64),
                )
                .to_string()
            })
            .unwrap_or_else(|| "never".into());
        let retry = s
            .retry_in_secs
            .map(|r| format!("{r}s"))
            .unwrap_or_else(|| "-".into());
        println!(
            "{:<40} {:<10} {:<10} {:<22} {}",
            s.url,
            s.circuit,
            retry,
            last,
            s.last_error.as_deref().unwrap_or("-")
        );
    }
    if !st.open_sessions.is_empty() {
        println!("open sessions:");
        for s in &st.open_sessions {
            println!(
                "  {} via {} (session {})",
                s.user,
                s.service,
                s.session_id.as_deref().unwrap_or("-")
            );
        }
    }
}
