//! A real SMTP server for tests: aiosmtpd storing every message in a Maildir, plus a decoder
//! that parses raw messages with Python's `email` package.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

use super::{unused_port, wait_until};

/// The Python that has the `aiosmtpd` module (Debian's python3-aiosmtpd).
pub const PYTHON: &str = "/usr/bin/python3";

/// An aiosmtpd process listening on 127.0.0.1, killed when dropped.
pub struct SmtpServer {
    child: Child,
    port: u16,
    maildir: PathBuf,
    _folder: tempfile::TempDir,
}

/// One message as the server stored it.
#[derive(Debug, Clone)]
pub struct DeliveredMail {
    /// The stored message, as bytes. aiosmtpd's Mailbox handler adds `X-Peer`, `X-MailFrom`
    /// and `X-RcptTo` headers.
    pub raw: Vec<u8>,
    /// Modification time of the Maildir file, which is when the server stored it.
    pub arrived: SystemTime,
    /// File name inside the Maildir.
    pub file_name: String,
}

impl SmtpServer {
    /// Starts aiosmtpd on a free port and waits until the port accepts connections.
    pub async fn start() -> SmtpServer {
        let folder = tempfile::tempdir().expect("create a folder for the maildir");
        // The handler creates the Maildir with its `cur`, `new` and `tmp` subfolders only when
        // the path does not exist yet.
        let maildir = folder.path().join("maildir");
        let port = unused_port();
        let child = Command::new(PYTHON)
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start /usr/bin/python3 -m aiosmtpd (is python3-aiosmtpd installed?)");
        let server = SmtpServer {
            child,
            port,
            maildir,
            _folder: folder,
        };
        wait_until(
            "aiosmtpd to accept connections",
            Duration::from_secs(15),
            || async {
                tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .ok()
                    .map(|_| ())
            },
        )
        .await;
        server
    }

    /// Returns the port the server listens on, at 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Returns the path of the Maildir the server writes to.
    pub fn maildir(&self) -> &Path {
        &self.maildir
    }

    /// Returns every stored message, oldest first.
    pub fn messages(&self) -> Vec<DeliveredMail> {
        read_maildir(&self.maildir)
    }

    /// Waits until at least `count` messages are stored and returns them, or panics after
    /// `timeout`.
    pub async fn wait_for_messages(&self, count: usize, timeout: Duration) -> Vec<DeliveredMail> {
        wait_for_maildir(&self.maildir, count, timeout).await
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Returns every message stored in a Maildir, oldest first.
pub fn read_maildir(maildir: &Path) -> Vec<DeliveredMail> {
    let mut messages = Vec::new();
    for sub in ["new", "cur"] {
        let Ok(entries) = std::fs::read_dir(maildir.join(sub)) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let (Ok(raw), Ok(metadata)) = (std::fs::read(&path), entry.metadata()) else {
                continue;
            };
            messages.push(DeliveredMail {
                raw,
                arrived: metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                file_name: entry.file_name().to_string_lossy().into_owned(),
            });
        }
    }
    messages.sort_by(|a, b| {
        a.arrived
            .cmp(&b.arrived)
            .then(a.file_name.cmp(&b.file_name))
    });
    messages
}

/// Waits until a Maildir contains at least `count` messages and returns them, or panics after
/// `timeout`.
pub async fn wait_for_maildir(
    maildir: &Path,
    count: usize,
    timeout: Duration,
) -> Vec<DeliveredMail> {
    let what = format!("{count} messages in {}", maildir.display());
    wait_until(&what, timeout, || async {
        let messages = read_maildir(maildir);
        (messages.len() >= count).then_some(messages)
    })
    .await
}

/// A message parsed by Python's `email` package with `email.policy.default`.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct DecodedMail {
    /// The decoded `Subject` header.
    pub subject: String,
    /// The decoded `From` header.
    pub from: String,
    /// The decoded `To` header.
    pub to: String,
    /// `Content-Type` without parameters, such as `text/plain`.
    pub content_type: String,
    /// The `charset` parameter of `Content-Type`.
    pub charset: Option<String>,
    /// `Content-Transfer-Encoding`, when present.
    pub transfer_encoding: Option<String>,
    /// The body, with its transfer encoding and charset decoded.
    pub body: String,
    /// `MIME-Version`, when present.
    pub mime_version: Option<String>,
    /// `Message-ID`, when present.
    pub message_id: Option<String>,
    /// `Date` as RFC 3339, when present and valid.
    pub date: Option<String>,
    /// Problems the parser found (header defects), as their class names.
    pub defects: Vec<String>,
}

const DECODE_SCRIPT: &str = r#"
import email, email.policy, json, sys
message = email.message_from_bytes(sys.stdin.buffer.read(), policy=email.policy.default)
defects = [type(d).__name__ for d in message.defects]
for name in ("Subject", "From", "To", "Date", "Message-ID", "MIME-Version"):
    header = message[name]
    if header is not None:
        defects += [type(d).__name__ for d in header.defects]
json.dump({
    "subject": str(message["Subject"]),
    "from": str(message["From"]),
    "to": str(message["To"]),
    "content_type": message.get_content_type(),
    "charset": message.get_content_charset(),
    "transfer_encoding": message.get("Content-Transfer-Encoding"),
    "body": message.get_content(),
    "mime_version": message.get("MIME-Version"),
    "message_id": message.get("Message-ID"),
    "date": message["Date"].datetime.isoformat() if message["Date"] is not None else None,
    "defects": defects,
}, sys.stdout)
"#;

/// Parses a raw message with `/usr/bin/python3` and `email.policy.default`.
pub fn decode_with_python(raw: &[u8]) -> DecodedMail {
    use std::io::Write;

    let mut child = Command::new(PYTHON)
        .args(["-c", DECODE_SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start /usr/bin/python3");
    child
        .stdin
        .take()
        .expect("python stdin")
        .write_all(raw)
        .expect("write the message");
    let output = child.wait_with_output().expect("wait for python");
    assert!(
        output.status.success(),
        "python failed to parse the message: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("python printed JSON")
}
