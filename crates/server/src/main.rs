//! `latchkeyd`: parse configuration, start the server, stop on SIGTERM/SIGINT.

use clap::Parser;
use latchkey_server::logwriter::{self, LogGuard};
use latchkey_server::{Args, config};
use std::process::ExitCode;
use tracing_subscriber::fmt::writer::BoxMakeWriter;

/// mimalloc instead of glibc's malloc: a login allocates and frees many small buffers across
/// the runtime's threads, and glibc's arenas spent ~18% of the server's CPU on it
/// (`_int_malloc`, `_int_free`, `malloc_consolidate`; docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_arena_eager_commit` in mimalloc's `mi_option_e` (the same in v2 and v3).
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;

/// Commits the allocator's memory as it is used, not a whole arena at once: with eager
/// commit (mimalloc's default on Linux) the server's RSS was 80-130 MiB at 10,000 users
/// instead of ~30. It must run before the first allocation creates the first arena, so it is
/// an ELF constructor (`.init_array`), which the loader runs before Rust's runtime starts.
extern "C" fn tune_allocator() {
    #[allow(unsafe_code)]
    // SAFETY: `mi_option_set` stores one option value; the id and value are valid for the
    // linked mimalloc. It runs once, single-threaded, before `main`.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0)
    };
}

#[cfg(target_os = "linux")]
#[used]
#[allow(unsafe_code)]
// SAFETY: a plain function pointer in `.init_array` is what the ELF loader calls before
// `main`; `tune_allocator` takes no arguments, touches no Rust runtime state, cannot unwind.
#[unsafe(link_section = ".init_array")]
static TUNE_ALLOCATOR: extern "C" fn() = tune_allocator;

/// Logs go to stderr through one writer thread (see `logwriter`); the guard writes out what
/// is queued when `main` returns.
fn init_logs(format: &str) -> Option<LogGuard> {
    let (writer, guard) = match logwriter::batched_stderr() {
        Ok((w, g)) => (BoxMakeWriter::new(w), Some(g)),
        Err(e) => {
            eprintln!("latchkeyd: no log writer thread ({e}); logging straight to stderr");
            (BoxMakeWriter::new(std::io::stderr), None)
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("LATCHKEY_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
    guard
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let (cfg, log_format) = match config::resolve(args) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("latchkeyd: {e}");
            return ExitCode::from(2);
        }
    };
    let _logs = init_logs(&log_format);
    let data_dir = cfg.data_dir.clone();
    let server = match latchkey_server::start(cfg).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("latchkeyd: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The handlers are installed before the banner: whoever reads it may signal at once
    // (before, a SIGTERM right after the banner could still find the default action).
    let stop = stop_signal();
    let info = &server.info;
    println!("latchkeyd listening on {}", info.url());
    if !info.tls_fingerprint.is_empty() {
        println!(
            "TLS certificate fingerprint (agents pin this): {}",
            info.tls_fingerprint
        );
    }
    if let Some(token) = &info.new_admin_token {
        println!(
            "Bootstrap admin API key (shown once, saved in {}):",
            data_dir.join("admin.token").display()
        );
        println!("  {token}");
    }
    stop.await;
    tracing::info!("shutdown requested");
    server.shutdown().await;
    ExitCode::SUCCESS
}

/// SIGTERM or SIGINT, with the handlers installed now (when called), awaited later.
fn stop_signal() -> impl Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let handlers = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    );
    async move {
        match handlers {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
}
