//! `latchkey token add-smartcard`: register a certificate, or create an enrollment code.

use crate::commands::{Ctx, body};
use crate::error::{CliError, Result};
use crate::output;
use latchkey_client::Method;
use latchkey_proto::admin::TokenInfo;
use latchkey_proto::routes;
use latchkey_proto::smartcard::{SmartcardAdd, SmartcardCodeCreate, SmartcardEnrollCode};
use std::path::Path;
use std::time::Duration;

impl Ctx<'_> {
    pub(crate) async fn add_smartcard(
        &mut self,
        user: &str,
        cert: Option<&Path>,
        label: &Option<String>,
        enroll: bool,
        expires: Duration,
    ) -> Result<()> {
        if enroll {
            let path = routes::admin_user_smartcards_enroll(user);
            let req = SmartcardCodeCreate {
                expires_in: Some(expires.as_secs().max(1)),
            };
            self.show(
                Method::POST,
                &path,
                body(&req)?,
                |c: &SmartcardEnrollCode| {
                    Ok(format!(
                        "Smartcard enrollment code for {} (one use, until {}):\n\n  {}\n\n\
                     On the machine with the card: latchkey-agent enroll-smartcard {} --code {}\n",
                        c.user,
                        output::time(c.expires_at),
                        c.code.expose(),
                        c.user,
                        c.code.expose()
                    ))
                },
            )
            .await?;
            return Ok(());
        }
        let Some(cert) = cert else {
            return Err(CliError::Usage(
                "--cert FILE.pem or --enroll is needed".into(),
            ));
        };
        let cert_pem = std::fs::read_to_string(cert)
            .map_err(|e| CliError::Other(format!("cannot read {}: {e}", cert.display())))?;
        let req = SmartcardAdd {
            cert_pem,
            label: label.clone(),
        };
        let path = routes::admin_user_smartcards(user);
        self.show(Method::POST, &path, body(&req)?, |t: &TokenInfo| {
            let sc = t.smartcard.as_ref();
            Ok(format!(
                "Smartcard token {} registered for {}: {} (valid until {}, sha256 {})\n",
                t.id,
                t.user,
                sc.map(|s| s.subject.as_str()).unwrap_or("-"),
                sc.map(|s| output::time(s.not_after)).unwrap_or_default(),
                sc.map(|s| s.fingerprint.as_str()).unwrap_or("-"),
            ))
        })
        .await?;
        Ok(())
    }
}
