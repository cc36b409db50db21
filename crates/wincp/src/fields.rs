//! The tile's fields. The index in [`FIELDS`] is the field id LogonUI uses.

use windows::Win32::UI::Shell::{
    CPFIS_FOCUSED, CPFIS_NONE, CPFS_DISPLAY_IN_BOTH, CPFS_DISPLAY_IN_SELECTED_TILE, CPFS_HIDDEN,
    CPFT_COMMAND_LINK, CPFT_EDIT_TEXT, CPFT_LARGE_TEXT, CPFT_PASSWORD_TEXT, CPFT_SMALL_TEXT,
    CPFT_SUBMIT_BUTTON, CPFT_TILE_IMAGE, CREDENTIAL_PROVIDER_FIELD_INTERACTIVE_STATE,
    CREDENTIAL_PROVIDER_FIELD_STATE, CREDENTIAL_PROVIDER_FIELD_TYPE,
};

/// The logo, replaced by a QR code when the agent sends one (the offline challenge, or the
/// authenticator app's enrolment).
pub const TILE: u32 = 0;
pub const TITLE: u32 = 1;
/// One line from the agent (wrong code, push sent, offline challenge…).
pub const INFO: u32 = 2;
pub const USER: u32 = 3;
pub const PASSWORD: u32 = 4;
/// The one-time code; left empty, Submit asks the agent for a push when the policy offers one.
pub const CODE: u32 = 5;
/// "Send a push to my phone": empties the code field and submits.
pub const PUSH: u32 = 6;
/// "Enroll token": hidden unless the agent offers inline enrolment (a user without a token
/// whose password the agent verified); clicking it starts the enrolment.
pub const ENROLL: u32 = 7;
/// What to copy besides the enrolment QR code (the secret, grouped for typing); hidden
/// unless that QR code is shown.
pub const SECRET: u32 = 8;
pub const SUBMIT: u32 = 9;
pub const COUNT: u32 = 10;

pub struct Field {
    pub kind: CREDENTIAL_PROVIDER_FIELD_TYPE,
    pub label: &'static str,
    pub state: CREDENTIAL_PROVIDER_FIELD_STATE,
    pub interactive: CREDENTIAL_PROVIDER_FIELD_INTERACTIVE_STATE,
}

pub const FIELDS: [Field; COUNT as usize] = [
    Field {
        kind: CPFT_TILE_IMAGE,
        label: "latchkey",
        state: CPFS_DISPLAY_IN_BOTH,
        interactive: CPFIS_NONE,
    },
    Field {
        kind: CPFT_LARGE_TEXT,
        label: "latchkey",
        state: CPFS_DISPLAY_IN_BOTH,
        interactive: CPFIS_NONE,
    },
    Field {
        kind: CPFT_SMALL_TEXT,
        label: "Info",
        state: CPFS_DISPLAY_IN_SELECTED_TILE,
        interactive: CPFIS_NONE,
    },
    Field {
        kind: CPFT_EDIT_TEXT,
        label: "User name",
        state: CPFS_DISPLAY_IN_SELECTED_TILE,
        interactive: CPFIS_FOCUSED,
    },
    Field {
        kind: CPFT_PASSWORD_TEXT,
        label: "Password",
        state: CPFS_DISPLAY_IN_SELECTED_TILE,
        interactive: CPFIS_NONE,
    },
    Field {
        kind: CPFT_PASSWORD_TEXT,
        label: "One-time code",
        state: CPFS_DISPLAY_IN_SELECTED_TILE,
        interactive: CPFIS_NONE,
    },
    Field {
        kind: CPFT_COMMAND_LINK,
        label: "Send a push to my phone instead",
        state: CPFS_DISPLAY_IN_SELECTED_TILE,
        interactive: CPFIS_NONE,
    },
    Field {
        kind: CPFT_COMMAND_LINK,
        label: "Enroll token",
        state: CPFS_HIDDEN,
        interactive: CPFIS_NONE,
    },
    Field {
        kind: CPFT_SMALL_TEXT,
        label: "",
        state: CPFS_HIDDEN,
        interactive: CPFIS_NONE,
    },
    Field {
        kind: CPFT_SUBMIT_BUTTON,
        label: "Submit",
        state: CPFS_DISPLAY_IN_SELECTED_TILE,
        interactive: CPFIS_NONE,
    },
];

pub fn get(id: u32) -> Option<&'static Field> {
    FIELDS.get(id as usize)
}
