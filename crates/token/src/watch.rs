//! `latchkey-token watch`: show each push request, read the number the person types, send the
//! signed answer. The server compares the number with the one on the login screen; the app
//! never learns it, so a person who approves without looking cannot guess it right.

use crate::account::{Account, printable};
use crate::api::AppApi;
use crate::error::{Error, Result};
use crate::gateway::PushGateway;
use latchkey_proto::TxId;
use latchkey_proto::app::{Decision, PushRequest, PushResponse, PushVerdict};
use std::collections::HashSet;
use std::future::Future;
use std::io::{BufRead, Write};
use std::time::Duration;

/// Where signed answers go (always the server, over HTTPS, whatever the gateway).
pub trait Responder {
    fn respond(&self, r: &PushResponse) -> impl Future<Output = Result<PushVerdict>> + Send;
}

impl Responder for AppApi {
    fn respond(&self, r: &PushResponse) -> impl Future<Output = Result<PushVerdict>> + Send {
        AppApi::respond(self, r)
    }
}

/// What the person answered to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The number they typed (the server checks it).
    Number(u32),
    Deny,
}

impl std::str::FromStr for Answer {
    type Err = Error;
    fn from_str(s: &str) -> Result<Answer> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("d") || s.eq_ignore_ascii_case("deny") {
            return Ok(Answer::Deny);
        }
        if !s.is_empty()
            && s.chars().all(|c| c.is_ascii_digit())
            && let Ok(n) = s.parse()
        {
            return Ok(Answer::Number(n));
        }
        Err(Error::Usage(format!(
            "{s:?} is neither the number shown on the login screen nor 'd' to deny"
        )))
    }
}

/// The person in front of the app.
pub trait Prompter {
    /// Shows `question` and returns the answer.
    fn ask(&mut self, question: &str) -> Result<Answer>;
    /// Shows one line of information.
    fn tell(&mut self, line: &str);
}

/// Asks on stdout and reads stdin. Blocking is fine: the watch loop has nothing else to do
/// while a person decides.
pub struct TerminalPrompter;

impl Prompter for TerminalPrompter {
    fn ask(&mut self, question: &str) -> Result<Answer> {
        let stdin = std::io::stdin();
        loop {
            print!("{question} ");
            let _ = std::io::stdout().flush();
            let mut line = String::new();
            let n = stdin
                .lock()
                .read_line(&mut line)
                .map_err(|e| Error::Terminal(format!("cannot read the answer: {e}")))?;
            if n == 0 {
                return Err(Error::Terminal(
                    "no answer: standard input was closed".into(),
                ));
            }
            match line.parse() {
                Ok(a) => return Ok(a),
                Err(_) => println!("Type the number shown on the login screen, or 'd' to deny."),
            }
        }
    }

    fn tell(&mut self, line: &str) {
        println!("{line}");
    }
}

/// Answers every request the same way (`watch --answer`), for scripts and tests.
pub struct FixedAnswer(pub Answer);

impl Prompter for FixedAnswer {
    fn ask(&mut self, question: &str) -> Result<Answer> {
        let shown = match &self.0 {
            Answer::Number(n) => n.to_string(),
            Answer::Deny => "d".into(),
        };
        println!("{question} {shown}");
        Ok(self.0.clone())
    }

    fn tell(&mut self, line: &str) {
        println!("{line}");
    }
}

/// The line shown for a request (server text stripped of control characters).
pub fn question(req: &PushRequest) -> String {
    let from = match req.rhost.as_deref() {
        Some(r) if !r.is_empty() => format!(" from {}", printable(r)),
        _ => String::new(),
    };
    format!(
        "{}@{} ({}){from}: type the number shown on the login screen (or 'd' to deny):",
        printable(&req.user),
        printable(&req.host),
        printable(&req.client_id)
    )
}

/// The signed answer to `tx` (whose `nonce` came with the request).
pub fn response(
    account: &Account,
    tx: &TxId,
    nonce: &str,
    answer: &Answer,
    reason: Option<String>,
) -> PushResponse {
    let (decision, number, reason) = match answer {
        Answer::Number(n) => (Decision::Approve, Some(*n), None),
        Answer::Deny => (Decision::Deny, None, reason),
    };
    PushResponse {
        tx: tx.clone(),
        decision,
        number,
        nonce: nonce.to_string(),
        signature: account.sign_push(tx, decision, number, nonce),
        reason,
    }
}

