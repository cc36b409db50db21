//! Log lines go to stderr from one thread, in batches.
//!
//! Every login decision is logged (two lines per verification). Written straight to stderr,
//! each line is a `write(2)` on the request's thread under stderr's lock: at ~6,000
//! verifications/s that is 12,000 system calls a second (docs/performance.md, session 7).
//! Here a request's thread appends its line to a shared buffer, and one thread writes the
//! buffer out in one `write`, [`GATHER`] after the first line of a batch arrived. Waking a
//! writer for each line would cost as much as the `write` it saves; an idle server's writer
//! sleeps on a condition variable. When stderr is so slow that [`MAX_BUFFER`] is queued,
//! logging threads wait, as they would on a slow stderr: lines are never dropped.

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tracing_subscriber::fmt::MakeWriter;

/// How long the writer lets lines gather before it writes them: the most a line waits.
const GATHER: Duration = Duration::from_millis(10);
/// Bytes queued before logging threads wait for the writer.
const MAX_BUFFER: usize = 4 << 20;

struct Shared {
    buf: Mutex<Vec<u8>>,
    /// Signalled when the buffer gets its first line (wakes the writer) and when the writer
    /// has taken it (wakes threads waiting for room).
    cv: Condvar,
    /// Held while a batch is taken and written, so batches reach stderr in order.
    out: Mutex<Box<dyn Write + Send>>,
}

fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn append(&self, line: &[u8]) {
        let mut buf = lock(&self.buf);
        while buf.len() >= MAX_BUFFER {
            buf = self.cv.wait(buf).unwrap_or_else(PoisonError::into_inner);
        }
        let first = buf.is_empty();
        buf.extend_from_slice(line);
        drop(buf);
        if first {
            self.cv.notify_all();
        }
    }

    /// Writes out everything appended so far.
    fn write_out(&self, spare: &mut Vec<u8>) {
        let mut out = lock(&self.out);
        std::mem::swap(&mut *lock(&self.buf), spare);
        self.cv.notify_all();
        if !spare.is_empty() {
            // A failed write to stderr has nowhere to be reported.
            let _ = out.write_all(spare);
            let _ = out.flush();
        }
        spare.clear();
    }

    fn write_loop(&self) {
        let mut spare = Vec::new();
        loop {
            let mut buf = lock(&self.buf);
            while buf.is_empty() {
                buf = self.cv.wait(buf).unwrap_or_else(PoisonError::into_inner);
            }
            drop(buf);
            std::thread::sleep(GATHER);
            self.write_out(&mut spare);
        }
    }
}

/// The `MakeWriter` for `tracing_subscriber`: each event's line goes to the shared buffer.
#[derive(Clone)]
pub struct BatchedStderr {
    shared: Arc<Shared>,
}

/// Writes out what is buffered when dropped (keep it until `main` returns).
pub struct LogGuard {
    shared: Arc<Shared>,
}

/// Starts the writer thread.
pub fn batched_stderr() -> io::Result<(BatchedStderr, LogGuard)> {
    let shared = new_shared(Box::new(io::stderr()));
    let s = shared.clone();
    std::thread::Builder::new()
        .name("log-writer".into())
        .spawn(move || s.write_loop())?;
    Ok((
        BatchedStderr {
            shared: shared.clone(),
        },
        LogGuard { shared },
    ))
}

fn new_shared(out: Box<dyn Write + Send>) -> Arc<Shared> {
    Arc::new(Shared {
        buf: Mutex::new(Vec::with_capacity(64 * 1024)),
        cv: Condvar::new(),
        out: Mutex::new(out),
    })
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        self.shared.write_out(&mut Vec::new());
    }
}

/// One event's line, appended when the formatter is done with it.
pub struct Line {
    buf: Vec<u8>,
    shared: Arc<Shared>,
}

impl Write for Line {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        if !self.buf.is_empty() {
            self.shared.append(&self.buf);
        }
    }
}

impl<'a> MakeWriter<'a> for BatchedStderr {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line {
            buf: Vec::with_capacity(256),
            shared: self.shared.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// An `io::Write` the test can read back, counting the `write` calls that reach it.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<(Vec<u8>, usize)>>);

    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            let mut g = self.0.lock().unwrap();
            g.0.extend_from_slice(b);
            g.1 += 1;
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_reach_the_output_in_order_in_one_write_per_batch() {
        let sink = Sink::default();
        let shared = new_shared(Box::new(sink.clone()));
        let writer = BatchedStderr {
            shared: shared.clone(),
        };
        for i in 0..100 {
            writeln!(writer.make_writer(), "line {i}").unwrap();
        }
        assert!(
            sink.0.lock().unwrap().0.is_empty(),
            "nothing written before the batch"
        );
        drop(LogGuard { shared });
        let g = sink.0.lock().unwrap();
        let want: String = (0..100).map(|i| format!("line {i}\n")).collect();
        assert_eq!(String::from_utf8_lossy(&g.0), want);
        assert_eq!(g.1, 1, "the buffered lines are written in one call");
    }

    #[test]
    fn the_writer_thread_writes_a_batch_without_being_asked() {
        let sink = Sink::default();
        let shared = new_shared(Box::new(sink.clone()));
        let s = shared.clone();
        std::thread::spawn(move || s.write_loop());
        let writer = BatchedStderr { shared };
        for i in 0..1000 {
            writeln!(writer.make_writer(), "{i}").unwrap();
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while sink
            .0
            .lock()
            .unwrap()
            .0
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            < 1000
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the writer did not write"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(sink.0.lock().unwrap().1 < 1000, "lines are batched");
    }
}
