//! Every panic in the server under test fails the test, even one the panic catcher turned into a
//! 500 or one that only killed a connection's task (a body stream polled after its end).
//!
//! A hook records each panic with the thread it happened on. Each test's server runs on that
//! test's own thread (a current-thread runtime), so a panic there belongs to it; a panic on a
//! runtime's worker or blocking thread cannot be placed, and fails whichever test looks first.

use std::sync::{Mutex, Once};

struct Recorded {
    thread: Option<String>,
    message: String,
}

static RECORDED: Mutex<Vec<Recorded>> = Mutex::new(Vec::new());
static INSTALL: Once = Once::new();

/// Installs the recording hook (once), keeping the default report on stderr.
pub fn install() {
    INSTALL.call_once(|| {
        let report = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let text = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            let location = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
            if let Ok(mut recorded) = RECORDED.lock() {
                recorded.push(Recorded {
                    thread: std::thread::current().name().map(str::to_owned),
                    message: format!("{text}{location}"),
                });
            }
            report(info);
        }));
    });
}

/// Where the record stands now: panics after this mark are new.
pub fn mark() -> usize {
    RECORDED.lock().map(|r| r.len()).unwrap_or(0)
}

/// Panics since `mark` on this thread or on a thread no test owns, except those whose message
/// contains one of `allowed`.
pub fn since(mark: usize, allowed: &[String]) -> Vec<String> {
    let this = std::thread::current().name().map(str::to_owned);
    let Ok(recorded) = RECORDED.lock() else { return Vec::new() };
    recorded
        .iter()
        .skip(mark)
        .filter(|p| p.thread == this || p.thread.as_deref().is_none_or(|name| name.starts_with("tokio-")))
        .filter(|p| !allowed.iter().any(|a| p.message.contains(a.as_str())))
        .map(|p| format!("{} (thread {})", p.message, p.thread.as_deref().unwrap_or("unnamed")))
        .collect()
}
