//! The Jira source's raw store, the truth the six tables are built from:
//!
//! * `issues/<KEY>.json`: each issue as Jira last answered it (with its remote links),
//!   replaced atomically; a deleted issue has none;
//! * `attachments/<PROJECT>/<KEY>/<id>_<name>`: downloaded attachments;
//! * `webhook_events/<ts>_<event>.json`: every accepted delivery, as received;
//! * `journal`: one line `<seq> <KEY>` per change of an issue, appended and fsynced. A
//!   table's sync remembers the last `seq` it applied (its `source_version`) and next
//!   applies the issues named after it.

use crate::ConnectorError;
use agnes_engine::fsutil::{commit_rename, temp_path_for};
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};

/// `^[A-Z][A-Z0-9]{0,31}-[0-9]{1,12}$`: the contract's issue key, also a safe file name.
pub fn is_issue_key(key: &str) -> bool {
    let Some((project, number)) = key.split_once('-') else { return false };
    let mut p = project.bytes();
    p.next().is_some_and(|b| b.is_ascii_uppercase())
        && project.len() <= 32
        && p.all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        && (1..=12).contains(&number.len())
        && number.bytes().all(|b| b.is_ascii_digit())
}

fn io(what: &str, path: &Path, e: std::io::Error) -> ConnectorError {
    ConnectorError::Source(format!("cannot {what} {}: {e}", path.display()))
}

#[derive(Debug, Clone)]
pub struct RawStore {
    dir: PathBuf,
}

impl RawStore {
    pub fn new(dir: impl Into<PathBuf>) -> RawStore {
        RawStore { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn issue_path(&self, key: &str) -> PathBuf {
        self.dir.join("issues").join(format!("{key}.json"))
    }

    /// The issue as last saved, if any.
    pub fn load(&self, key: &str) -> Result<Option<Value>, ConnectorError> {
        let path = self.issue_path(key);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| ConnectorError::Source(format!("{} is not JSON: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("read", &path, e)),
        }
    }

    /// Replace the issue's raw JSON atomically.
    pub fn save(&self, key: &str, issue: &Value) -> Result<(), ConnectorError> {
        let path = self.issue_path(key);
        write_atomically(&path, &serde_json::to_vec(issue).expect("JSON serializes"))
    }

    /// Forget a deleted issue: its JSON and its attachments.
    pub fn remove(&self, key: &str) -> Result<(), ConnectorError> {
        let path = self.issue_path(key);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("remove", &path, e)),
        }
        let project = key.split('-').next().unwrap_or_default();
        let attachments = self.dir.join("attachments").join(project).join(key);
        if attachments.exists() {
            std::fs::remove_dir_all(&attachments).map_err(|e| io("remove", &attachments, e))?;
        }
        Ok(())
    }

    /// Every issue the store holds.
    pub fn keys(&self) -> Result<Vec<String>, ConnectorError> {
        let dir = self.dir.join("issues");
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io("list", &dir, e)),
        };
        let mut keys: Vec<String> = entries
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.strip_suffix(".json").map(String::from))
            .filter(|k| is_issue_key(k))
            .collect();
        keys.sort();
        Ok(keys)
    }

    /// Where an attachment of an issue is kept, relative to the store and absolute.
    pub fn attachment_path(&self, key: &str, id: &str, filename: &str) -> (String, PathBuf) {
        let project = key.split('-').next().unwrap_or_default();
        // The name as Jira has it, made safe for a path: no separators, no leading dot.
        let safe: String = filename
            .chars()
            .map(|c| if c == '/' || c == '\\' || c.is_control() { '_' } else { c })
            .collect::<String>()
            .trim_start_matches('.')
            .chars()
            .take(150)
            .collect();
        let id: String = id.chars().filter(char::is_ascii_alphanumeric).collect();
        let relative = format!("attachments/{project}/{key}/{id}_{safe}");
        let absolute = self.dir.join(&relative);
        (relative, absolute)
    }

    /// Keep an accepted webhook delivery as received: `webhook_events/<ts>_<event>.json`.
    pub fn log_event(&self, event: &str, body: &[u8]) -> Result<PathBuf, ConnectorError> {
        let name: String =
            event.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).take(64).collect();
        let ts = chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ");
        let path = self.dir.join("webhook_events").join(format!("{ts}_{name}.json"));
        write_atomically(&path, body)?;
        Ok(path)
    }

    fn journal(&self) -> PathBuf {
        self.dir.join("journal")
    }

    /// The journal's lines as (seq, key), and the length of its complete lines: a torn
    /// last line (a crash mid-append) is not an entry.
    fn read_journal(&self) -> Result<(Vec<(u64, String)>, usize), ConnectorError> {
        let path = self.journal();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
            Err(e) => return Err(io("read", &path, e)),
        };
        let complete = text.rfind('\n').map(|end| end + 1).unwrap_or(0);
        let entries = text[..complete]
            .lines()
            .filter_map(|line| {
                let (seq, key) = line.split_once(' ')?;
                Some((seq.parse().ok()?, key.to_string()))
            })
            .collect();
        Ok((entries, complete))
    }

    fn entries(&self) -> Result<Vec<(u64, String)>, ConnectorError> {
        Ok(self.read_journal()?.0)
    }

    /// Record that `keys` changed; answers the last `seq` written. Durable on return.
    pub fn record_changes(&self, keys: &[String]) -> Result<u64, ConnectorError> {
        let (entries, complete) = self.read_journal()?;
        let mut seq = entries.last().map(|(s, _)| *s).unwrap_or(0);
        if keys.is_empty() {
            return Ok(seq);
        }
        let mut lines = String::new();
        for key in keys {
            seq += 1;
            lines.push_str(&format!("{seq} {key}\n"));
        }
        let path = self.journal();
        std::fs::create_dir_all(&self.dir).map_err(|e| io("create", &self.dir, e))?;
        let mut file =
            std::fs::OpenOptions::new().create(true).append(true).open(&path).map_err(|e| io("open", &path, e))?;
        // A torn line left by a crash goes before anything follows it.
        if file.metadata().map_err(|e| io("stat", &path, e))?.len() > complete as u64 {
            file.set_len(complete as u64).map_err(|e| io("truncate", &path, e))?;
        }
        file.write_all(lines.as_bytes()).and_then(|_| file.sync_all()).map_err(|e| io("append to", &path, e))?;
        Ok(seq)
    }

    /// Drop the entries every table has applied (`seq <= applied`), keeping the last one
    /// so sequence numbers go on from it. Only the journal's one writer may call this.
    pub fn compact(&self, applied: u64) -> Result<(), ConnectorError> {
        let (entries, _) = self.read_journal()?;
        let first_kept = entries.iter().position(|(s, _)| *s > applied).unwrap_or(entries.len().saturating_sub(1));
        if first_kept == 0 {
            return Ok(());
        }
        let lines: String = entries[first_kept..].iter().map(|(s, k)| format!("{s} {k}\n")).collect();
        write_atomically(&self.journal(), lines.as_bytes())
    }

    /// The last `seq` in the journal (0: none yet).
    pub fn last_seq(&self) -> Result<u64, ConnectorError> {
        Ok(self.entries()?.last().map(|(s, _)| *s).unwrap_or(0))
    }

    /// The issues changed after `seq` (each once) and the last `seq` now.
    pub fn changed_since(&self, seq: u64) -> Result<(Vec<String>, u64), ConnectorError> {
        let entries = self.entries()?;
        let last = entries.last().map(|(s, _)| *s).unwrap_or(0);
        let mut keys: Vec<String> = entries.into_iter().filter(|(s, _)| *s > seq).map(|(_, k)| k).collect();
        keys.sort();
        keys.dedup();
        Ok((keys, last))
    }
}

