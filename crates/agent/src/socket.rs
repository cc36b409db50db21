//! The agent's Unix socket: who is calling (SO_PEERCRED), and the per-connection
//! conversation. Root may act for any user; any other caller (a screen locker runs PAM as
//! the user) only for itself. On Windows the same conversation runs over a named pipe
//! (`pipe.rs`); only the transport and the caller check differ.

use crate::Agent;
use crate::engine::{Login, LoginRequest};
use crate::error::{AgentError, Result};
use latchkey_proto::ClientId;
use latchkey_proto::agent::{
    AGENT_PROTOCOL_VERSION, AgentReply, AgentRequest, AgentStatus, SessionEvent, frame_len,
};
#[cfg(unix)]
use std::os::unix::fs::PermissionsExt;
#[cfg(unix)]
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
#[cfg(unix)]
use tokio::net::{UnixListener, UnixStream};
#[cfg(unix)]
use tokio::sync::watch;

/// How long a shell may take to answer a step (a person is typing a code). Before the first
/// request and when no step is out, the much shorter `socket_limits.idle` applies.
const ANSWER_WAIT: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Caller {
    /// root on Unix; SYSTEM or an administrator on Windows.
    Root,
    #[cfg_attr(windows, allow(dead_code))]
    User(String),
}

impl Caller {
    fn may_act_for(&self, user: &str) -> bool {
        match self {
            Caller::Root => true,
            Caller::User(name) => name == user,
        }
    }
}

/// Binds the socket: parent directory 0755, socket 0666 (any local user may connect; what
/// they may do is checked per request). A stale socket file is replaced; a live one (another
/// agent answering) is an error.
#[cfg(unix)]
pub async fn bind(path: &Path) -> Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| AgentError::file(dir, e))?;
    }
    if path.exists() {
        if UnixStream::connect(path).await.is_ok() {
            return Err(AgentError::Socket(format!(
                "{} is in use: is another latchkey-agent running?",
                path.display()
            )));
        }
        std::fs::remove_file(path).map_err(|e| AgentError::file(path, e))?;
    }
    let listener = UnixListener::bind(path)
        .map_err(|e| AgentError::Socket(format!("cannot listen on {}: {e}", path.display())))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))
        .map_err(|e| AgentError::file(path, e))?;
    Ok(listener)
}

#[cfg(unix)]
pub async fn serve(agent: Arc<Agent>, listener: UnixListener, mut shutdown: watch::Receiver<bool>) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.changed() => return,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, _)) => {
                let agent = agent.clone();
                tokio::spawn(async move { unix_connection(agent, stream).await });
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept on the agent socket failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn read_frame<S: AsyncRead + Unpin>(
    stream: &mut S,
    idle: Duration,
) -> Result<Option<AgentRequest>> {
    let bad = |msg: String| Err(AgentError::Socket(msg));
    let mut header = [0u8; 4];
    match tokio::time::timeout(idle, stream.read_exact(&mut header)).await {
        Err(_) => return bad("idle too long".into()),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Ok(Err(e)) => return bad(e.to_string()),
        Ok(Ok(_)) => {}
    }
    let len = frame_len(header).map_err(AgentError::Socket)?;
    let mut body = vec![0u8; len];
    match tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut body)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return bad(e.to_string()),
        Err(_) => return bad("incomplete frame".into()),
    }
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(|e| AgentError::Socket(format!("bad request: {e}")))
}

pub(crate) async fn write_reply<S: AsyncWrite + Unpin>(
    stream: &mut S,
    reply: &AgentReply,
) -> Result<()> {
    let frame = latchkey_proto::agent::encode_frame(reply).map_err(AgentError::Socket)?;
    stream
        .write_all(&frame)
        .await
        .map_err(|e| AgentError::Socket(e.to_string()))
}

#[cfg(unix)]
async fn unix_connection(agent: Arc<Agent>, mut stream: UnixStream) {
    let caller = match stream.peer_cred() {
        Ok(cred) if cred.uid() == 0 => Caller::Root,
        Ok(cred) => match crate::sys::user_name(cred.uid()) {
            Some(name) => Caller::User(name),
            None => {
                let _ = write_reply(
                    &mut stream,
                    &AgentReply::Error {
                        message: "caller has no user name".into(),
                    },
                )
                .await;
                return;
            }
        },
        Err(e) => {
            tracing::warn!(error = %e, "cannot identify the caller on the agent socket");
            return;
        }
    };
    connection(agent, stream, caller).await
}

