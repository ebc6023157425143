//! The file sink: writes each transition into a folder as the email it would send (`.eml`)
//! and the OTLP log record it would export (`.json`), so the demo shows both without servers.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use lettre::message::Mailbox;

use super::email::parse_mailbox;
use super::render::{AlertLogRecord, render_message};
use super::{DeliveryError, NotifyError};
use crate::alert::Transition;
use crate::config::EmailConfig;

/// Address used for `From` and `To` of written emails when no email receiver is configured.
const PLACEHOLDER_ADDRESS: &str = "loftwatch@localhost";

/// Writes transitions as numbered file pairs: `<seq>-<rule>-<probe>-<state>.eml` and `.json`.
pub struct FileSink {
    folder: PathBuf,
    from: Mailbox,
    to: Vec<Mailbox>,
    next_seq: AtomicU64,
}

/// Turns a rule or probe name into a file name part: lower case, with every run of characters
/// other than letters and digits replaced by one `-`. Non-ASCII letters are kept.
pub fn file_name_part(name: &str) -> String {
    let mut part = String::with_capacity(name.len());
    for character in name.chars() {
        if character.is_alphanumeric() {
            part.extend(character.to_lowercase());
        } else if !part.ends_with('-') {
            part.push('-');
        }
    }
    let trimmed = part.trim_matches('-');
    if trimmed.is_empty() {
        "unnamed".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// Returns the sequence number after the largest one already in `folder`, so a restarted
/// demo does not overwrite earlier files.
fn next_sequence(folder: &Path) -> std::io::Result<u64> {
    let mut largest = 0;
    for entry in std::fs::read_dir(folder)? {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        let digits: String = name.chars().take_while(char::is_ascii_digit).collect();
        if let Ok(seq) = digits.parse::<u64>() {
            largest = largest.max(seq);
        }
    }
    Ok(largest + 1)
}

/// Writes `contents` to `path` through a temporary file in the same folder and a rename, so a
/// reader never sees a partial file.
fn write_atomic(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let file_name = path
        .file_name()
        .map(|name| name.to_string_lossy())
        .unwrap_or_default();
    let temporary = path.with_file_name(format!(".{file_name}.tmp"));
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(contents)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temporary, path)
}

impl FileSink {
    /// Creates the folder if needed. Emails take their addresses from `email` when it is
    /// configured, and `loftwatch@localhost` otherwise.
    pub fn new(folder: PathBuf, email: Option<&EmailConfig>) -> Result<FileSink, NotifyError> {
        let io_error = |source| NotifyError::FileSink {
            folder: folder.clone(),
            source,
        };
        std::fs::create_dir_all(&folder).map_err(io_error)?;
        let next_seq = next_sequence(&folder).map_err(io_error)?;
        let (from, to) = match email {
            Some(config) => {
                let from = parse_mailbox("email.from", &config.from)?;
                let to = config
                    .to
                    .iter()
                    .map(|address| parse_mailbox("email.to", address))
                    .collect::<Result<Vec<_>, _>>()?;
                (from, to)
            }
            None => {
                let placeholder = parse_mailbox("file sink", PLACEHOLDER_ADDRESS)?;
                (placeholder.clone(), vec![placeholder])
            }
        };
        Ok(FileSink {
            folder,
            from,
            to,
            next_seq: AtomicU64::new(next_seq),
        })
    }

    /// Writes the `.eml` and `.json` files of one transition and returns their common stem.
    pub async fn deliver(&self, transition: &Transition) -> Result<String, DeliveryError> {
        let message = render_message(transition, &self.from, &self.to)
            .map_err(|error| DeliveryError::permanent(error.to_string()))?;
        let record = AlertLogRecord::from_transition(transition).to_json();
        let json = serde_json::to_vec_pretty(&record)
            .map_err(|error| DeliveryError::permanent(format!("cannot encode json: {error}")))?;
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let stem = format!(
            "{seq:06}-{}-{}-{}",
            file_name_part(&transition.rule),
            file_name_part(&transition.probe),
            transition.kind.as_str()
        );
        let eml_path = self.folder.join(format!("{stem}.eml"));
        let json_path = self.folder.join(format!("{stem}.json"));
        let eml = message.formatted();
        let written = tokio::task::spawn_blocking(move || {
            write_atomic(&eml_path, &eml)?;
            write_atomic(&json_path, &json)
        })
        .await;
        match written {
            Ok(Ok(())) => Ok(stem),
            Ok(Err(error)) => Err(DeliveryError::transient(format!(
                "cannot write {stem} in {}: {error}",
                self.folder.display()
            ))),
            Err(join_error) => Err(DeliveryError::transient(format!(
                "file writer task failed: {join_error}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_name_part_replaces_separators() {
        assert_eq!(file_name_part("Auth down"), "auth-down");
        assert_eq!(file_name_part("  p99 / reads  "), "p99-reads");
        assert_eq!(file_name_part("応答遅延"), "応答遅延");
        assert_eq!(
            file_name_part("facturation-Économie"),
            "facturation-économie"
        );
        assert_eq!(file_name_part("../.."), "unnamed");
    }

    #[test]
    fn next_sequence_continues_after_existing() {
        let folder = tempfile::tempdir().unwrap();
        assert_eq!(next_sequence(folder.path()).unwrap(), 1);
        std::fs::write(folder.path().join("000041-auth-down-me-firing.eml"), b"x").unwrap();
        std::fs::write(folder.path().join("notes.txt"), b"x").unwrap();
        assert_eq!(next_sequence(folder.path()).unwrap(), 42);
    }
}
