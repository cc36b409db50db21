//! Secrets typed at the terminal: the admin CLI's new admin password (`latchkey admin add`)
//! and the token app's file passphrase (`latchkey-token`). The prompt goes to the
//! controlling terminal, `/dev/tty`, not to stdout, so a program whose output is piped
//! still asks its person; echo is off while the line is typed and restored on every path.

use std::io::{BufRead, BufReader, Write};
use zeroize::Zeroizing;

/// The controlling terminal, to ask on. Fails when there is none (a service, a pipe with no
/// terminal behind it): callers say which option to use instead.
pub fn terminal() -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
}

/// Shows `prompt` on `tty` and reads one line with echo off; the line ending is not part of
/// the answer.
pub fn ask_hidden(tty: &std::fs::File, prompt: &str) -> std::io::Result<Zeroizing<String>> {
    let mut out = tty;
    out.write_all(prompt.as_bytes())?;
    out.flush()?;
    let mut line = Zeroizing::new(String::new());
    {
        let _echo = echo::off(tty)?;
        BufReader::new(tty).read_line(&mut line)?;
    }
    Ok(Zeroizing::new(
        line.trim_end_matches(['\r', '\n']).to_string(),
    ))
}

/// Terminal echo off for the lifetime of the guard (termios; restored on drop). Newlines
/// still echo, so the cursor moves on after the answer.
#[allow(unsafe_code)]
mod echo {
    use std::os::fd::AsRawFd;

    pub struct EchoOff {
        fd: libc::c_int,
        saved: libc::termios,
    }

    pub fn off(tty: &std::fs::File) -> std::io::Result<EchoOff> {
        let fd = tty.as_raw_fd();
        let mut saved = std::mem::MaybeUninit::<libc::termios>::uninit();
        // SAFETY: `fd` is an open descriptor owned by `tty`, and tcgetattr writes a whole
        // termios into `saved` when it returns 0.
        if unsafe { libc::tcgetattr(fd, saved.as_mut_ptr()) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: initialised by the successful tcgetattr above.
        let saved = unsafe { saved.assume_init() };
        let mut quiet = saved;
        quiet.c_lflag &= !libc::ECHO;
        quiet.c_lflag |= libc::ECHONL;
        // SAFETY: `fd` is open and `quiet` is a valid termios.
        if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &quiet) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(EchoOff { fd, saved })
    }

    impl Drop for EchoOff {
        fn drop(&mut self) {
            // SAFETY: restores the settings read from the same, still open, descriptor.
            unsafe {
                libc::tcsetattr(self.fd, libc::TCSANOW, &self.saved);
            }
        }
    }
}