/// One conversation with an identified caller, whatever the transport.
pub(crate) async fn connection<S: AsyncRead + AsyncWrite + Unpin>(
    agent: Arc<Agent>,
    mut stream: S,
    caller: Caller,
) {
    // Held for the whole conversation: a connection over the caller's share is answered
    // and closed before it can read anything or hold a descriptor.
    let _permit = match agent.limits.admit(&caller) {
        Ok(p) => p,
        Err(refusal) => {
            tracing::warn!(?caller, reason = %refusal, "agent connection refused");
            let _ = write_reply(
                &mut stream,
                &AgentReply::Error {
                    message: refusal.to_string(),
                },
            )
            .await;
            return;
        }
    };
    let mut login: Option<Login> = None;
    loop {
        let idle = match &login {
            Some(l) if !l.is_done() => ANSWER_WAIT,
            _ => agent.limits.idle,
        };
        let req = match read_frame(&mut stream, idle).await {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(e) => {
                tracing::debug!(?caller, error = %e, "closing agent connection");
                let message = e.to_string();
                let _ = write_reply(&mut stream, &AgentReply::Error { message }).await;
                return;
            }
        };
        // The engine recorded the outcome of a final step before handing it back.
        let reply = handle(&agent, &caller, &mut login, req).await;
        let last = matches!(&reply, AgentReply::Error { .. })
            || matches!(&reply, AgentReply::Step(s) if s.is_final());
        if write_reply(&mut stream, &reply).await.is_err() || last {
            return;
        }
    }
}

/// The access context of a request: the shell's `client_id` (validated when the frame was
/// read), else the agent's mapping of the service. A mapping that does not parse refuses the
/// request; it never falls back to another context.
fn context(agent: &Agent, client_id: Option<ClientId>, service: &str) -> crate::Result<ClientId> {
    match client_id {
        Some(c) => Ok(c),
        None => agent.config.client_id_for(service).map_err(|e| {
            AgentError::Config(format!(
                "no valid access context for service {service:?}: {e}"
            ))
        }),
    }
}

