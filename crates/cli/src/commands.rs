//! One function per command: build the request, call the admin API, print the answer (as a
//! table for people, or the server's JSON with `--json`).

use latchkey_client::{Bytes, Client, Method, encode_path_segment as seg};
use latchkey_proto::TokenKind;
use latchkey_proto::admin::{
    AuditEntry, JoinTokenCreate, JoinTokenCreated, Machine, OtpTokenCreate, Policy, PolicyUpdate,
    TokenEnrolled, TokenInfo, TokenResync, User, UserCreate, UserUpdate, VerifyRequest,
    VerifyResult,
};
use latchkey_proto::routes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::io::Write;
use std::path::Path;
use std::time::SystemTime;

use crate::args::{AuditArgs, Cli, Command, MachineCmd, OtpOpts, PolicyCmd, TokenCmd, UserCmd};
use crate::error::{CliError, Result};
use crate::{conn, output, qr};

/// How a command that ran to the end went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// The command worked but the answer is a "no" (a rejected code): exit status 1.
    Refused,
}

const SCAN_HINT: &str = "Scan this with an authenticator app (Google/Microsoft Authenticator, \
                         Aegis, FreeOTP). The secret is shown only now.";

/// Runs one parsed command line. `data_dir` is where `admin.token` / `tls.crt` are looked up
/// when no option names them (normally `./latchkey-data`).
pub async fn execute(cli: &Cli, data_dir: &Path, out: &mut (dyn Write + Send)) -> Result<Outcome> {
    let client = Client::new(conn::client_config(&cli.global, data_dir)?)?;
    let mut ctx = Ctx {
        client,
        json: cli.global.json,
        out,
    };
    match &cli.command {
        Command::User(cmd) => ctx.user(cmd).await,
        Command::Token(cmd) => ctx.token(cmd).await,
        Command::Policy(cmd) => ctx.policy(cmd).await,
        Command::Machine(cmd) => ctx.machine(cmd).await,
        Command::Audit(args) => ctx.audit(args).await,
        Command::Events(args) => crate::events::events(&ctx.client, ctx.json, ctx.out, args).await,
        Command::Sessions(args) => {
            crate::events::sessions(&ctx.client, ctx.json, ctx.out, args).await
        }
        Command::Admin(cmd) => crate::admins::admin(&mut ctx, cmd).await,
    }
}

pub(crate) struct Ctx<'a> {
    client: Client,
    json: bool,
    out: &'a mut (dyn Write + Send),
}

pub(crate) fn body<B: Serialize>(b: &B) -> Result<Option<serde_json::Value>> {
    serde_json::to_value(b)
        .map(Some)
        .map_err(|e| CliError::Other(format!("cannot encode the request: {e}")))
}

pub(crate) fn user_path(name: &str) -> String {
    routes::admin_user(name)
}

