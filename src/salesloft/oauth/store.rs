//! The file that keeps the latest refresh token across restarts.
//!
//! SalesLoft rotates refresh tokens: each refresh returns a new one and revokes the old. The
//! new token is therefore written to disk before the new access token is used, so a crash
//! after the refresh never leaves the daemon with only a revoked token. The write is atomic:
//! a temporary file is written and synced, renamed over the old one, and the directory is
//! synced so the rename itself survives a power loss.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::salesloft::Secret;

/// Name of the refresh token file inside the state directory.
pub const REFRESH_TOKEN_FILE: &str = "salesloft-refresh-token";

/// The refresh token file in a state directory.
#[derive(Debug, Clone)]
pub struct RefreshTokenStore {
    dir: PathBuf,
}

impl RefreshTokenStore {
    /// Creates a store in `dir`; nothing is read or created yet.
    pub fn new(dir: impl Into<PathBuf>) -> RefreshTokenStore {
        RefreshTokenStore { dir: dir.into() }
    }

    /// Returns the path of the token file.
    pub fn path(&self) -> PathBuf {
        self.dir.join(REFRESH_TOKEN_FILE)
    }

    /// Reads the stored token, or `None` when no token was stored yet or the file is empty.
    pub fn load(&self) -> io::Result<Option<Secret>> {
        match fs::read_to_string(self.path()) {
            Ok(text) => {
                let token = text.trim();
                Ok((!token.is_empty()).then(|| Secret::new(token)))
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Replaces the stored token atomically and durably. The directory is created with mode
    /// 0700 and the file with mode 0600 when they do not exist.
    pub fn save(&self, token: &Secret) -> io::Result<()> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)?;
        let temporary = self.dir.join(format!("{REFRESH_TOKEN_FILE}.tmp"));
        {
            let mut file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&temporary)?;
            file.write_all(token.expose().as_bytes())?;
            file.write_all(b"\n")?;
            file.sync_all()?;
        }
        fs::rename(&temporary, self.path())?;
        sync_dir(&self.dir)
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn save_then_load_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let store = RefreshTokenStore::new(dir.path().join("state"));
        assert!(store.load().unwrap().is_none());
        store.save(&Secret::new("rt-1")).unwrap();
        store.save(&Secret::new("rt-2")).unwrap();
        assert_eq!(store.load().unwrap(), Some(Secret::new("rt-2")));
        let mode = fs::metadata(store.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let leftover = dir
            .path()
            .join("state")
            .join(format!("{REFRESH_TOKEN_FILE}.tmp"));
        assert!(!leftover.exists());
    }
}
