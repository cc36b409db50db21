//! Windows: the password typed on the tile is checked with LogonUserW, as the system,
//! before the agent lets the server offer enrolment.

use super::Verdict;
use latchkey_proto::{Secret, UserName};

pub async fn check(user: &UserName, _domain: Option<&str>, _password: Secret) -> Verdict {
    tracing::error!(%user, "inline enrolment: the password check is not built yet");
    Verdict::Refuse("Inline enrolment is not available on this machine yet".into())
}
