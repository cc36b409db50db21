//! `latchkey-agent enroll-smartcard USER --code CODE`: read the certificate from the card and
//! register it for USER with the one-time code an admin created
//! (`latchkey token add-smartcard USER --enroll`). The machine's own credential is not enough:
//! a joined machine could otherwise attach any certificate to any account.

use super::{choose_for_enroll, list_certificates};
use crate::AgentError;
use crate::config::AgentConfig;
use crate::upstream::{Outcome, Upstream};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use latchkey_proto::admin::TokenInfo;
use latchkey_proto::smartcard::SmartcardEnroll;
use latchkey_proto::{Secret, UserName};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, clap::Args)]
pub struct EnrollOptions {
    pub user: UserName,
    /// The one-time code from `latchkey token add-smartcard USER --enroll`.
    #[arg(long, env = "LATCHKEY_ENROLL_CODE")]
    pub code: Secret,
    /// PKCS#11 module [default: smartcard_module from agent.toml, else OpenSC's].
    #[arg(long, value_name = "PATH.so")]
    pub module: Option<PathBuf>,
    /// Only look at this PKCS#11 slot id.
    #[arg(long)]
    pub slot: Option<u64>,
    /// The certificate's CKA_ID in hex, when the card holds several.
    #[arg(long, value_name = "HEX")]
    pub id: Option<String>,
    #[arg(long)]
    pub label: Option<String>,
}

pub async fn enroll(config_dir: &Path, o: &EnrollOptions) -> crate::Result<TokenInfo> {
    let cfg = AgentConfig::load(config_dir)?;
    let module = o
        .module
        .clone()
        .or_else(|| cfg.smartcard_module())
        .ok_or_else(|| {
            AgentError::Config(
                "no PKCS#11 module: pass --module PATH.so or set smartcard_module in agent.toml"
                    .into(),
            )
        })?;
    let (slot, id) = (o.slot, o.id.clone());
    let card = tokio::task::spawn_blocking(move || {
        list_certificates(&module, slot).and_then(|c| choose_for_enroll(c, id.as_deref()))
    })
    .await
    .map_err(|e| AgentError::Local(e.to_string()))?
    .map_err(|e| AgentError::Local(e.to_string()))?;
    let up = Upstream::new(&cfg, config_dir)?;
    let req = SmartcardEnroll {
        user: o.user.clone(),
        code: Secret::from(o.code.expose().trim()),
        cert: B64.encode(&card.cert.der),
        label: o.label.clone(),
    };
    match up.smartcard_enroll(&req).await {
        Outcome::Answer(t) => Ok(t),
        Outcome::Unreachable(why) => {
            Err(AgentError::Server(format!("no MFA server answered: {why}")))
        }
        Outcome::Refused { message, .. } => Err(AgentError::Server(message)),
    }
}
