//! Checks on what machines and admins send: user names, client ids, free-text fields. A
//! failure is a clear 400 (`EngineError::Invalid`), never a decision. Identifiers use the
//! validators of `latchkey_proto::ids`, so the server and the PAM module agree.

use super::{EngineError, Result};
use latchkey_proto::{ClientId, InvalidId, UserName};

/// [`UserName`]'s rule: the one validator PAM, the agent and the server share.
pub fn validate_user_name(name: &str) -> Result<()> {
    UserName::parse(name).map(drop).map_err(invalid)
}

/// [`ClientId`]'s rule, which takes `*` (`policy::FALLBACK`) as the fallback policy.
pub fn validate_client_id(id: &str) -> Result<()> {
    ClientId::parse(id).map(drop).map_err(invalid)
}

fn invalid(e: InvalidId) -> EngineError {
    EngineError::Invalid(e.message)
}

pub(super) fn validate_opt(field: &str, v: &Option<String>) -> Result<()> {
    if let Some(v) = v
        && (v.len() > 256 || v.chars().any(char::is_control))
    {
        return Err(EngineError::Invalid(format!(
            "{field} must be at most 256 printable characters"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_policy_is_a_valid_client_id() {
        for id in crate::policy::BUILT_IN {
            assert!(validate_client_id(id).is_ok(), "{id}");
        }
        assert!(validate_client_id(crate::policy::FALLBACK).is_ok());
        assert!(validate_client_id("a:b").is_err());
    }
}
