//! `latchkey-agent enroll-fido2 USER --code CODE`: registers the security key plugged into
//! this machine for USER, with the one-time code from `latchkey token add-fido2 USER`.
//!
//! Agent → server `register/start` (machine credential + code) → makeCredential on the key
//! → `register/finish` with the attestation object and client data; the server verifies
//! and stores the credential.

use super::ctap2::MakeCredential;
use super::{Fido2Error, Settings, UvPlan, open_all, uv_plan};
use crate::AgentError;
use crate::config::AgentConfig;
use crate::upstream::{Outcome, Upstream};
use latchkey_crypto::webauthn::{
    ORIGIN_AGENT, TYPE_CREATE, b64url, b64url_decode, client_data_json, sha256,
};
use latchkey_proto::fido2::{
    Fido2RegisterFinish, Fido2RegisterOptions, Fido2RegisterStart, Fido2Registered,
    UserVerification,
};
use latchkey_proto::{Secret, UserName};
use std::path::PathBuf;
use std::time::Instant;
use zeroize::Zeroizing;

#[derive(Debug, Clone)]
pub struct EnrollOptions {
    pub config_dir: PathBuf,
    pub user: UserName,
    pub code: Secret,
}

/// What enrollment needs from the person: a PIN when the key has one, and to be told to
/// touch the key.
pub trait EnrollUi: Send + 'static {
    fn ask_pin(&mut self) -> crate::Result<Zeroizing<String>>;
    fn touch(&mut self);
}

/// Prompts on the terminal (PIN with echo off).
pub struct TerminalUi;

impl EnrollUi for TerminalUi {
    fn ask_pin(&mut self) -> crate::Result<Zeroizing<String>> {
        use std::io::{BufRead, Write};
        eprint!("Security key PIN: ");
        let _ = std::io::stderr().flush();
        let mut line = Zeroizing::new(String::new());
        {
            let _echo = crate::sys::EchoOff::new(0);
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .map_err(|e| AgentError::Local(format!("terminal: {e}")))?;
        }
        eprintln!();
        Ok(Zeroizing::new(
            line.trim_end_matches(['\r', '\n']).to_string(),
        ))
    }

    fn touch(&mut self) {
        eprintln!("Touch your security key…");
    }
}

fn outcome<T>(o: Outcome<T>) -> crate::Result<T> {
    match o {
        Outcome::Answer(v) => Ok(v),
        Outcome::Unreachable(why) => Err(AgentError::Server(format!(
            "no latchkey server answered: {why}"
        ))),
        Outcome::Refused { message, .. } => Err(AgentError::Server(message)),
    }
}

/// Runs the registration ceremony with the first available key.
pub async fn enroll(opts: &EnrollOptions, ui: impl EnrollUi) -> crate::Result<Fido2Registered> {
    let cfg = AgentConfig::load(&opts.config_dir)?;
    let up = Upstream::new(&cfg, &opts.config_dir)?;
    let settings = Settings::from_config(&cfg);
    let options = outcome(
        up.fido2_register_start(&Fido2RegisterStart {
            user: opts.user.clone(),
            code: opts.code.clone(),
        })
        .await,
    )?;
    let (attestation, client_data) = tokio::task::spawn_blocking(move || {
        make_credential(&settings, &options, ui)
            .map_err(|e| AgentError::Local(e.user_message(settings.timeout)))
    })
    .await
    .map_err(|e| AgentError::Local(e.to_string()))??;
    outcome(
        up.fido2_register_finish(&Fido2RegisterFinish {
            user: opts.user.clone(),
            code: opts.code.clone(),
            attestation_object: b64url(&attestation),
            client_data_json: b64url(client_data.as_bytes()),
        })
        .await,
    )
}

fn bad_options(what: &str) -> Fido2Error {
    Fido2Error::Protocol(format!("the server's registration options: {what}"))
}

/// makeCredential on the first key: (attestation object, client data JSON).
pub fn make_credential(
    settings: &Settings,
    o: &Fido2RegisterOptions,
    mut ui: impl EnrollUi,
) -> Result<(Vec<u8>, String), Fido2Error> {
    let challenge = b64url_decode(&o.challenge).ok_or_else(|| bad_options("challenge"))?;
    let user_id = b64url_decode(&o.user_id).ok_or_else(|| bad_options("user id"))?;
    let exclude = o
        .exclude_credentials
        .iter()
        .map(|c| b64url_decode(c).ok_or_else(|| bad_options("credential id")))
        .collect::<Result<Vec<_>, _>>()?;
    let deadline = Instant::now() + settings.timeout;
    let mut keys = open_all(settings);
    let Some(key) = keys.first_mut() else {
        return Err(Fido2Error::NoDevice);
    };
    let info = key.get_info(deadline)?;
    let required = o.user_verification == UserVerification::Required;
    let preferred = o.user_verification == UserVerification::Preferred;
    // A key with a PIN set refuses makeCredential without it (CTAP2 PIN_REQUIRED).
    let plan = if info.client_pin == Some(true) && info.uv != Some(true) {
        UvPlan::NeedPin
    } else {
        uv_plan(&info, required, preferred)
    };
    let token = match plan {
        UvPlan::NeedPin => {
            let pin = ui.ask_pin().map_err(|e| Fido2Error::Io(e.to_string()))?;
            Some(key.pin_token(&pin, deadline)?)
        }
        UvPlan::Impossible => {
            return Err(Fido2Error::Status(super::ctap2::status::PIN_NOT_SET));
        }
        _ => None,
    };
    let client_data = client_data_json(TYPE_CREATE, &challenge, ORIGIN_AGENT);
    let hash = sha256(client_data.as_bytes());
    ui.touch();
    let att = key.make_credential(
        &MakeCredential {
            client_data_hash: &hash,
            rp_id: &o.rp_id,
            rp_name: &o.rp_name,
            user_id: &user_id,
            user_name: &o.user_name,
            user_display_name: &o.user_display_name,
            algorithms: &o.algorithms,
            exclude: &exclude,
            uv: plan == UvPlan::BuiltIn,
        },
        token.as_deref().map(|t| &t[..]),
        deadline,
        &mut || {},
    )?;
    Ok((att, client_data))
}