/// Write `bytes` to `path` through a hidden temporary, fsynced, renamed into place.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ConnectorError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| io("create", dir, e))?;
    let tmp = temp_path_for(path);
    std::fs::write(&tmp, bytes).map_err(|e| io("write", &tmp, e))?;
    commit_rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        ConnectorError::Engine(e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_keys_follow_the_contract() {
        for ok in ["SUP-1", "A-123456789012", "AB12-7", "ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEF-1"] {
            assert!(is_issue_key(ok), "{ok}");
        }
        for bad in [
            "sup-1",
            "1A-2",
            "SUP-",
            "SUP-1234567890123",
            "SUP_1",
            "SUP-1/../x",
            "-1",
            "SUP",
            "ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFG-1",
        ] {
            assert!(!is_issue_key(bad), "{bad}");
        }
    }

    #[test]
    fn the_journal_names_what_changed_after_a_sequence() {
        let dir = tempfile::tempdir().unwrap();
        let raw = RawStore::new(dir.path());
        assert_eq!(raw.changed_since(0).unwrap(), (vec![], 0));
        assert_eq!(raw.record_changes(&["SUP-2".into(), "SUP-1".into()]).unwrap(), 2);
        assert_eq!(raw.record_changes(&["SUP-2".into()]).unwrap(), 3);
        assert_eq!(raw.changed_since(0).unwrap(), (vec!["SUP-1".into(), "SUP-2".into()], 3));
        assert_eq!(raw.changed_since(2).unwrap(), (vec!["SUP-2".into()], 3));
        // A torn append (no newline) is not an entry.
        std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join("journal"))
            .unwrap()
            .write_all(b"4 SUP-9")
            .unwrap();
        assert_eq!(raw.changed_since(3).unwrap(), (vec![], 3));
        assert_eq!(raw.record_changes(&["SUP-3".into()]).unwrap(), 4, "the torn line is cut first");
        assert_eq!(raw.changed_since(3).unwrap(), (vec!["SUP-3".into()], 4));

        raw.save("SUP-1", &serde_json::json!({"key": "SUP-1"})).unwrap();
        assert_eq!(raw.keys().unwrap(), ["SUP-1"]);
        assert_eq!(raw.load("SUP-1").unwrap().unwrap()["key"], "SUP-1");
        raw.remove("SUP-1").unwrap();
        assert_eq!(raw.load("SUP-1").unwrap(), None);
        // Compacted below what every table applied: the rest, and the numbering, remain.
        raw.compact(3).unwrap();
        assert_eq!(raw.changed_since(3).unwrap(), (vec!["SUP-3".into()], 4));
        raw.compact(4).unwrap();
        assert_eq!(std::fs::read_to_string(dir.path().join("journal")).unwrap(), "4 SUP-3\n");
        assert_eq!(raw.record_changes(&["SUP-4".into()]).unwrap(), 5);
        assert_eq!(raw.changed_since(4).unwrap(), (vec!["SUP-4".into()], 5));

        let (relative, _) = raw.attachment_path("SUP-1", "100", "../../etc/passwd");
        assert_eq!(relative, "attachments/SUP/SUP-1/100__.._etc_passwd", "no separator, no leading dot");
    }
}
