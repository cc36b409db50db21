//! `latchkey-agent service`: the agent as a Windows service (the Service Control Manager
//! starts it; `run` is the same agent in a console). Stop and shutdown requests stop the
//! agent cleanly; logs go to `agent.log` in the configuration directory (a service has no
//! console). Started before the machine joined, it waits for `join` instead of failing (an
//! MSI installed without `SERVER_URL`/`JOIN_TOKEN` must not roll back).
#![allow(unsafe_code)]

use crate::RunOptions;
use std::path::PathBuf;
use std::sync::atomic::{AtomicPtr, AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use tokio::sync::watch;
use windows_sys::Win32::Foundation::{ERROR_CALL_NOT_IMPLEMENTED, NO_ERROR};
use windows_sys::Win32::System::Services::{
    RegisterServiceCtrlHandlerExW, SERVICE_ACCEPT_SHUTDOWN, SERVICE_ACCEPT_STOP,
    SERVICE_CONTROL_INTERROGATE, SERVICE_CONTROL_SHUTDOWN, SERVICE_CONTROL_STOP, SERVICE_RUNNING,
    SERVICE_START_PENDING, SERVICE_STATUS, SERVICE_STATUS_CURRENT_STATE, SERVICE_STOP_PENDING,
    SERVICE_STOPPED, SERVICE_TABLE_ENTRYW, SERVICE_WIN32_OWN_PROCESS, SetServiceStatus,
    StartServiceCtrlDispatcherW,
};

/// How often a service installed before the join looks for agent.toml.
const JOIN_POLL: std::time::Duration = std::time::Duration::from_secs(2);

/// The service name the installer registers.
pub const SERVICE_NAME: &str = "latchkey-agent";

static CONFIG_DIR: OnceLock<PathBuf> = OnceLock::new();
static STOP: OnceLock<watch::Sender<bool>> = OnceLock::new();
static HANDLE: AtomicPtr<core::ffi::c_void> = AtomicPtr::new(std::ptr::null_mut());
static CHECKPOINT: AtomicU32 = AtomicU32::new(0);

fn wide(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(Some(0)).collect()
}

fn set_status(state: SERVICE_STATUS_CURRENT_STATE, exit_code: u32) {
    let handle = HANDLE.load(Ordering::SeqCst);
    if handle.is_null() {
        return;
    }
    let pending = state == SERVICE_START_PENDING || state == SERVICE_STOP_PENDING;
    let status = SERVICE_STATUS {
        dwServiceType: SERVICE_WIN32_OWN_PROCESS,
        dwCurrentState: state,
        dwControlsAccepted: if state == SERVICE_RUNNING {
            SERVICE_ACCEPT_STOP | SERVICE_ACCEPT_SHUTDOWN
        } else {
            0
        },
        dwWin32ExitCode: exit_code,
        dwServiceSpecificExitCode: 0,
        dwCheckPoint: if pending {
            CHECKPOINT.fetch_add(1, Ordering::SeqCst) + 1
        } else {
            0
        },
        dwWaitHint: if pending { 10_000 } else { 0 },
    };
    // SAFETY: a handle from RegisterServiceCtrlHandlerExW and a valid status.
    unsafe { SetServiceStatus(handle, &status) };
}

unsafe extern "system" fn control_handler(
    control: u32,
    _event: u32,
    _data: *mut core::ffi::c_void,
    _ctx: *mut core::ffi::c_void,
) -> u32 {
    match control {
        SERVICE_CONTROL_STOP | SERVICE_CONTROL_SHUTDOWN => {
            set_status(SERVICE_STOP_PENDING, NO_ERROR);
            if let Some(tx) = STOP.get() {
                let _ = tx.send(true);
            }
            NO_ERROR
        }
        SERVICE_CONTROL_INTERROGATE => NO_ERROR,
        _ => ERROR_CALL_NOT_IMPLEMENTED,
    }
}

unsafe extern "system" fn service_main(_argc: u32, _argv: *mut windows_sys::core::PWSTR) {
    // Nothing may unwind into the Service Control Manager.
    let _ = std::panic::catch_unwind(run_service);
}

fn init_file_logs(dir: &std::path::Path) {
    let Ok(file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("agent.log"))
    else {
        return;
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("LATCHKEY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(Mutex::new(file))
        .with_ansi(false)
        .try_init();
}

fn run_service() {
    let name = wide(SERVICE_NAME);
    // SAFETY: `name` is NUL-terminated; the handler is a plain function.
    let handle = unsafe {
        RegisterServiceCtrlHandlerExW(name.as_ptr(), Some(control_handler), std::ptr::null())
    };
    if handle.is_null() {
        return;
    }
    HANDLE.store(handle, Ordering::SeqCst);
    set_status(SERVICE_START_PENDING, NO_ERROR);
    let Some(config_dir) = CONFIG_DIR.get().cloned() else {
        set_status(SERVICE_STOPPED, ERROR_CALL_NOT_IMPLEMENTED);
        return;
    };
    init_file_logs(&config_dir);
    let (tx, mut rx) = watch::channel(false);
    let _ = STOP.set(tx);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the runtime");
            set_status(SERVICE_STOPPED, 1);
            return;
        }
    };
    let result = rt.block_on(async {
        // Installed before the machine joined (an interactive MSI install): the service runs
        // and waits for `latchkey-agent join` to write agent.toml, then starts the agent.
        // Until then the pipe does not exist and the credential provider refuses every logon.
        let config_file = config_dir.join(crate::config::CONFIG_FILE);
        if !config_file.exists() {
            set_status(SERVICE_RUNNING, NO_ERROR);
            tracing::warn!(path = %config_file.display(), "this machine has not joined yet: waiting for `latchkey-agent join`");
            while !config_file.exists() {
                let stop = tokio::time::timeout(JOIN_POLL, rx.wait_for(|stop| *stop)).await;
                if stop.is_ok() {
                    tracing::info!("service stop requested before the machine joined");
                    return Ok(());
                }
            }
            // The configuration directory (and so agent.log) exists only from the join on.
            init_file_logs(&config_dir);
            tracing::info!("the machine joined: starting the agent");
        }
        let agent = crate::start(RunOptions {
            config_dir,
            socket: None,
        })
        .await?;
        set_status(SERVICE_RUNNING, NO_ERROR);
        let _ = rx.wait_for(|stop| *stop).await;
        tracing::info!("service stop requested");
        agent.stop().await;
        Ok::<_, crate::AgentError>(())
    });
    match result {
        Ok(()) => set_status(SERVICE_STOPPED, NO_ERROR),
        Err(e) => {
            tracing::error!(error = %e, "the agent service could not start");
            set_status(SERVICE_STOPPED, 1);
        }
    }
}

/// Hands this process to the Service Control Manager; returns when the service stopped.
pub fn dispatch(config_dir: PathBuf) -> crate::Result<()> {
    let _ = CONFIG_DIR.set(config_dir);
    let mut name = wide(SERVICE_NAME);
    let table = [
        SERVICE_TABLE_ENTRYW {
            lpServiceName: name.as_mut_ptr(),
            lpServiceProc: Some(service_main),
        },
        SERVICE_TABLE_ENTRYW {
            lpServiceName: std::ptr::null_mut(),
            lpServiceProc: None,
        },
    ];
    // SAFETY: a NULL-terminated table whose strings outlive the call (it blocks).
    if unsafe { StartServiceCtrlDispatcherW(table.as_ptr()) } == 0 {
        return Err(crate::AgentError::Local(format!(
            "not started by the Service Control Manager ({}); use `run` in a console",
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}
