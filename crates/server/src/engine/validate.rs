//! Checks on what machines and admins send: user names, client ids, free-text fields. A
//! failure is a clear 400 (`EngineError::Invalid`), never a decision.

use super::{EngineError, Result};
use crate::policy;

pub fn validate_user_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 256 {
        return Err(EngineError::Invalid(
            "user must be 1 to 256 characters".into(),
        ));
    }
    if name
        .chars()
        .any(|c| c.is_control() || c == '/' || c.is_whitespace())
    {
        return Err(EngineError::Invalid(
            "user contains a space, '/' or a control character".into(),
        ));
    }
    Ok(())
}

pub fn validate_client_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && (id == policy::FALLBACK
            || id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b)));
    if !ok {
        return Err(EngineError::Invalid(
            "client_id must be 1 to 64 characters of letters, digits, '.', '_', ':' or '-'".into(),
        ));
    }
    Ok(())
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
