//! A local caller of the agent socket, for tests that play an unprivileged local user (the
//! test starts it with `uid(65534)`). It speaks the real frame protocol; nothing in it is
//! special to tests on the agent's side.
//!
//! ```text
//! lk-local-caller SOCKET hold N [MS]       open up to N connections, send nothing, wait MS
//!                                          milliseconds, print `held K open M` (M: those the
//!                                          agent has not closed; then the error that stopped
//!                                          it, if any), keep them until standard input closes
//! lk-local-caller SOCKET send JSON...      one connection: each request, then its reply,
//!                                          printed as one JSON line
//! lk-local-caller SOCKET repeat N JSON     the same request N times (one connection while
//!                                          the agent acknowledges, else a new one for the
//!                                          next request); prints a JSON summary
//!                                          {"sent":…, "replies":{kind: count}, "last_error":…}
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used)]

use latchkey_proto::agent::{AgentReply, AgentRequest, blocking};
use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::net::UnixStream;
use std::process::ExitCode;

#[allow(unsafe_code)]
fn raise_nofile() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // A strong attacker uses every descriptor it is allowed.
    // SAFETY: plain struct out-parameter of getrlimit/setrlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max.min(1 << 16);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

fn kind(reply: &AgentReply) -> String {
    match reply {
        AgentReply::Error { .. } => "error".into(),
        AgentReply::Ack => "ack".into(),
        AgentReply::Step(s) => format!("step:{}", step_kind(s)),
        AgentReply::Account { allowed, .. } => format!("account:{allowed}"),
        AgentReply::Status(_) => "status".into(),
    }
}

fn step_kind(s: &latchkey_proto::agent::Step) -> &'static str {
    use latchkey_proto::agent::Step;
    match s {
        Step::Info { .. } => "info",
        Step::Qr { .. } => "qr",
        Step::Enroll { .. } => "enroll",
        Step::Prompt { .. } => "prompt",
        Step::Wait { .. } => "wait",
        Step::Success { .. } => "success",
        Step::Failure { .. } => "failure",
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(socket), Some(cmd)) = (args.first(), args.get(1)) else {
        eprintln!("usage: lk-local-caller SOCKET hold N | send JSON... | repeat N JSON");
        return ExitCode::from(2);
    };
    match cmd.as_str() {
        "hold" => {
            raise_nofile();
            let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1);
            let mut held = Vec::new();
            let mut stopped = String::new();
            while held.len() < n {
                match UnixStream::connect(socket) {
                    Ok(s) => held.push(s),
                    Err(e) => {
                        stopped = e.to_string();
                        break;
                    }
                }
            }
            // After SETTLE_MS, count the connections the agent still keeps open (a closed
            // one reads EOF or the agent's error frame).
            let settle: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(0);
            std::thread::sleep(std::time::Duration::from_millis(settle));
            let open = held
                .iter()
                .filter(|s| {
                    let _ = s.set_nonblocking(true);
                    let mut b = [0u8; 1];
                    matches!((&**s).read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
                })
                .count();
            println!("held {} open {open} {stopped}", held.len());
            let mut sink = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut sink);
            drop(held);
            ExitCode::SUCCESS
        }
        "send" => {
            let mut s = match UnixStream::connect(socket) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("connect {socket}: {e}");
                    return ExitCode::FAILURE;
                }
            };
            for json in &args[2..] {
                let req: AgentRequest = serde_json::from_str(json).expect("a request in JSON");
                if let Err(e) = blocking::write(&mut s, &req) {
                    println!("{}", serde_json::json!({ "io_error": e.to_string() }));
                    return ExitCode::FAILURE;
                }
                match blocking::read::<_, AgentReply>(&mut s) {
                    Ok(r) => println!("{}", serde_json::to_string(&r).unwrap()),
                    Err(e) => {
                        println!("{}", serde_json::json!({ "io_error": e.to_string() }));
                        return ExitCode::FAILURE;
                    }
                }
            }
            ExitCode::SUCCESS
        }
        "repeat" => {
            let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1);
            let req: AgentRequest =
                serde_json::from_str(args.get(3).map_or("", |s| s)).expect("a request in JSON");
            let mut replies: BTreeMap<String, usize> = BTreeMap::new();
            let mut last_error = String::new();
            let mut conn: Option<UnixStream> = None;
            for _ in 0..n {
                if conn.is_none() {
                    match UnixStream::connect(socket) {
                        Ok(s) => conn = Some(s),
                        Err(e) => {
                            *replies.entry("connect_error".into()).or_default() += 1;
                            last_error = e.to_string();
                            continue;
                        }
                    }
                }
                let Some(s) = conn.as_mut() else { continue };
                let reply = blocking::write(s, &req).and_then(|()| blocking::read(s));
                match reply {
                    Ok(r) => {
                        if let AgentReply::Error { message } = &r {
                            last_error = message.clone();
                        }
                        // Only an acknowledged report leaves the conversation open for the
                        // next request; anything else (a login step, an error) starts anew.
                        if r != AgentReply::Ack {
                            conn = None;
                        }
                        *replies.entry(kind(&r)).or_default() += 1;
                    }
                    Err(e) => {
                        *replies.entry("io_error".into()).or_default() += 1;
                        last_error = e.to_string();
                        conn = None;
                    }
                }
            }
            println!(
                "{}",
                serde_json::json!({ "sent": n, "replies": replies, "last_error": last_error })
            );
            ExitCode::SUCCESS
        }
        other => {
            eprintln!("unknown command {other}");
            ExitCode::from(2)
        }
    }
}