/// Reconnect delays after transport failures: 1 s, 2 s, 4 s … capped at 30 s.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_secs(1);
    const MAX: Duration = Duration::from_secs(30);

    pub fn new() -> Self {
        Backoff { next: Self::FIRST }
    }

    pub fn reset(&mut self) {
        self.next = Self::FIRST;
    }

    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (d * 2).min(Self::MAX);
        d
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct WatchOptions {
    /// Handle one request, then return (its verdict decides the result).
    pub once: bool,
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Runs until an error that waiting cannot fix (e.g. the app was revoked), or, with
/// `once`, until one request is answered: `Ok` if the server accepted the answer.
pub async fn watch<G, R, P>(
    account: &Account,
    gateway: &mut G,
    responder: &R,
    prompter: &mut P,
    opts: WatchOptions,
) -> Result<()>
where
    G: PushGateway,
    R: Responder,
    P: Prompter,
{
    let mut backoff = Backoff::new();
    // Requests this loop already answered, so an answer the server did not settle (refused
    // signature, lost connection after sending) is not asked again and again.
    let mut answered: HashSet<String> = HashSet::new();
    loop {
        let batch = match gateway.next().await {
            Ok(b) => {
                backoff.reset();
                b
            }
            Err(e) if e.is_transient() => {
                let d = backoff.next_delay();
                prompter.tell(&format!("{e}; trying again in {} s", d.as_secs()));
                tokio::time::sleep(d).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        answered.retain(|tx| batch.iter().any(|r| &r.tx == tx));
        let fresh: Vec<&PushRequest> = batch
            .iter()
            .filter(|r| !answered.contains(r.tx.as_str()))
            .collect();
        if fresh.is_empty() {
            if let Some(earliest) = batch.iter().map(|r| r.expires_at).min() {
                // Only requests already answered are pending. The server answers a long poll
                // at once while anything is pending, so asking again now would spin; they
                // leave the list when they expire, so wait for the first expiry.
                let secs = (earliest - now()).clamp(1, 30);
                tokio::time::sleep(Duration::from_secs(secs as u64)).await;
            }
            continue;
        }
        for req in fresh {
            let answer = prompter.ask(&question(req))?;
            let reason = (answer == Answer::Deny).then(|| "denied in latchkey-token".to_string());
            let r = response(account, &req.tx, &req.nonce, &answer, reason);
            match responder.respond(&r).await {
                Ok(verdict) => {
                    answered.insert(req.tx.to_string());
                    let message = printable(&verdict.message);
                    if opts.once {
                        return if verdict.ok {
                            prompter.tell(&message);
                            Ok(())
                        } else {
                            Err(Error::Refused(message))
                        };
                    }
                    prompter.tell(&if verdict.ok {
                        message
                    } else {
                        format!("refused: {message}")
                    });
                }
                Err(e) if e.is_transient() && !opts.once => {
                    // Not marked answered: once the server is back it is asked again, if
                    // still pending.
                    let d = backoff.next_delay();
                    prompter.tell(&format!(
                        "the answer was not delivered ({e}); trying again in {} s",
                        d.as_secs()
                    ));
                    tokio::time::sleep(d).await;
                    break;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::account::tests::sample;
    use base64::Engine;
    use latchkey_proto::app::push_signing_bytes;
    use std::collections::VecDeque;
    use std::sync::Mutex;

    struct Script(VecDeque<Result<Vec<PushRequest>>>);
    impl PushGateway for Script {
        fn next(&mut self) -> impl Future<Output = Result<Vec<PushRequest>>> + Send {
            let item = self
                .0
                .pop_front()
                .unwrap_or_else(|| Err(Error::Usage("script ended".into())));
            async move { item }
        }
    }

    /// Approves when the number is 42, as a server whose login screen shows 42 would.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<PushResponse>>);
    impl Responder for Recorder {
        fn respond(&self, r: &PushResponse) -> impl Future<Output = Result<PushVerdict>> + Send {
            self.0.lock().unwrap().push(r.clone());
            let verdict = match (r.decision, r.number) {
                (Decision::Deny, _) => PushVerdict {
                    ok: true,
                    message: "Login denied".into(),
                },
                (_, Some(42)) => PushVerdict {
                    ok: true,
                    message: "Login approved".into(),
                },
                _ => PushVerdict {
                    ok: false,
                    message: "Wrong number".into(),
                },
            };
            async move { Ok(verdict) }
        }
    }

    struct Answers(VecDeque<Answer>, Vec<String>);
    impl Prompter for Answers {
        fn ask(&mut self, question: &str) -> Result<Answer> {
            self.1.push(question.to_string());
            self.0
                .pop_front()
                .ok_or(Error::Terminal("no more answers".into()))
        }
        fn tell(&mut self, line: &str) {
            self.1.push(line.to_string());
        }
    }

    fn req(tx: &str) -> PushRequest {
        PushRequest {
            tx: tx.parse().unwrap(),
            user: "alice".parse().unwrap(),
            host: "ws1".into(),
            client_id: "remote".parse().unwrap(),
            rhost: Some("10.0.0.9".into()),
            expires_at: now() - 1,
            nonce: format!("nonce-{tx}"),
        }
    }

    #[tokio::test]
    async fn once_approves_with_the_typed_number_and_a_valid_signature() {
        let account = sample("alice@h");
        let mut gw = Script(VecDeque::from([Ok(vec![]), Ok(vec![req("t1")])]));
        let rec = Recorder::default();
        let mut p = Answers(VecDeque::from([Answer::Number(42)]), vec![]);
        watch(&account, &mut gw, &rec, &mut p, WatchOptions { once: true })
            .await
            .unwrap();
        assert_eq!(
            p.1[0],
            "alice@ws1 (remote) from 10.0.0.9: type the number shown on the login screen (or 'd' to deny):"
        );
        assert_eq!(p.1[1], "Login approved");
        let sent = rec.0.lock().unwrap();
        assert_eq!(sent.len(), 1);
        let r = &sent[0];
        assert_eq!(
            (r.tx.as_str(), r.decision, r.number),
            ("t1", Decision::Approve, Some(42))
        );
        assert_eq!(r.nonce, "nonce-t1");
        let sig = base64::engine::general_purpose::STANDARD
            .decode(&r.signature)
            .unwrap();
        let msg = push_signing_bytes("t1", Decision::Approve, Some(42), "nonce-t1");
        assert!(latchkey_crypto::keys::ed25519_verify(
            &account.ed25519_public(),
            &msg,
            &sig
        ));
    }

    #[tokio::test]
    async fn once_with_a_wrong_number_is_an_error_with_the_servers_message() {
        let account = sample("alice@h");
        let mut gw = Script(VecDeque::from([Ok(vec![req("t1")])]));
        let rec = Recorder::default();
        let mut p = Answers(VecDeque::from([Answer::Number(41)]), vec![]);
        let e = watch(&account, &mut gw, &rec, &mut p, WatchOptions { once: true })
            .await
            .unwrap_err();
        assert_eq!(e.to_string(), "Wrong number");
        assert_eq!(e.exit_code(), 1);
    }

    #[tokio::test]
    async fn each_request_is_asked_once_and_a_denial_is_signed_without_number() {
        let account = sample("alice@h");
        // t1 stays pending after its (refused) answer: it must not be asked again.
        let mut gw = Script(VecDeque::from([
            Ok(vec![req("t1")]),
            Ok(vec![req("t1"), req("t2")]),
        ]));
        let rec = Recorder::default();
        let mut p = Answers(VecDeque::from([Answer::Number(7), Answer::Deny]), vec![]);
        let e = watch(&account, &mut gw, &rec, &mut p, WatchOptions::default())
            .await
            .unwrap_err();
        assert_eq!(e.to_string(), "script ended");
        let sent = rec.0.lock().unwrap();
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[1].tx, "t2");
        assert_eq!(sent[1].decision, Decision::Deny);
        assert_eq!(sent[1].number, None);
        assert!(
            p.1.contains(&"refused: Wrong number".to_string()),
            "{:?}",
            p.1
        );
        assert!(p.1.contains(&"Login denied".to_string()), "{:?}", p.1);
    }

    #[tokio::test]
    async fn a_revoked_app_stops_the_watch() {
        let account = sample("alice@h");
        let mut gw = Script(VecDeque::from([Err(Error::Revoked {
            server: "https://s".into(),
        })]));
        let rec = Recorder::default();
        let mut p = Answers(VecDeque::new(), vec![]);
        let e = watch(&account, &mut gw, &rec, &mut p, WatchOptions::default())
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Revoked { .. }));
    }

    #[test]
    fn backoff_doubles_to_thirty_seconds_and_resets() {
        let mut b = Backoff::new();
        let secs: Vec<u64> = (0..7).map(|_| b.next_delay().as_secs()).collect();
        assert_eq!(secs, vec![1, 2, 4, 8, 16, 30, 30]);
        b.reset();
        assert_eq!(b.next_delay().as_secs(), 1);
    }

    #[test]
    fn answers_parse() {
        assert_eq!("42".parse::<Answer>().unwrap(), Answer::Number(42));
        assert_eq!(" 07\n".parse::<Answer>().unwrap(), Answer::Number(7));
        assert_eq!("d".parse::<Answer>().unwrap(), Answer::Deny);
        assert_eq!("DENY".parse::<Answer>().unwrap(), Answer::Deny);
        for bad in ["", "4 2", "-1", "yes", "99999999999"] {
            assert!(bad.parse::<Answer>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_question_has_no_control_characters_and_no_empty_rhost() {
        let mut r = req("t");
        r.rhost = None;
        r.host = "ws\u{1b}]0;evil\u{7}1".into();
        assert_eq!(
            question(&r),
            "alice@ws]0;evil1 (remote): type the number shown on the login screen (or 'd' to deny):"
        );
    }
}
