//! Inline enrolment's `link` method (docs/enrollment.md): instead of enrolling at the prompt,
//! the person gets a one-time invite to the self-service portal, valid as long as the pending
//! enrolment was, to open on another device. The pending enrolment ends (one pending per
//! user holds while it was open); this login ends refused, and the next one uses whatever
//! was enrolled on the page. Grace logins are spent only by a skip at the offer, as before.

use super::messages::Said;
use super::{Actor, Engine, Result};
use crate::store::EnrolRow;
use latchkey_proto::enroll::EnrollBegun;

impl Engine {
    pub(super) async fn enrol_link(
        &self,
        machine_id: &str,
        row: &EnrolRow,
        host: Option<&str>,
        now: i64,
    ) -> Result<EnrollBegun> {
        let gone = || {
            Ok(EnrollBegun::Deny {
                reason: Said::EnrolGone.text(),
            })
        };
        // Ends the pending enrolment once: of two choices at once, one gets the link.
        if !self.store.enrol_finish(&row.tx_id, None, now).await? {
            return gone();
        }
        self.store.tx_finish(&row.tx_id).await?;
        let ttl = (row.expires_at - now).max(60) as u64;
        let actor = Actor::Machine(machine_id.to_string());
        let invite = self.invite_issue(&actor, &row.user_name, ttl, host).await?;
        self.audit(
            &actor,
            "enroll.done",
            Some(&row.user_name),
            Some(&row.client_id),
            "ok",
            format!("invite link to the self-service portal shown at login, valid {ttl} s"),
        )
        .await;
        Ok(EnrollBegun::Link {
            url: invite.url,
            message: Said::EnrolScanLink.text(),
            reason: Said::EnrolLinkShown.text(),
        })
    }
}
