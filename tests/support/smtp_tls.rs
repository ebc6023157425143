//! A real SMTP relay with TLS and AUTH for tests: aiosmtpd (Debian python3-aiosmtpd 1.4) with a
//! certificate from a test CA made by rcgen. It stores messages in a Maildir and writes every
//! command line it reads, and every AUTH outcome, to a log file that tests read.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

use super::smtp::{DeliveredMail, PYTHON, read_maildir, wait_for_maildir};
use super::{unused_port, wait_until};

/// How the relay offers TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayTls {
    /// Plain connection that must be upgraded with STARTTLS before any command but EHLO, NOOP
    /// and QUIT. AUTH is offered only after the upgrade.
    Starttls,
    /// TLS from the first byte (SMTPS).
    Implicit,
    /// No TLS at all, and AUTH offered in clear text, so that a client that goes on without
    /// STARTTLS shows up in the command log.
    NoTls,
}

impl RelayTls {
    fn as_str(self) -> &'static str {
        match self {
            RelayTls::Starttls => "starttls",
            RelayTls::Implicit => "implicit",
            RelayTls::NoTls => "none",
        }
    }
}

/// One SMTP command line the relay read, by its verb.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayCommand {
    /// The command verb in upper case, such as `EHLO` or `AUTH`.
    pub verb: String,
    /// Whether the line arrived over TLS (after STARTTLS, or on the implicit-TLS port).
    pub encrypted: bool,
}

/// A CA certificate and a server certificate for 127.0.0.1 and `localhost` signed by it, in PEM.
pub struct TestPki {
    /// The self-signed CA certificate, which clients trust through `ca_file`.
    pub ca_pem: String,
    /// The relay's certificate, signed by the CA.
    pub server_certificate_pem: String,
    /// The relay's private key in PKCS#8.
    pub server_key_pem: String,
}

impl TestPki {
    /// Generates a fresh CA and server certificate with ECDSA P-256 keys.
    pub fn generate() -> TestPki {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "loftwatch test CA");
        let ca_key = KeyPair::generate().expect("generate the CA key");
        let ca = CertifiedIssuer::self_signed(ca_params, ca_key).expect("self-sign the CA");

        let names = vec!["127.0.0.1".to_owned(), "localhost".to_owned()];
        let mut server_params = CertificateParams::new(names).expect("server parameters");
        server_params
            .distinguished_name
            .push(DnType::CommonName, "loftwatch test relay");
        server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_key = KeyPair::generate().expect("generate the server key");
        let server_certificate = server_params
            .signed_by(&server_key, &ca)
            .expect("sign the server certificate");

        TestPki {
            ca_pem: ca.pem(),
            server_certificate_pem: server_certificate.pem(),
            server_key_pem: server_key.serialize_pem(),
        }
    }
}

/// The relay script. Its single argument is a JSON file with `mode`, `port`, `maildir`,
/// `log`, `ready`, `certificate`, `key`, `username` and `password`.
const RELAY_SCRIPT: &str = r#"
import json, logging, ssl, sys, threading, warnings
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import AuthResult, LoginPassword

# aiosmtpd warns that auth_required without auth_require_tls is unsafe: the "none" relay
# does that on purpose, to catch a client that sends AUTH in clear text.
warnings.simplefilter("ignore")
settings = json.load(open(sys.argv[1]))
mode = settings["mode"]
events = open(settings["log"], "a", buffering=1)
lock = threading.Lock()
upgraded = set()

def record(line):
    with lock:
        events.write(line + "\n")

class CommandLog(logging.Handler):
    # aiosmtpd 1.4 logs every command line it reads, before any check, as
    # "%r >> %r" % (peer, line) at INFO on the "mail.log" logger, with AUTH data masked.
    def emit(self, entry):
        if entry.msg != "%r >> %r" or len(entry.args) != 2:
            return
        peer, line = entry.args
        verb = bytes(line).split(b" ", 1)[0].decode("ascii", "replace").upper()
        encrypted = mode == "implicit" or peer in upgraded
        record(f"command {verb} {'tls' if encrypted else 'plain'}")

server_log = logging.getLogger("mail.log")
server_log.setLevel(logging.INFO)
server_log.propagate = False
server_log.addHandler(CommandLog())

class Relay(Mailbox):
    def handle_STARTTLS(self, server, session, envelope):
        # Called once the TLS handshake after STARTTLS has completed.
        upgraded.add(session.peer)
        return True

