//! Inline enrolment at the prompt: a user without a token, whose first factor the shell
//! vouched for, picks what to enrol, scans its QR code and finishes the login with it — the
//! first code of an authenticator app, or a push to the token app just registered — or
//! skips while grace logins remain (docs/enrollment.md). The server decides every step; the
//! engine only turns its answers into steps.

use super::settle::mfa_passed;
use super::{Login, LoginEngine, Outcome, Progress, Server, fail};
use latchkey_proto::Method;
use latchkey_proto::agent::Step;
use latchkey_proto::enroll::{EnrollBegun, EnrollMethod, EnrollWait};
use latchkey_proto::login::LoginStepResult;
use std::time::{Duration, Instant};

/// Longest the engine waits for a token app to register: below the PAM module's read
/// timeout (300 s), so the shell hears the outcome.
const APP_WAIT: Duration = Duration::from_secs(240);

/// A pending enrolment as the conversation holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Pending {
    pub(super) tx: String,
    pub(super) methods: Vec<EnrollMethod>,
    /// Logins the user may still finish without a token.
    pub(super) grace_left: u32,
    pub(super) until: Instant,
}

/// Where an enrolment stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Enrolling {
    /// The offer (`Step::Enroll`) is out.
    Offered,
    /// The authenticator's QR code (or a message) is out; the code prompt follows.
    ShowCode,
    /// The code prompt is out.
    AwaitCode,
    /// The token app's QR code is out; the wait follows.
    ShowApp,
    /// "Waiting for the app" is out: on Continue the engine waits for the registration.
    AwaitApp { until: Instant },
    /// The invite link's QR code is out: on Continue the login ends with `reason`.
    ShowLink { reason: String },
}

fn plural(n: u32) -> &'static str {
    if n == 1 { "" } else { "s" }
}

impl Pending {
    fn skip_hint(&self) -> Option<String> {
        (self.grace_left > 0).then(|| {
            format!(
                "Press Enter to skip enrolment, {} login{} left",
                self.grace_left,
                plural(self.grace_left)
            )
        })
    }

    /// The offer: the server's sentence, the choices when there are several.
    fn offer(&self, message: &str) -> Step {
        let mut text = message.to_string();
        for (i, m) in self.methods.iter().enumerate() {
            text.push_str(&format!("\n  {}) {}", i + 1, m.describe()));
        }
        let mut label = if self.methods.len() > 1 {
            format!("Enrol which (1-{})", self.methods.len())
        } else {
            "Type 1 to enrol it now".to_string()
        };
        if let Some(hint) = self.skip_hint() {
            label.push_str(&format!(" ({hint})"));
        }
        label.push_str(": ");
        Step::Enroll {
            text,
            methods: self.methods.clone(),
            label,
            skip: self.skip_hint(),
        }
    }

    fn code_label(&self) -> String {
        match self.skip_hint() {
            Some(hint) => format!("Type the first code from your app to finish ({hint}): "),
            None => "Type the first code from your app to finish: ".into(),
        }
    }

    /// The method an answer to the offer names: a number from 1 or a method's name.
    fn pick(&self, text: &str) -> Option<EnrollMethod> {
        let t = text.trim();
        if let Ok(n) = t.parse::<usize>() {
            return n.checked_sub(1).and_then(|i| self.methods.get(i)).copied();
        }
        t.to_ascii_lowercase()
            .parse::<EnrollMethod>()
            .ok()
            .filter(|m| self.methods.contains(m))
    }
}

