//! pam_latchkey (being written)