async fn handle(
    agent: &Agent,
    caller: &Caller,
    login: &mut Option<Login>,
    req: AgentRequest,
) -> AgentReply {
    let denied = |user: &str| {
        tracing::warn!(?caller, user, "caller may not act for this user");
        AgentReply::Error {
            message: format!("not allowed: only root may act for another user ({user})"),
        }
    };
    match req {
        AgentRequest::Begin {
            version,
            user,
            service,
            client_id,
            rhost,
            tty,
            enroll,
        } => {
            if version != AGENT_PROTOCOL_VERSION {
                return AgentReply::Error {
                    message: format!("unsupported protocol version {version}"),
                };
            }
            if login.is_some() {
                return AgentReply::Error {
                    message: "a login is already running on this connection".into(),
                };
            }
            if !caller.may_act_for(&user) {
                return denied(&user);
            }
            if let Err(refusal) = agent.limits.take_begin(caller) {
                tracing::warn!(?caller, %user, reason = %refusal, "login refused before it began");
                return AgentReply::Error {
                    message: refusal.to_string(),
                };
            }
            let client_id = match context(agent, client_id, &service).map_err(|e| e.to_string()) {
                Ok(c) => c,
                Err(message) => return AgentReply::Error { message },
            };
            let enroll = match crate::first_factor::judge(caller, &user, enroll).await {
                crate::first_factor::Verdict::Enrol => true,
                crate::first_factor::Verdict::NoEnrol => false,
                crate::first_factor::Verdict::Refuse(reason) => {
                    tracing::warn!(%user, %service, %reason, "login refused: first factor");
                    return AgentReply::Step(latchkey_proto::agent::Step::Failure { reason });
                }
            };
            tracing::info!(%user, %service, %client_id, rhost = rhost.as_deref().unwrap_or("-"), enroll, "login begins");
            let mut l = Login::new(LoginRequest {
                user,
                client_id,
                service: Some(service),
                rhost,
                tty,
                enroll,
            })
            .with_fido2(crate::fido2::Settings::from_config(&agent.config))
            .with_smartcard_module(agent.config.smartcard_module());
            let step = l.begin(&agent.engine).await;
            *login = Some(l);
            AgentReply::Step(step)
        }
        AgentRequest::Answer { text } => match login.as_mut() {
            Some(l) if !l.is_done() => {
                AgentReply::Step(l.answer(&agent.engine, text.expose()).await)
            }
            _ => AgentReply::Error {
                message: "no login is waiting for an answer".into(),
            },
        },
        AgentRequest::Continue => match login.as_mut() {
            Some(l) if !l.is_done() => AgentReply::Step(l.on_continue(&agent.engine).await),
            _ => AgentReply::Error {
                message: "no login to continue".into(),
            },
        },
        AgentRequest::AccountCheck {
            user,
            service,
            client_id,
        } => {
            if !caller.may_act_for(&user) {
                return denied(&user);
            }
            if let Err(refusal) = agent.limits.take_begin(caller) {
                tracing::warn!(?caller, %user, reason = %refusal, "account check refused");
                return AgentReply::Account {
                    allowed: false,
                    message: refusal.to_string(),
                };
            }
            let client_id = match context(agent, client_id, &service).map_err(|e| e.to_string()) {
                Ok(c) => c,
                Err(message) => {
                    return AgentReply::Account {
                        allowed: false,
                        message,
                    };
                }
            };
            agent.engine.account_check(&user, &client_id).await
        }
        AgentRequest::Session {
            event,
            user,
            service,
            tty,
            rhost,
            session_id,
            client_id,
        } => {
            if !caller.may_act_for(&user) {
                return denied(&user);
            }
            let who = user.clone();
            let refuse = |message: String| {
                tracing::warn!(?caller, user = %who, "session report refused: {message}");
                AgentReply::Error { message }
            };
            let reporter = match caller {
                Caller::Root => crate::sessions::Reporter::Root,
                Caller::User(name) => match crate::sys::user_uid(name) {
                    Some(uid) => crate::sessions::Reporter::User { uid },
                    None => {
                        return refuse(format!(
                            "not allowed: the agent cannot find the uid of {name}"
                        ));
                    }
                },
            };
            let admitted = match crate::sessions::admit_logind_id(
                reporter,
                event == SessionEvent::Open,
                session_id,
                &agent.config.session_lock.logind_sessions,
            ) {
                Ok(a) => a,
                Err(why) => return refuse(format!("not allowed: {why}")),
            };
            if let Some(note) = &admitted.note {
                tracing::warn!(?caller, %user, "{note}");
            }
            let what = match event {
                SessionEvent::Open => "session opened",
                SessionEvent::Close => "session closed",
            };
            tracing::info!(
                %user, %service, tty = ?tty, rhost = ?rhost, session = ?admitted.logind_id,
                reporter = ?reporter, "{what}"
            );
            // The context the login used (the module line's `client_id=`), so the session is
            // recorded, and locked, under the rule of that context.
            let client_id = match context(agent, client_id, &service).map_err(|e| e.to_string()) {
                Ok(c) => c,
                Err(message) => return refuse(message),
            };
            let facts = crate::sessions::SessionFacts {
                client_id: client_id.into_string(),
                user: user.into_string(),
                service,
                tty,
                rhost,
                logind_id: admitted.logind_id,
                reported_by_uid: match reporter {
                    crate::sessions::Reporter::Root => None,
                    crate::sessions::Reporter::User { uid } => Some(uid),
                },
                note: admitted.note,
            };
            // On the blocking pool: the write waits for its fsync (and for the spool's other
            // writers), which must not hold an async thread that logins run on.
            let sessions = agent.sessions.clone();
            let r = tokio::task::spawn_blocking(move || match event {
                SessionEvent::Open => sessions.open(&facts).map(|_| ()),
                SessionEvent::Close => sessions.close(&facts),
            })
            .await;
            let failed = match r {
                Ok(Ok(())) => return AgentReply::Ack,
                Ok(Err(e @ crate::agent_db::AgentDbError::OverQuota { .. })) => {
                    return refuse(format!("not recorded: {e}"));
                }
                Ok(Err(e)) => e.to_string(),
                Err(e) => e.to_string(),
            };
            tracing::error!(error = %failed, "session event NOT spooled");
            AgentReply::Error {
                message: "the agent could not record the session".into(),
            }
        }
        AgentRequest::Status => AgentReply::Status(AgentStatus {
            machine_id: agent.config.machine_id.clone(),
            selection: agent.config.selection.clone(),
            servers: agent.engine.server().status(),
            // Who else is logged in is no business of an unprivileged caller.
            open_sessions: agent.sessions.open_sessions(match caller {
                Caller::Root => None,
                Caller::User(name) => Some(name),
            }),
        }),
    }
}
