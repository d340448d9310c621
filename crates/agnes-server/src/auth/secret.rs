//! The HS256 signing secret: `JWT_SECRET_KEY`, or one generated on first start into
//! `STATE_DIR/.jwt_secret` with mode 0600 and reused afterwards.

use crate::ServerError;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

pub fn load_or_create(state_dir: &Path) -> Result<Vec<u8>, ServerError> {
    if let Ok(s) = std::env::var("JWT_SECRET_KEY") {
        if !s.is_empty() {
            if s.len() < 32 {
                tracing::warn!("JWT_SECRET_KEY is shorter than 32 characters; use a longer secret");
            }
            return Ok(s.into_bytes());
        }
    }
    let path = state_dir.join(".jwt_secret");
    match std::fs::read_to_string(&path) {
        Ok(s) if s.trim().len() >= 32 => return Ok(s.trim().as_bytes().to_vec()),
        Ok(_) => return Err(ServerError::Config(format!("{} is too short; delete it to regenerate", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(ServerError::Config(format!("cannot read {}: {e}", path.display()))),
    }
    let secret: String = {
        use rand::RngCore;
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        hex::encode(bytes)
    };
    // create_new: two servers starting at once must not overwrite each other's secret.
    match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path) {
        Ok(mut f) => {
            f.write_all(secret.as_bytes())?;
            f.sync_all()?;
            Ok(secret.into_bytes())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Ok(std::fs::read_to_string(&path)?.trim().as_bytes().to_vec())
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn generated_once_with_private_mode() {
        std::env::remove_var("JWT_SECRET_KEY");
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create(dir.path()).unwrap();
        let b = load_or_create(dir.path()).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len(), 64);
        let mode = std::fs::metadata(dir.path().join(".jwt_secret")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