impl Ctx<'_> {
    async fn fetch(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<Bytes> {
        Ok(self.client.request(method, path, body).await?.1)
    }

    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T> {
        serde_json::from_slice(bytes).map_err(|e| {
            CliError::Client(latchkey_client::Error::Protocol {
                server: self.client.base_url().to_string(),
                reason: format!("invalid JSON answer: {e}"),
            })
        })
    }

    fn print(&mut self, text: &str) -> Result<()> {
        self.out.write_all(text.as_bytes())?;
        Ok(())
    }

    fn print_json(&mut self, bytes: &[u8]) -> Result<()> {
        self.out.write_all(bytes)?;
        if !bytes.ends_with(b"\n") {
            self.out.write_all(b"\n")?;
        }
        Ok(())
    }

    /// Calls the API and prints the answer: raw JSON with `--json`, else `render(answer)`.
    pub(crate) async fn show<T: DeserializeOwned>(
        &mut self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
        render: impl FnOnce(&T) -> Result<String>,
    ) -> Result<T> {
        let bytes = self.fetch(method, path, body).await?;
        let value: T = self.decode(&bytes)?;
        if self.json {
            self.print_json(&bytes)?;
        } else {
            let text = render(&value)?;
            self.print(&text)?;
        }
        Ok(value)
    }

    /// DELETE, then a confirmation line for people (nothing with `--json`: 204 has no body).
    pub(crate) async fn remove(&mut self, path: &str, done: String) -> Result<Outcome> {
        self.client.delete(path).await?;
        if !self.json {
            self.print(&format!("{done}\n"))?;
        }
        Ok(Outcome::Success)
    }

    async fn user(&mut self, cmd: &UserCmd) -> Result<Outcome> {
        match cmd {
            UserCmd::Add {
                name,
                display_name,
                groups,
            } => {
                let req = UserCreate {
                    name: name.clone(),
                    display_name: display_name.clone(),
                    groups: groups.clone(),
                };
                self.show(
                    Method::POST,
                    routes::ADMIN_USERS,
                    body(&req)?,
                    |u: &User| Ok(format!("Created user {}.\n{}", u.name, output::user(u))),
                )
                .await?;
            }
            UserCmd::List => {
                self.show(Method::GET, routes::ADMIN_USERS, None, |u: &Vec<User>| {
                    Ok(output::users(u))
                })
                .await?;
            }
            UserCmd::Show { name } => {
                let user = self.fetch(Method::GET, &user_path(name), None).await?;
                let tokens = self
                    .fetch(Method::GET, &routes::admin_user_tokens(name), None)
                    .await?;
                if self.json {
                    // Two answers, printed as one object so scripts read one document.
                    let user: serde_json::Value = self.decode(&user)?;
                    let tokens: serde_json::Value = self.decode(&tokens)?;
                    let both = serde_json::json!({ "user": user, "tokens": tokens });
                    self.print_json(both.to_string().as_bytes())?;
                } else {
                    let user: User = self.decode(&user)?;
                    let tokens: Vec<TokenInfo> = self.decode(&tokens)?;
                    let text = format!("{}\n{}", output::user(&user), output::tokens(&tokens));
                    self.print(&text)?;
                }
            }
            UserCmd::Disable { name } | UserCmd::Enable { name } => {
                let enabled = matches!(cmd, UserCmd::Enable { .. });
                let req = UserUpdate {
                    enabled: Some(enabled),
                    ..UserUpdate::default()
                };
                self.show(Method::PATCH, &user_path(name), body(&req)?, |u: &User| {
                    let state = if u.enabled { "enabled" } else { "disabled" };
                    Ok(format!("User {} is {state}.\n", u.name))
                })
                .await?;
            }
            UserCmd::Remove { name } => {
                return self
                    .remove(&user_path(name), format!("Removed user {name}."))
                    .await;
            }
            UserCmd::Invite { name, expires } => {
                let req = latchkey_proto::admin::UserInviteCreate {
                    expires_in: Some(expires.as_secs().max(1)),
                };
                let path = routes::admin_user_invite(name);
                self.show(Method::POST, &path, body(&req)?, |i: &latchkey_proto::admin::UserInvited| {
                    // Shown to the admin once: the one place the link is meant to be read.
                    let link = i.url.expose();
                    Ok(format!(
                        "Self-service link for {} (one use, until {}):\n\n{}\n\n{link}\n\nThe user opens it in a browser (on a phone: scan the QR code) to enrol their own tokens.\n",
                        i.user,
                        output::time(i.expires_at),
                        qr::render_terminal(link)?,
                    ))
                })
                .await?;
            }
        }
        Ok(Outcome::Success)
    }

    async fn token(&mut self, cmd: &TokenCmd) -> Result<Outcome> {
        match cmd {
            TokenCmd::AddTotp { user, otp, period } => {
                self.enrol(user, TokenKind::Totp, otp, *period).await?;
            }
            TokenCmd::AddHotp { user, otp } => {
                self.enrol(user, TokenKind::Hotp, otp, None).await?;
            }
            TokenCmd::AddApp { user, expires } => {
                let path = routes::admin_user_apps(user);
                let req = latchkey_proto::app::AppLinkCreate {
                    expires_in: Some(expires.as_secs().max(1)),
                };
                let base = self.client.base_url().trim_end_matches('/').to_string();
                self.show(Method::POST, &path, body(&req)?, |l: &latchkey_proto::app::AppLinkCreated| {
                    // Shown to the admin once: the one place the code is meant to be read.
                    let link = format!("{base}/app/register?code={}&pin={}", l.code.expose(), l.tls_fingerprint);
                    Ok(format!(
                        "Registration link for {user} (one use, until {}):\n\n{}\n\n{link}\n\nOn a phone: scan the QR code or open the link (the latchkey web app installs from it).\nWith the command-line app: latchkey-token register '{link}'\n",
                        output::time(l.expires_at),
                        qr::render_terminal(&link)?,
                    ))
                })
                .await?;
            }
            TokenCmd::AddFido2 {
                user,
                label,
                expires,
            } => {
                let path = routes::admin_user_fido2(user);
                let req = latchkey_proto::fido2::Fido2RegistrationCreate {
                    label: label.clone(),
                    expires_in: Some(expires.as_secs().max(1)),
                };
                self.show(Method::POST, &path, body(&req)?, |r: &latchkey_proto::fido2::Fido2RegistrationCreated| {
                    Ok(format!(
                        "Security key registration for {user} (one use, until {}, relying party {:?}):\n\n  {}\n\nOn the machine with the key plugged in, as root:\n  latchkey-agent enroll-fido2 {user} --code {}\n",
                        output::time(r.expires_at),
                        r.rp_id,
                        r.code.expose(),
                        r.code.expose(),
                    ))
                })
                .await?;
            }
            TokenCmd::AddSmartcard {
                user,
                cert,
                label,
                enroll,
                expires,
            } => {
                self.add_smartcard(user, cert.as_deref(), label, *enroll, *expires)
                    .await?;
            }
            TokenCmd::List { user } => {
                let path = routes::admin_user_tokens(user);
                self.show(Method::GET, &path, None, |t: &Vec<TokenInfo>| {
                    Ok(output::tokens(t))
                })
                .await?;
            }
            TokenCmd::Remove { id } => {
                let path = routes::admin_token(id);
                return self.remove(&path, format!("Removed token {id}.")).await;
            }
            TokenCmd::Verify { user, code } => {
                let path = routes::admin_user_verify(user);
                let req = VerifyRequest { code: code.clone() };
                let result = self
                    .show(Method::POST, &path, body(&req)?, |r: &VerifyResult| {
                        Ok(format!("{}\n", r.message))
                    })
                    .await?;
                if !result.ok {
                    return Ok(Outcome::Refused);
                }
            }
            TokenCmd::Resync { id, code1, code2 } => {
                let path = routes::admin_token_resync(id);
                let req = TokenResync {
                    code1: code1.clone(),
                    code2: code2.clone(),
                };
                let result = self
                    .show(Method::POST, &path, body(&req)?, |r: &VerifyResult| {
                        Ok(format!("{}\n", r.message))
                    })
                    .await?;
                if !result.ok {
                    return Ok(Outcome::Refused);
                }
            }
        }
        Ok(Outcome::Success)
    }

    async fn enrol(
        &mut self,
        user: &str,
        kind: TokenKind,
        otp: &OtpOpts,
        period: Option<u32>,
    ) -> Result<()> {
        let secret = otp.secret_file.as_deref().map(read_secret).transpose()?;
        let imported = secret.is_some();
        let req = OtpTokenCreate {
            kind,
            algorithm: otp.algorithm,
            digits: otp.digits,
            period,
            label: otp.label.clone(),
            secret,
        };
        let path = routes::admin_user_tokens(user);
        self.show(Method::POST, &path, body(&req)?, |e: &TokenEnrolled| {
            let t = &e.token;
            let period = t.period.map(|p| format!(", {p} s")).unwrap_or_default();
            if imported || e.otpauth_uri.is_empty() {
                // The seed already lives in the existing token: nothing to scan.
                return Ok(format!(
                    "Imported {} token {} for {} ({}, {} digits{period}).\n",
                    t.kind, t.id, t.user, t.algorithm, t.digits
                ));
            }
            Ok(format!(
                "Added {} token {} for {} ({}, {} digits{period}).\n\n{}\n\n{}\n\n{SCAN_HINT}\n",
                t.kind,
                t.id,
                t.user,
                t.algorithm,
                t.digits,
                qr::render_terminal(&e.otpauth_uri)?,
                e.otpauth_uri,
            ))
        })
        .await?;
        Ok(())
    }

    async fn policy(&mut self, cmd: &PolicyCmd) -> Result<Outcome> {
        let path = routes::admin_policy;
        match cmd {
            PolicyCmd::List => {
                self.show(
                    Method::GET,
                    routes::ADMIN_POLICIES,
                    None,
                    |p: &Vec<Policy>| Ok(output::policies(p)),
                )
                .await?;
            }
            PolicyCmd::Show { client_id } => {
                self.show(Method::GET, &path(client_id), None, |p: &Policy| {
                    Ok(output::policy(p))
                })
                .await?;
            }
            PolicyCmd::Set {
                client_id,
                settings,
            } => {
                let req = PolicyUpdate {
                    settings: settings.iter().cloned().collect(),
                };
                self.show(
                    Method::PATCH,
                    &path(client_id),
                    body(&req)?,
                    |p: &Policy| {
                        Ok(format!(
                            "Updated policy {}.\n{}",
                            p.client_id,
                            output::policy(p)
                        ))
                    },
                )
                .await?;
            }
            PolicyCmd::Remove { client_id } => {
                return self
                    .remove(&path(client_id), format!("Removed policy {client_id}."))
                    .await;
            }
        }
        Ok(Outcome::Success)
    }

    async fn machine(&mut self, cmd: &MachineCmd) -> Result<Outcome> {
        match cmd {
            MachineCmd::JoinToken { expires, note } => {
                let req = JoinTokenCreate {
                    expires_in: expires.as_secs(),
                    note: note.clone(),
                };
                let server = self.client.base_url().to_string();
                self.show(
                    Method::POST,
                    routes::ADMIN_JOIN_TOKENS,
                    body(&req)?,
                    |j: &JoinTokenCreated| {
                        Ok(format!(
                            "Join token: {}\nExpires:    {}\n\nUse it once on the machine:\n  \
                             latchkey-agent join --server {server} --join-token {}\n",
                            j.join_token,
                            output::time(j.expires_at),
                            j.join_token,
                        ))
                    },
                )
                .await?;
            }
            MachineCmd::List => {
                self.show(
                    Method::GET,
                    routes::ADMIN_MACHINES,
                    None,
                    |m: &Vec<Machine>| Ok(output::machines(m)),
                )
                .await?;
            }
            MachineCmd::Remove { id } => {
                let path = routes::admin_machine(id);
                return self.remove(&path, format!("Removed machine {id}.")).await;
            }
            MachineCmd::ForgetOffline { machine, user } => {
                let path = routes::admin_machine_forget_offline(machine);
                let req = latchkey_proto::offline::ForgetOffline { user: user.clone() };
                self.show(
                    Method::POST,
                    &path,
                    body(&req)?,
                    |q: &latchkey_proto::offline::ForgetOfflineQueued| {
                        Ok(format!(
                            "Machine {} will wipe the offline login of {} at its next contact with the server.",
                            q.machine_id, q.user
                        ))
                    },
                )
                .await?;
            }
        }
        Ok(Outcome::Success)
    }

    async fn audit(&mut self, args: &AuditArgs) -> Result<Outcome> {
        let since = args
            .since
            .map(|s| s.to_unix(SystemTime::now()))
            .transpose()
            .map_err(CliError::Usage)?;
        let path = audit_path(args.user.as_deref(), since, args.limit);
        self.show(Method::GET, &path, None, |e: &Vec<AuditEntry>| {
            Ok(output::audit(e))
        })
        .await?;
        Ok(Outcome::Success)
    }
}

