//! Configuration errors that point at the file, line and column of the bad value.

use std::fmt;
use std::ops::Range;

/// One problem in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    /// 1-based line of the bad value, or 0 when the problem has no position.
    pub line: usize,
    /// 1-based column (in characters) of the bad value, when known.
    pub column: usize,
    /// Dotted key of the bad value, such as `probe[0].interval`.
    pub key: String,
    /// Description of the problem and the fix, naming the bad value.
    pub message: String,
}

/// A configuration that could not be loaded: every problem found, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file as named by the user.
    pub file: String,
    pub issues: Vec<ConfigIssue>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, issue) in self.issues.iter().enumerate() {
            if index > 0 {
                writeln!(f)?;
            }
            // A problem with no position, such as an unreadable file, names only the file.
            if issue.line == 0 {
                if !issue.message.contains(&self.file) {
                    write!(f, "{}: ", self.file)?;
                }
            } else {
                write!(f, "{}:{}:{}: ", self.file, issue.line, issue.column)?;
            }
            if !issue.key.is_empty() {
                write!(f, "{}: ", issue.key)?;
            }
            write!(f, "{}", issue.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Converts byte offsets of a source text into 1-based line and column numbers.
pub(crate) struct Positions<'a> {
    text: &'a str,
}

impl<'a> Positions<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        Positions { text }
    }

    /// Returns the line and column of a byte offset (clamped to the text).
    pub(crate) fn line_column(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |at| at + 1);
        let column = before[line_start..].chars().count() + 1;
        (line, column)
    }

    /// Maps a byte offset into the decoded value of a TOML string, whose source is at `span`,
    /// to a byte offset into the source text. Exact for literal strings and for basic strings
    /// without escapes, single-line or multi-line. Returns `None` when the source holds
    /// escapes or line continuations, or otherwise differs from `decoded`.
    pub(crate) fn string_offset(
        &self,
        span: Range<usize>,
        decoded: &str,
        offset: usize,
    ) -> Option<usize> {
        let source = self.text.get(span.clone())?;
        let (quote, literal) = if source.starts_with("\"\"\"") {
            ("\"\"\"", false)
        } else if source.starts_with("'''") {
            ("'''", true)
        } else if source.starts_with('"') {
            ("\"", false)
        } else if source.starts_with('\'') {
            ("'", true)
        } else {
            return None;
        };
        let inner = source.strip_prefix(quote)?.strip_suffix(quote)?;
        let mut start = span.start + quote.len();
        let mut content = inner;
        // A newline right after the opening quotes of a multi-line string is trimmed.
        if quote.len() == 3 {
            for newline in ["\r\n", "\n"] {
                if let Some(rest) = content.strip_prefix(newline) {
                    start += newline.len();
                    content = rest;
                    break;
                }
            }
        }
        if (!literal && content.contains('\\')) || content != decoded {
            return None;
        }
        Some(start + offset.min(content.len()))
    }

    pub(crate) fn issue(&self, span: Range<usize>, key: &str, message: String) -> ConfigIssue {
        let (line, column) = self.line_column(span.start);
        ConfigIssue {
            line,
            column,
            key: key.to_owned(),
            message,
        }
    }
}
