//! Extra root certificates for the SMTP relay, read from the PEM file named by
//! `receivers.email.ca_file`.
//!
//! Configuration validation and the email receiver read the file through the same function,
//! so a file that passes validation is one the receiver can use.

use std::path::{Path, PathBuf};

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// The CA file cannot be used as a set of root certificates.
#[derive(Debug, thiserror::Error)]
pub enum CaFileError {
    #[error("cannot read {}: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid PEM in {}: {source}", path.display())]
    InvalidPem {
        path: PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    #[error(
        "{} contains no certificate: expected at least one block starting with \
         -----BEGIN CERTIFICATE-----",
        path.display()
    )]
    NoCertificate { path: PathBuf },
    #[error("certificate {number} in {} is not a valid root certificate: {source}", path.display())]
    InvalidCertificate {
        path: PathBuf,
        /// 1-based position of the certificate in the file.
        number: usize,
        source: rustls::Error,
    },
}

/// Reads every `CERTIFICATE` block of a PEM file and checks that each one parses as a trust
/// anchor. Other blocks, such as private keys, are skipped. A relative path is resolved against
/// the working directory of the process.
pub fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, CaFileError> {
    let pem = std::fs::read(path).map_err(|source| CaFileError::Unreadable {
        path: path.to_owned(),
        source,
    })?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| CaFileError::InvalidPem {
            path: path.to_owned(),
            source,
        })?;
    if certificates.is_empty() {
        return Err(CaFileError::NoCertificate {
            path: path.to_owned(),
        });
    }
    // The same check lettre runs when it builds the TLS configuration, so a bad certificate
    // is reported here with its position instead of at the first delivery.
    let mut store = rustls::RootCertStore::empty();
    for (index, certificate) in certificates.iter().enumerate() {
        store
            .add(certificate.clone())
            .map_err(|source| CaFileError::InvalidCertificate {
                path: path.to_owned(),
                number: index + 1,
                source,
            })?;
    }
    Ok(certificates)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(folder: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
        let path = folder.path().join(name);
        std::fs::write(&path, text).expect("write the test file");
        path
    }

    #[test]
    fn missing_file_rejected() {
        let folder = tempfile::tempdir().expect("temp dir");
        let path = folder.path().join("absent.pem");
        let error = read_ca_file(&path).expect_err("a missing file is rejected");
        assert!(matches!(error, CaFileError::Unreadable { .. }), "{error}");
        assert!(error.to_string().contains("absent.pem"), "{error}");
    }

    #[test]
    fn file_without_certificate_rejected() {
        let folder = tempfile::tempdir().expect("temp dir");
        let path = write(&folder, "empty.pem", "no PEM here\n");
        let error = read_ca_file(&path).expect_err("a file without certificates is rejected");
        assert!(
            matches!(error, CaFileError::NoCertificate { .. }),
            "{error}"
        );
        assert!(error.to_string().contains("BEGIN CERTIFICATE"), "{error}");
    }

    #[test]
    fn garbage_certificate_rejected() {
        let folder = tempfile::tempdir().expect("temp dir");
        let text = "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n";
        let path = write(&folder, "garbage.pem", text);
        let error = read_ca_file(&path).expect_err("a certificate that is not DER is rejected");
        assert!(
            matches!(error, CaFileError::InvalidCertificate { number: 1, .. }),
            "{error}"
        );
    }

    #[test]
    fn unterminated_block_rejected() {
        let folder = tempfile::tempdir().expect("temp dir");
        let path = write(
            &folder,
            "cut.pem",
            "-----BEGIN CERTIFICATE-----\naGVsbG8=\n",
        );
        let error = read_ca_file(&path).expect_err("a cut PEM block is rejected");
        assert!(matches!(error, CaFileError::InvalidPem { .. }), "{error}");
    }
}
