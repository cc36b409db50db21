//! `latchkey admin add|list|remove|unlock`: the web console's admin accounts.

use crate::args::AdminCmd;
use crate::commands::{Ctx, Outcome, body};
use crate::error::{CliError, Result};
use crate::{output, qr};
use latchkey_client::Method;
use latchkey_proto::Secret;
use latchkey_proto::admin::{AdminCreate, AdminCreated, AdminInfo};
use latchkey_proto::routes;
use std::io::BufRead;
use zeroize::Zeroizing;

/// The server's rule, checked here first so a typo does not cost a round trip.
const MIN_PASSWORD: usize = 12;

pub(crate) async fn admin(ctx: &mut Ctx<'_>, cmd: &AdminCmd) -> Result<Outcome> {
    match cmd {
        AdminCmd::Add {
            name,
            password_stdin,
        } => {
            let password = if *password_stdin {
                from_stdin()?
            } else {
                from_terminal()?
            };
            if password.chars().count() < MIN_PASSWORD {
                return Err(CliError::Usage(format!(
                    "the password must be at least {MIN_PASSWORD} characters"
                )));
            }
            let req = AdminCreate {
                name: name.clone(),
                password: Secret::new(password.as_str()),
            };
            ctx.show(
                Method::POST,
                routes::ADMIN_ADMINS,
                body(&req)?,
                |a: &AdminCreated| {
                    Ok(format!(
                        "Added web console admin {}.\n\n{}\n\n{}\nSecret: {}\n\n\
                         Scan this with an authenticator app; the secret is shown only now. \
                         Sign in at https://SERVER/ui/signin with the name, the password and \
                         a code from the app.\n",
                        a.name,
                        qr::render_terminal(&a.otpauth_uri)?,
                        a.otpauth_uri,
                        a.secret,
                    ))
                },
            )
            .await?;
            Ok(Outcome::Success)
        }
        AdminCmd::List => {
            ctx.show(
                Method::GET,
                routes::ADMIN_ADMINS,
                None,
                |a: &Vec<AdminInfo>| Ok(admins(a)),
            )
            .await?;
            Ok(Outcome::Success)
        }
        AdminCmd::Remove { name } => {
            ctx.remove(
                &routes::admin_admin(name),
                format!("Removed web console admin {name}."),
            )
            .await
        }
        AdminCmd::Unlock { name } => {
            ctx.show(
                Method::POST,
                &routes::admin_admin_unlock(name),
                None,
                |a: &AdminInfo| {
                    Ok(format!(
                        "Cleared the lockout of web console admin {}.\n",
                        a.name
                    ))
                },
            )
            .await?;
            Ok(Outcome::Success)
        }
    }
}

fn admins(list: &[AdminInfo]) -> String {
    if list.is_empty() {
        return "No web console admins (add one with `latchkey admin add NAME`).\n".into();
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|a| {
            vec![
                a.name.clone(),
                output::time(a.created_at),
                a.last_signin_at
                    .map(output::time)
                    .unwrap_or_else(|| "never".into()),
                a.locked_until
                    .map(output::time)
                    .unwrap_or_else(|| "no".into()),
            ]
        })
        .collect();
    output::table(&["NAME", "CREATED", "LAST SIGN-IN", "LOCKED UNTIL"], &rows)
}

/// One line of standard input, without its line ending.
fn from_stdin() -> Result<Zeroizing<String>> {
    let mut line = Zeroizing::new(String::new());
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| CliError::Other(format!("cannot read the password: {e}")))?;
    Ok(Zeroizing::new(
        line.trim_end_matches(['\r', '\n']).to_string(),
    ))
}

/// Asked twice on the terminal with echo off.
fn from_terminal() -> Result<Zeroizing<String>> {
    let tty = latchkey_tty::terminal().map_err(|e| {
        CliError::Usage(format!(
            "no terminal to ask the password on ({e}): use --password-stdin"
        ))
    })?;
    let io = |e: std::io::Error| CliError::Other(format!("cannot read the password: {e}"));
    let first = latchkey_tty::ask_hidden(&tty, "Password for the new admin: ").map_err(io)?;
    let again = latchkey_tty::ask_hidden(&tty, "Same password again: ").map_err(io)?;
    if *first != *again {
        return Err(CliError::Usage("the two passwords differ".into()));
    }
    Ok(first)
}
