//! Printing: readable text or JSON on stdout, and a spinner on stderr while waiting (only when
//! both are terminals).

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Whether a spinner line is on screen (so that errors clear it first).
static SPINNER_DRAWN: AtomicBool = AtomicBool::new(false);

/// Erases the spinner's line on stderr, if one is drawn.
pub(crate) fn clear_line() {
    if SPINNER_DRAWN.swap(false, Ordering::SeqCst) {
        let mut stderr = std::io::stderr().lock();
        let _ = write!(stderr, "\r\x1b[2K");
        let _ = stderr.flush();
    }
}

/// How a command prints.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Output {
    /// `--json`: JSON documents and JSON lines instead of text.
    pub json: bool,
    /// Whether a spinner may be drawn (text output, stdout and stderr are terminals).
    pub interactive: bool,
}

impl Output {
    /// The output of a command, `json` from `--json`.
    pub(crate) fn new(json: bool) -> Self {
        let interactive =
            !json && std::io::stdout().is_terminal() && std::io::stderr().is_terminal();
        Output { json, interactive }
    }

    /// Prints a line of text on stdout.
    pub(crate) fn line(&self, text: impl AsRef<str>) {
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{}", text.as_ref());
        let _ = stdout.flush();
    }

    /// Prints `value` as one line of JSON on stdout.
    pub(crate) fn json_line(&self, value: &Value) {
        self.line(value.to_string());
    }

    /// Prints `value` as a pretty JSON document on stdout.
    pub(crate) fn json_document(&self, value: &Value) {
        self.line(serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string()));
    }

    /// A spinner saying `message`, drawn on stderr while the output is interactive.
    pub(crate) fn spinner(&self, message: impl Into<String>) -> Spinner {
        Spinner::start(self.interactive, message.into())
    }
}

/// What the spinner draws.
struct SpinState {
    message: String,
    since: Instant,
    frame: usize,
    paused: bool,
}

/// A one-line spinner on stderr: `⠋ message (1.2s)`. Print through it
/// ([`Spinner::println`], [`Spinner::eprintln`]) so that lines do not mix with it. Does nothing
/// when the output is not interactive.
pub(crate) struct Spinner {
    state: Option<Arc<Mutex<SpinState>>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

const FRAMES: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
const TICK: Duration = Duration::from_millis(90);

fn lock(state: &Mutex<SpinState>) -> MutexGuard<'_, SpinState> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Spinner {
    fn start(enabled: bool, message: String) -> Spinner {
        if !enabled {
            return Spinner {
                state: None,
                task: None,
            };
        }
        let state = Arc::new(Mutex::new(SpinState {
            message,
            since: Instant::now(),
            frame: 0,
            paused: false,
        }));
        let ticking = state.clone();
        let task = tokio::spawn(async move {
            // Quick commands finish before the first frame: no flicker.
            let first = tokio::time::Instant::now() + Duration::from_millis(150);
            let mut interval = tokio::time::interval_at(first, TICK);
            loop {
                interval.tick().await;
                let mut state = lock(&ticking);
                if state.paused {
                    continue;
                }
                state.frame = (state.frame + 1) % FRAMES.len();
                let mut stderr = std::io::stderr().lock();
                let _ = write!(
                    stderr,
                    "\r\x1b[2K{} {} ({:.1}s)",
                    FRAMES[state.frame],
                    state.message,
                    state.since.elapsed().as_secs_f64()
                );
                let _ = stderr.flush();
                SPINNER_DRAWN.store(true, Ordering::SeqCst);
            }
        });
        Spinner {
            state: Some(state),
            task: Some(task),
        }
    }

    /// Changes what the spinner says.
    pub(crate) fn set_message(&self, message: impl Into<String>) {
        if let Some(state) = &self.state {
            lock(state).message = message.into();
        }
    }

    /// Runs `print` with the spinner's line erased (it is drawn again at the next tick).
    fn without_spinner(&self, print: impl FnOnce()) {
        match &self.state {
            Some(state) => {
                let _guard = lock(state);
                clear_line();
                print();
            }
            None => print(),
        }
    }

    /// Prints a line on stdout.
    pub(crate) fn println(&self, text: impl AsRef<str>) {
        self.without_spinner(|| {
            let mut stdout = std::io::stdout().lock();
            let _ = writeln!(stdout, "{}", text.as_ref());
            let _ = stdout.flush();
        });
    }

    /// Prints a line on stderr.
    pub(crate) fn eprintln(&self, text: impl AsRef<str>) {
        self.without_spinner(|| eprintln!("{}", text.as_ref()));
    }

    /// Stops drawing until [`Spinner::resume`] (while the user types an answer).
    pub(crate) fn pause(&self) {
        if let Some(state) = &self.state {
            lock(state).paused = true;
            clear_line();
        }
    }

    /// Draws again after [`Spinner::pause`].
    pub(crate) fn resume(&self) {
        if let Some(state) = &self.state {
            lock(state).paused = false;
        }
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        if let Some(state) = &self.state {
            let _guard = lock(state);
            clear_line();
        }
    }
}

/// `value` as a short line: strings as they are, other JSON compact.
pub(crate) fn inline(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// A run's result for a reader: a string as it is, other JSON pretty-printed.
pub(crate) fn readable(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => serde_json::to_string_pretty(other).unwrap_or_else(|_| other.to_string()),
    }
}

/// Rows as a table with aligned columns (the last column is not padded).
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let last = row.len().saturating_sub(1);
        for (index, cell) in row.iter().enumerate() {
            if index == last {
                out.push_str(cell);
            } else {
                let pad = widths[index] - cell.chars().count();
                out.push_str(cell);
                out.push_str(&" ".repeat(pad + 2));
            }
        }
        out.push('\n');
    }
    out.pop();
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn tables_align_columns() {
        let rows = vec![
            vec!["a".to_owned(), "quickstart".to_owned(), "done".to_owned()],
            vec!["bbb".to_owned(), "x".to_owned(), "waiting".to_owned()],
        ];
        assert_eq!(
            table(&["ID", "WORKFLOW", "STATUS"], &rows),
            "ID   WORKFLOW    STATUS\na    quickstart  done\nbbb  x           waiting"
        );
    }

    #[test]
    fn results_print_strings_bare() {
        assert_eq!(readable(&json!("hi")), "hi");
        assert_eq!(readable(&json!({"a": 1})), "{\n  \"a\": 1\n}");
        assert_eq!(inline(&json!({"a": 1})), "{\"a\":1}");
    }
}
