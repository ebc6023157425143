//! The demo's standard output, which stops the demo quietly when its reader goes away.

use std::fmt;
use std::io::Write as _;

/// The demo's standard output. Once a write fails (the reader closed the pipe, as
/// `loftwatch demo | head -3` does), later lines are dropped and the demo stops.
#[derive(Default)]
pub(super) struct Stdout {
    /// True once a write failed; later lines are dropped.
    pub(super) closed: bool,
}

impl Stdout {
    /// Writes one line and flushes it, so a closed pipe shows at once.
    pub(super) fn line(&mut self, line: fmt::Arguments<'_>) {
        if self.closed {
            return;
        }
        let mut stdout = std::io::stdout().lock();
        let written = writeln!(stdout, "{line}").and_then(|()| stdout.flush());
        if let Err(error) = written {
            self.closed = true;
            if error.kind() != std::io::ErrorKind::BrokenPipe {
                eprintln!("cannot write to stdout, stopping the demo: {error}");
            }
        }
    }
}
