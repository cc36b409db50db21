//! latchkey-token (being written)
