use std::process::ExitCode;

fn main() -> ExitCode {
    latchkey_cli::run(std::env::args_os())
}
