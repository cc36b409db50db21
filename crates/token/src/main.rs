//! `latchkey-token`: see the library for everything it does.

fn main() {
    std::process::exit(latchkey_token::cli::main());
}
