//! Who is calling: a joined machine (API key or registered client certificate), an admin,
//! or a token app. The transport hands over what the request carried; the engine says who
//! it is or why not.

use super::{Engine, EngineError, Forbidden, Result, Unauthorized};
use crate::store::MachineRow;
use latchkey_crypto::keys::hash_api_key;

/// What a request offered to prove it comes from a joined machine.
#[derive(Debug, Clone, Copy)]
pub enum Credential<'a> {
    /// `Authorization: Bearer <machine key>`.
    Key(&'a str),
    /// The lowercase hex SHA-256 of the TLS client certificate.
    Cert(&'a str),
}

impl Engine {
    /// The joined machine a credential belongs to. Its last-seen time is recorded (at most
    /// once a minute). An admin key is refused with its own answer, so the mistake is clear.
    pub async fn machine_caller(&self, cred: Credential<'_>) -> Result<MachineRow> {
        let machine = match cred {
            Credential::Key(key) => {
                let hash = hash_api_key(key);
                let found = match self.machine_cache.get(&hash) {
                    Some(m) => Some(m),
                    None => {
                        let found = self.store.machine_by_key_hash(&hash).await?;
                        if let Some(m) = &found {
                            self.machine_cache.put(&hash, m.clone());
                        }
                        found
                    }
                };
                match found {
                    Some(m) => m,
                    None if self.store.admin_key_exists(&hash).await? => {
                        return Err(EngineError::Forbidden(Forbidden::AdminKeyOnMachineRoute));
                    }
                    None => return Err(EngineError::Unauthorized(Unauthorized::MachineKey)),
                }
            }
            Credential::Cert(fp) => {
                let key = format!("cert:{fp}");
                match self.machine_cache.get(&key) {
                    Some(m) => m,
                    None => {
                        let m = self
                            .store
                            .machine_by_cert(fp)
                            .await?
                            .ok_or(EngineError::Unauthorized(Unauthorized::MachineCert))?;
                        self.machine_cache.put(&key, m.clone());
                        m
                    }
                }
            }
        };
        self.touch_machine(&machine.id).await;
        Ok(machine)
    }

    /// An administrator: the key must be an admin API key; a machine key is refused with its
    /// own answer.
    pub async fn admin_caller(&self, key: &str) -> Result<()> {
        let hash = hash_api_key(key);
        if self.store.admin_key_exists(&hash).await? {
            return Ok(());
        }
        if self.store.machine_by_key_hash(&hash).await?.is_some() {
            return Err(EngineError::Forbidden(Forbidden::MachineKeyOnAdminRoute));
        }
        Err(EngineError::Unauthorized(Unauthorized::AdminKey))
    }
}
