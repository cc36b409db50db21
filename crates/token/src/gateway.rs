//! How push requests reach the app, apart from how they are shown and answered.
//!
//! latchkey servers are often on networks no third-party push service reaches, so the one
//! implementation here is a long poll against the server ([`LongPoll`]). A phone build would
//! add an FCM or APNs gateway: the notification wakes the app, whose `next` then fetches the
//! waiting requests with `GET /v1/apps/pending?wait=0`. Answers always go back to the server
//! over HTTPS, signed ([`crate::watch::Responder`]), whatever the gateway.

use crate::api::{AppApi, LONG_POLL_SECS};
use crate::error::Result;
use latchkey_proto::app::PushRequest;
use std::future::Future;

pub trait PushGateway {
    /// Waits until at least one request is waiting, or until the gateway's own bound passes,
    /// and returns every request waiting now (empty when none arrived in time). Transport
    /// failures are errors for which [`crate::Error::is_transient`] is true; the caller backs
    /// off and calls again.
    fn next(&mut self) -> impl Future<Output = Result<Vec<PushRequest>>> + Send;
}

/// `GET /v1/apps/pending?wait=25`, called again as soon as it returns: the server answers the
/// moment a login asks, so an approval request shows without polling delay.
#[derive(Debug, Clone)]
pub struct LongPoll {
    api: AppApi,
    wait_secs: u64,
}

impl LongPoll {
    pub fn new(api: AppApi) -> Self {
        LongPoll {
            api,
            wait_secs: LONG_POLL_SECS,
        }
    }
}

impl PushGateway for LongPoll {
    fn next(&mut self) -> impl Future<Output = Result<Vec<PushRequest>>> + Send {
        self.api.pending(self.wait_secs)
    }
}