/// `XXXX XXXX …`: a base32 secret grouped for typing.
fn grouped(secret: &str) -> String {
    secret
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The instruction, then the QR code drawn for terminals (the text alone if it cannot be
/// drawn: the payload is still shown for copying).
fn qr_text(message: &str, payload: &str) -> String {
    match crate::qr::render(payload) {
        Ok(picture) => format!("{message}\n{picture}"),
        Err(e) => {
            tracing::warn!(error = %e, "enrolment QR code not drawn");
            message.to_string()
        }
    }
}

impl Login {
    /// The server answered a login start with an enrolment offer.
    pub(super) fn enroll_offered(
        &mut self,
        tx: String,
        methods: Vec<EnrollMethod>,
        message: &str,
        expires_in: u64,
        grace_left: u32,
    ) -> Step {
        if !self.req.enroll || methods.is_empty() {
            return self.finish(fail(
                "Login refused: protocol error (an enrolment nobody asked for)",
            ));
        }
        let pending = Pending {
            tx,
            methods,
            grace_left,
            until: Instant::now() + Duration::from_secs(expires_in),
        };
        let step = pending.offer(message);
        self.progress = Progress::Enroll(Box::new((pending, Enrolling::Offered)));
        step
    }

    pub(super) async fn enroll_answer<S: Server>(
        &mut self,
        engine: &LoginEngine<S>,
        text: &str,
    ) -> Step {
        let Progress::Enroll(b) = self.progress.clone() else {
            return self.finish(fail("Login refused: protocol error (unexpected answer)"));
        };
        let (pending, at) = *b;
        match at {
            Enrolling::Offered => {
                if text.trim().is_empty() {
                    if pending.grace_left > 0 {
                        return self.enroll_skip(engine, &pending).await;
                    }
                    let first = pending.methods[0];
                    return self.enroll_begin(engine, pending, first).await;
                }
                match pending.pick(text) {
                    Some(m) => self.enroll_begin(engine, pending, m).await,
                    None => {
                        let step = pending.offer("Not one of the choices.");
                        self.progress = Progress::Enroll(Box::new((pending, Enrolling::Offered)));
                        step
                    }
                }
            }
            Enrolling::AwaitCode => {
                if text.trim().is_empty() {
                    if pending.grace_left > 0 {
                        return self.enroll_skip(engine, &pending).await;
                    }
                    self.progress = Progress::Enroll(Box::new((pending, Enrolling::ShowCode)));
                    return Step::Info {
                        text: "No code typed.".into(),
                    };
                }
                self.enroll_confirm(engine, pending, text).await
            }
            _ => self.finish(fail("Login refused: protocol error (unexpected answer)")),
        }
    }

    pub(super) async fn enroll_continue<S: Server>(&mut self, engine: &LoginEngine<S>) -> Step {
        let Progress::Enroll(b) = self.progress.clone() else {
            return self.finish(fail("Login refused: protocol error (unexpected continue)"));
        };
        let (pending, at) = *b;
        match at {
            // Continue on the offer: the first (recommended) method.
            Enrolling::Offered => {
                let first = pending.methods[0];
                self.enroll_begin(engine, pending, first).await
            }
            Enrolling::ShowCode => {
                let label = pending.code_label();
                self.progress = Progress::Enroll(Box::new((pending, Enrolling::AwaitCode)));
                Step::Prompt { label, echo: false }
            }
            Enrolling::ShowApp => {
                let left = pending.until.saturating_duration_since(Instant::now());
                let until = Instant::now() + APP_WAIT.min(left);
                self.progress =
                    Progress::Enroll(Box::new((pending, Enrolling::AwaitApp { until })));
                Step::Wait {
                    text: "Waiting for the token app to register…".into(),
                }
            }
            Enrolling::AwaitApp { until } => self.enroll_wait(engine, pending, until).await,
            Enrolling::ShowLink { reason } => self.finish(fail(reason)),
            Enrolling::AwaitCode => {
                self.finish(fail("Login refused: protocol error (unexpected continue)"))
            }
        }
    }

    async fn enroll_begin<S: Server>(
        &mut self,
        engine: &LoginEngine<S>,
        pending: Pending,
        method: EnrollMethod,
    ) -> Step {
        let user = self.req.user.clone();
        // What the person enrols shows in the login event (a link enrols nothing here).
        self.method = match method {
            EnrollMethod::Totp => Some(Method::Otp),
            EnrollMethod::App => Some(Method::Push),
            EnrollMethod::Link => self.method,
        };
        let reply = engine.server.enroll_begin(&pending.tx, &user, method).await;
        match engine.settle(&user, reply, |_| false).await {
            Outcome::Answer(EnrollBegun::Totp {
                otpauth_uri,
                secret,
                message,
            }) => {
                let payload = otpauth_uri.expose().to_string();
                let step = Step::Qr {
                    text: qr_text(&message, &payload),
                    payload,
                    copy: Some(format!("Secret: {}", grouped(secret.expose()))),
                };
                self.progress = Progress::Enroll(Box::new((pending, Enrolling::ShowCode)));
                step
            }
            Outcome::Answer(EnrollBegun::App { code, pin, message }) => {
                let link = format!(
                    "{}/app/register?code={}&pin={}",
                    engine.server.registration_base(),
                    code.expose(),
                    pin
                );
                let step = Step::Qr {
                    text: qr_text(&message, &link),
                    copy: Some(format!(
                        "Or on the device: latchkey-token register '{link}'"
                    )),
                    payload: link,
                };
                self.progress = Progress::Enroll(Box::new((pending, Enrolling::ShowApp)));
                step
            }
            Outcome::Answer(EnrollBegun::Link {
                url,
                message,
                reason,
            }) => {
                let link = url.expose().to_string();
                let step = Step::Qr {
                    text: qr_text(&message, &link),
                    copy: Some(format!("Or open: {link}")),
                    payload: link,
                };
                self.progress =
                    Progress::Enroll(Box::new((pending, Enrolling::ShowLink { reason })));
                step
            }
            Outcome::Answer(EnrollBegun::Deny { reason }) => self.finish(fail(reason)),
            Outcome::Unreachable(why) => self.unreachable(engine, &why).await,
            Outcome::Refused { code, message } => self.refused(&code, &message),
        }
    }

    async fn enroll_confirm<S: Server>(
        &mut self,
        engine: &LoginEngine<S>,
        pending: Pending,
        code: &str,
    ) -> Step {
        let user = self.req.user.clone();
        let reply = engine.server.enroll_confirm(&pending.tx, &user, code).await;
        match engine.settle(&user, reply, mfa_passed).await {
            Outcome::Answer(LoginStepResult::Success { message }) => {
                self.finish(Step::Success { message })
            }
            Outcome::Answer(LoginStepResult::Retry { message, .. }) => {
                self.progress = Progress::Enroll(Box::new((pending, Enrolling::ShowCode)));
                Step::Info { text: message }
            }
            Outcome::Answer(LoginStepResult::Deny { reason }) => self.finish(fail(reason)),
            Outcome::Answer(LoginStepResult::Pending { .. }) => self.finish(fail(
                "Login refused: protocol error (pending answer to a code)",
            )),
            Outcome::Unreachable(why) => self.unreachable(engine, &why).await,
            Outcome::Refused { code, message } => self.refused(&code, &message),
        }
    }

    async fn enroll_wait<S: Server>(
        &mut self,
        engine: &LoginEngine<S>,
        pending: Pending,
        until: Instant,
    ) -> Step {
        let user = self.req.user.clone();
        while Instant::now() < until {
            let reply = engine.server.enroll_wait(&pending.tx, &user).await;
            match engine.settle(&user, reply, |_| false).await {
                Outcome::Answer(EnrollWait::Pending { .. }) => continue,
                // The app is the user's token now: the login finishes by push, as any other.
                Outcome::Answer(EnrollWait::Registered { .. }) => {
                    return self.send_push(engine, pending.tx.clone()).await;
                }
                Outcome::Answer(EnrollWait::Deny { reason }) => return self.finish(fail(reason)),
                Outcome::Unreachable(why) => return self.unreachable(engine, &why).await,
                Outcome::Refused { code, message } => return self.refused(&code, &message),
            }
        }
        self.finish(fail(
            "Enrolment not finished: the token app did not register in time",
        ))
    }

    async fn enroll_skip<S: Server>(&mut self, engine: &LoginEngine<S>, pending: &Pending) -> Step {
        let user = self.req.user.clone();
        self.method = None;
        self.grace = true;
        let reply = engine.server.enroll_skip(&pending.tx, &user).await;
        // A login without a second factor: never a bundle.
        match engine.settle(&user, reply, |_| false).await {
            Outcome::Answer(LoginStepResult::Success { message }) => {
                self.finish(Step::Success { message })
            }
            Outcome::Answer(LoginStepResult::Deny { reason }) => self.finish(fail(reason)),
            Outcome::Answer(other) => self.finish(fail(format!(
                "Login refused: unexpected answer to a skipped enrolment ({other:?})"
            ))),
            Outcome::Unreachable(why) => self.unreachable(engine, &why).await,
            Outcome::Refused { code, message } => self.refused(&code, &message),
        }
    }
}
