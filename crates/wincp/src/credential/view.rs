//! The tile's changing parts: the QR code as the tile image (the offline challenge, an
//! enrolment), the "Enroll token" link and the enrolment's secret, shown and hidden as the
//! conversation goes; and the link's click, which accepts the agent's enrolment offer.

use super::Credential_Impl;
use crate::flow::{Outcome, Shown};
use crate::{fields, qr};
use latchkey_proto::Secret;
use windows::Win32::Graphics::Gdi::{DeleteObject, HBITMAP, HGDIOBJ};
use windows::Win32::UI::Shell::{
    CPFS_DISPLAY_IN_SELECTED_TILE, CPFS_HIDDEN, ICredentialProviderCredentialEvents,
};

impl Credential_Impl {
    /// Draws a QR code (`None`: the logo again) and hands it to LogonUI as the tile image.
    pub(super) fn show_qr(
        &self,
        events: &Option<ICredentialProviderCredentialEvents>,
        payload: Option<&Secret>,
    ) {
        self.state().qr_payload = payload.cloned();
        let drawn = match payload {
            Some(p) => qr_bitmap(p.expose()),
            None => qr::logo(),
        };
        let Ok(bmp) = drawn else {
            return;
        };
        if let Some(ev) = events {
            // SAFETY: a live interface from Advise; LogonUI copies the bitmap.
            let _ = unsafe { ev.SetFieldBitmap(&self.me(), fields::TILE, bmp) };
        }
        let old = self.state().qr.replace(bmp);
        if let Some(b) = old {
            // SAFETY: a bitmap this object created and no longer hands out.
            let _ = unsafe { DeleteObject(HGDIOBJ(b.0)) };
        }
    }

    /// Shows or hides a field whose visibility changes (the link, the secret).
    pub(super) fn notify_state(
        &self,
        events: &Option<ICredentialProviderCredentialEvents>,
        id: u32,
        shown: bool,
    ) {
        if let Some(ev) = events {
            let state = if shown {
                CPFS_DISPLAY_IN_SELECTED_TILE
            } else {
                CPFS_HIDDEN
            };
            // SAFETY: a live interface from Advise.
            let _ = unsafe { ev.SetFieldState(&self.me(), id, state) };
        }
    }

    /// The agent waits for a code: `text` on the info line; a new QR code (the offline
    /// challenge, an enrolment's) as the tile image with its text, or what is shown kept.
    pub(super) fn show_need_code(
        &self,
        events: &Option<ICredentialProviderCredentialEvents>,
        text: &str,
        qr: Option<Shown>,
    ) {
        if let Some(shown) = qr {
            self.show_qr(events, Some(&shown.payload));
            let copy = shown.copy.as_ref().map(|c| c.expose().to_string());
            self.state().secret = shown.copy;
            self.notify_string(events, fields::SECRET, copy.as_deref().unwrap_or_default());
            self.notify_state(events, fields::SECRET, copy.is_some());
        }
        let offered = std::mem::take(&mut self.state().enroll_offered);
        if offered {
            self.notify_state(events, fields::ENROLL, false);
        }
        self.state().info = text.to_string();
        self.notify_string(events, fields::INFO, text);
    }

    /// The enrolment offer: its text (and how to skip) on the info line, the link shown.
    /// Returns what the info line says.
    pub(super) fn show_offer(
        &self,
        events: &Option<ICredentialProviderCredentialEvents>,
        text: &str,
        skip: Option<&str>,
    ) -> String {
        let text = match skip {
            Some(hint) => format!("{text}\n{hint}"),
            None => text.to_string(),
        };
        {
            let mut st = self.state();
            st.info = text.clone();
            st.enroll_offered = true;
        }
        self.notify_string(events, fields::INFO, &text);
        self.notify_state(events, fields::ENROLL, true);
        text
    }

    /// The conversation ended (or was dropped): no link, no secret, the logo again.
    pub(super) fn end_view(&self) {
        let (events, offered, secret, qr) = {
            let mut st = self.state();
            (
                st.events.clone(),
                std::mem::take(&mut st.enroll_offered),
                st.secret.take().is_some(),
                st.qr_payload.is_some(),
            )
        };
        if offered {
            self.notify_state(&events, fields::ENROLL, false);
        }
        if secret {
            self.notify_string(&events, fields::SECRET, "");
            self.notify_state(&events, fields::SECRET, false);
        }
        if qr {
            self.show_qr(&events, None);
        }
    }

    /// "Enroll token": accepts the agent's offer; its QR code becomes the tile image and the
    /// code field confirms it (the next Submit). A link cannot hand LogonUI a credential,
    /// so anything but the QR ends the conversation here.
    pub(super) fn enrol_clicked(&self) {
        let (mut flow, events) = {
            let mut st = self.state();
            (std::mem::take(&mut st.flow), st.events.clone())
        };
        let mut show = |text: &str| {
            self.state().info = text.to_string();
            self.notify_string(&events, fields::INFO, text);
        };
        let outcome = flow.enrol(&mut show);
        let offer_gone = !flow.offers_enrolment();
        self.state().flow = flow;
        match outcome {
            // A stale click (no offer is waiting): nothing was sent.
            None => {}
            Some(Outcome::NeedCode { text, qr }) => self.show_need_code(&events, &text, qr),
            Some(Outcome::Enroll { text, skip }) => {
                self.show_offer(&events, &text, skip.as_deref());
            }
            Some(Outcome::Failure { reason }) => {
                self.end_view();
                self.state().info = reason.clone();
                self.notify_string(&events, fields::INFO, &reason);
            }
            Some(Outcome::Success { .. }) => {
                self.state().flow.reset();
                self.end_view();
                let text = "The latchkey agent answered out of turn: press Submit to start again";
                self.state().info = text.to_string();
                self.notify_string(&events, fields::INFO, text);
            }
        }
        if offer_gone && self.state().enroll_offered {
            self.state().enroll_offered = false;
            self.notify_state(&events, fields::ENROLL, false);
        }
    }
}

pub(super) fn qr_bitmap(payload: &str) -> Result<HBITMAP, String> {
    let rows = qr::modules(payload)?;
    let (px, side) = qr::pixels(&rows);
    qr::bitmap(&px, side)
}
