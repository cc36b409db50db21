//! latchkey-agent (being written)