def authenticator(server, session, envelope, mechanism, data):
    accepted = (
        isinstance(data, LoginPassword)
        and data.login == settings["username"].encode()
        and data.password == settings["password"].encode()
    )
    record(f"auth {'accepted' if accepted else 'rejected'} {mechanism}")
    # handled=False makes aiosmtpd send the 535 reply itself when the check fails.
    return AuthResult(success=accepted, handled=False)

context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
context.load_cert_chain(settings["certificate"], settings["key"])
options = dict(
    hostname="127.0.0.1",
    port=settings["port"],
    server_hostname="relay.loftwatch.test",
    ready_timeout=20,
    auth_required=True,
    authenticator=authenticator,
)
if mode == "starttls":
    options.update(tls_context=context, require_starttls=True, auth_require_tls=True)
elif mode == "implicit":
    # aiosmtpd 1.4 counts only STARTTLS as TLS for auth_require_tls, so on the implicit-TLS
    # listener it would reject every AUTH. Every byte there is encrypted anyway.
    options.update(ssl_context=context, auth_require_tls=False)
else:
    options.update(auth_require_tls=False)
controller = Controller(Relay(settings["maildir"]), **options)
controller.start()
open(settings["ready"], "w").close()
threading.Event().wait()
"#;

/// An aiosmtpd relay with TLS and AUTH on 127.0.0.1, killed when dropped.
pub struct TlsSmtpServer {
    child: Child,
    port: u16,
    maildir: PathBuf,
    log: PathBuf,
    ca_file: PathBuf,
    folder: tempfile::TempDir,
}

impl TlsSmtpServer {
    /// Starts a relay that accepts only `username` with `password`, and waits until it is ready.
    pub async fn start(mode: RelayTls, username: &str, password: &str) -> TlsSmtpServer {
        let folder = tempfile::tempdir().expect("create a folder for the relay");
        let path = |name: &str| folder.path().join(name);
        let pki = TestPki::generate();
        std::fs::write(path("ca.pem"), &pki.ca_pem).expect("write ca.pem");
        std::fs::write(path("server.pem"), &pki.server_certificate_pem).expect("write server.pem");
        std::fs::write(path("server.key"), &pki.server_key_pem).expect("write server.key");
        std::fs::write(path("relay.py"), RELAY_SCRIPT).expect("write relay.py");

        let port = unused_port();
        let settings = serde_json::json!({
            "mode": mode.as_str(),
            "port": port,
            "maildir": path("maildir"),
            "log": path("commands.log"),
            "ready": path("ready"),
            "certificate": path("server.pem"),
            "key": path("server.key"),
            "username": username,
            "password": password,
        });
        std::fs::write(path("settings.json"), settings.to_string()).expect("write settings");

        let child = Command::new(PYTHON)
            .arg(path("relay.py"))
            .arg(path("settings.json"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start /usr/bin/python3 (is python3-aiosmtpd installed?)");
        let server = TlsSmtpServer {
            child,
            port,
            maildir: path("maildir"),
            log: path("commands.log"),
            ca_file: path("ca.pem"),
            folder,
        };
        let ready = server.folder.path().join("ready");
        wait_until("the TLS relay to start", Duration::from_secs(30), || {
            let exists = ready.exists();
            async move { exists.then_some(()) }
        })
        .await;
        server
    }

    /// Returns the port the relay listens on, at 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Returns the PEM file of the CA that signed the relay's certificate.
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
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

    /// Returns every line of the event log: `command VERB tls|plain` and
    /// `auth accepted|rejected MECHANISM`.
    pub fn events(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Returns the command lines the relay read, in order, over every connection.
    pub fn commands(&self) -> Vec<RelayCommand> {
        self.events()
            .iter()
            .filter_map(|line| {
                let mut fields = line.strip_prefix("command ")?.split(' ');
                let verb = fields.next()?.to_owned();
                let encrypted = fields.next()? == "tls";
                Some(RelayCommand { verb, encrypted })
            })
            .collect()
    }

    /// Returns the outcome of every AUTH exchange, in order: true when the relay accepted it.
    pub fn auth_outcomes(&self) -> Vec<bool> {
        self.events()
            .iter()
            .filter_map(|line| {
                let outcome = line.strip_prefix("auth ")?;
                Some(outcome.starts_with("accepted"))
            })
            .collect()
    }
}

impl Drop for TlsSmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
