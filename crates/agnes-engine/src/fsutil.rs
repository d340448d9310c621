//! Durable file replacement: write to a temporary name in the same directory, fsync it,
//! rename it over the target, fsync the directory. A reader sees the old file or the new
//! one, never a torn one, and a crash at any point leaves the old file in place.

use crate::{EngineError, Result};
use md5::{Digest, Md5};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The temporary sibling of `target`: hidden (so `*.parquet` globs never match it) and
/// unique per process and call.
pub fn temp_path_for(target: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    target.with_file_name(format!(".{name}.{}-{n}.tmp", std::process::id()))
}

/// Names produced by [`temp_path_for`] and the directory variant used for partitioned
/// writes; swept on start-up.
pub fn is_temporary_name(name: &str) -> bool {
    (name.starts_with('.') && (name.ends_with(".tmp") || name.ends_with(".tmpdir")))
        || name.ends_with(".duckdb.tmp")
        || name.ends_with(".duckdb.tmp.wal")
}

pub fn fsync_file(path: &Path) -> Result<()> {
    File::open(path).and_then(|f| f.sync_all()).map_err(EngineError::io("fsync", path))
}

pub fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|f| f.sync_all()).map_err(EngineError::io("fsync directory", dir))
}

/// fsync `tmp`, rename it to `target`, fsync the directory.
pub fn commit_rename(tmp: &Path, target: &Path) -> Result<()> {
    fsync_file(tmp)?;
    std::fs::rename(tmp, target).map_err(EngineError::io("rename into place", target))?;
    if let Some(dir) = target.parent() {
        fsync_dir(dir)?;
    }
    Ok(())
}

/// Like [`commit_rename`], and also return the digests of the content. They are read
/// while the fsync runs (the pages were just written, so both work from the page cache
/// and the disk at once); the bytes hashed are exactly the bytes renamed into place.
pub fn commit_rename_hashed(tmp: &Path, target: &Path) -> Result<Digests> {
    let (synced, digests) = std::thread::scope(|s| {
        let hasher = s.spawn(|| digest_file(tmp));
        let synced = fsync_file(tmp);
        (synced, hasher.join().unwrap_or_else(|_| Err(EngineError::Invalid("hashing thread panicked".into()))))
    });
    synced?;
    let digests = digests?;
    std::fs::rename(tmp, target).map_err(EngineError::io("rename into place", target))?;
    if let Some(dir) = target.parent() {
        fsync_dir(dir)?;
    }
    remember(target, &digests);
    Ok(digests)
}

/// The identity of a file's content as the file system tells it: device, inode, size and
/// modification time.
type FileIdentity = (u64, u64, u64, std::time::SystemTime);

/// Digests of published files by identity. A published file is only ever replaced by a
/// rename, never written in place, so the same identity means the same bytes: a sync
/// that leaves a large file as it is (the base of a layered table, an unchanged part)
/// says its hash without reading it again.
static KNOWN: std::sync::Mutex<Option<std::collections::HashMap<FileIdentity, Digests>>> = std::sync::Mutex::new(None);
const KNOWN_MAX: usize = 16_384;

fn identity(path: &Path) -> Option<FileIdentity> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.dev(), m.ino(), m.len(), m.modified().ok()?))
}

fn remember(path: &Path, digests: &Digests) {
    if let Some(id) = identity(path) {
        let mut known = KNOWN.lock().unwrap_or_else(|e| e.into_inner());
        let known = known.get_or_insert_with(Default::default);
        if known.len() >= KNOWN_MAX {
            known.clear();
        }
        known.insert(id, digests.clone());
    }
}

/// The digests of a published file: remembered from when this process published it, or
/// read now (and remembered).
pub fn digest_published(path: &Path) -> Result<Digests> {
    let id = identity(path);
    if let Some(id) = &id {
        let known = KNOWN.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(d) = known.as_ref().and_then(|k| k.get(id)) {
            return Ok(d.clone());
        }
    }
    let digests = digest_file(path)?;
    remember(path, &digests);
    Ok(digests)
}

/// The two digests of a published file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    /// MD5 hex: the manifest's `hash` and the download's ETag (the original's contract).
    pub md5: String,
    /// `xxh3-128:<hex>`: what `agnes pull` verifies. MD5 runs at about 600 MB/s on one
    /// core and would bound a pull; XXH3 is an order of magnitude faster.
    pub checksum: String,
}

/// The prefix naming the algorithm of [`Digests::checksum`].
pub const CHECKSUM_PREFIX: &str = "xxh3-128:";

/// Both digests of a file's whole content, in one read.
pub fn digest_file(path: &Path) -> Result<Digests> {
    let mut f = File::open(path).map_err(EngineError::io("open", path))?;
    let mut md5 = Md5::new();
    let mut xxh = xxhash_rust::xxh3::Xxh3::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(EngineError::io("read", path))?;
        if n == 0 {
            break;
        }
        md5.update(&buf[..n]);
        xxh.update(&buf[..n]);
    }
    Ok(Digests { md5: hex::encode(md5.finalize()), checksum: format!("{CHECKSUM_PREFIX}{:032x}", xxh.digest128()) })
}

/// MD5 hex digest of a file's whole content (the manifest's `hash`).
pub fn md5_file(path: &Path) -> Result<String> {
    Ok(digest_file(path)?.md5)
}

/// Remove a file if it exists.
pub fn remove_if_exists(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(EngineError::Io { action: "remove", path: path.to_path_buf(), source: e }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_digests_are_remembered_until_the_file_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("t.parquet");
        let tmp = temp_path_for(&target);
        std::fs::write(&tmp, b"first").unwrap();
        let first = commit_rename_hashed(&tmp, &target).unwrap();
        assert_eq!(digest_published(&target).unwrap(), first);
        assert_eq!(first, digest_file(&target).unwrap());
        // Replaced by rename (a new inode): the new content's digests, not the old ones.
        let tmp = temp_path_for(&target);
        std::fs::write(&tmp, b"other").unwrap();
        std::fs::rename(&tmp, &target).unwrap();
        let second = digest_published(&target).unwrap();
        assert_ne!(second, first);
        assert_eq!(second, digest_file(&target).unwrap());
    }

    #[test]
    fn temp_names_are_hidden_unique_and_recognised() {
        let a = temp_path_for(Path::new("/x/data/orders.parquet"));
        let b = temp_path_for(Path::new("/x/data/orders.parquet"));
        assert_ne!(a, b);
        let name = a.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with(".orders.parquet."), "{name}");
        assert!(is_temporary_name(&name));
        assert!(!is_temporary_name("orders.parquet"));
    }

    #[test]
    fn md5_matches_known_digest() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"hello").unwrap();
        assert_eq!(md5_file(&p).unwrap(), "5d41402abc4b2a76b9719d911017c592");
        // The XXH3-128 of "hello" as the reference implementation prints it (xxhsum -H2).
        assert_eq!(digest_file(&p).unwrap().checksum, "xxh3-128:b5e9c1ad071b3e7fc779cfaa5e523818");
    }

    #[test]
    fn commit_rename_replaces_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("t.parquet");
        std::fs::write(&target, b"old").unwrap();
        let tmp = temp_path_for(&target);
        std::fs::write(&tmp, b"new").unwrap();
        commit_rename(&tmp, &target).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"new");
        assert!(!tmp.exists());
    }
}