/// Reads a base32 seed from a file or `-` (standard input); spaces and dashes (as printed on
/// seed sheets) are the server's to accept or refuse, only surrounding whitespace is trimmed.
fn read_secret(path: &Path) -> Result<String> {
    let text = if path == Path::new("-") {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(path)
    }
    .map_err(|e| CliError::Other(format!("cannot read the seed from {}: {e}", path.display())))?;
    let seed = text.trim();
    if seed.is_empty() {
        return Err(CliError::Usage(format!("{} holds no seed", path.display())));
    }
    Ok(seed.to_string())
}

/// `/v1/admin/audit` with the query parameters that are set.
fn audit_path(user: Option<&str>, since: Option<i64>, limit: Option<u32>) -> String {
    let mut query = Vec::new();
    if let Some(u) = user {
        query.push(format!("user={}", seg(u)));
    }
    if let Some(s) = since {
        query.push(format!("since={s}"));
    }
    if let Some(l) = limit {
        query.push(format!("limit={l}"));
    }
    if query.is_empty() {
        routes::ADMIN_AUDIT.into()
    } else {
        format!("{}?{}", routes::ADMIN_AUDIT, query.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_query_has_only_the_given_parameters() {
        assert_eq!(audit_path(None, None, None), "/v1/admin/audit");
        assert_eq!(
            audit_path(Some("bob smith"), Some(1_700_000_000), Some(20)),
            "/v1/admin/audit?user=bob%20smith&since=1700000000&limit=20"
        );
        assert_eq!(audit_path(None, None, Some(5)), "/v1/admin/audit?limit=5");
    }

    #[test]
    fn names_cannot_escape_their_path_segment() {
        assert_eq!(user_path("../admin"), "/v1/admin/users/..%2Fadmin");
    }
}
