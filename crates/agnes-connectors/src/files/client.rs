//! Resolving a table's path or glob to files under the root, refusing escapes.

use crate::ConnectorError;
use std::path::{Component, Path, PathBuf};

pub(crate) fn is_glob(pattern: &str) -> bool {
    pattern.contains(['*', '?', '['])
}

/// The files `pattern` names under `root`, sorted. Absolute paths, `..` components and
/// symlinks that lead outside the root are refused; a pattern matching nothing is an
/// error naming the pattern.
pub(crate) fn resolve(root: &Path, pattern: &str) -> Result<Vec<PathBuf>, ConnectorError> {
    let pattern = pattern.trim();
    if pattern.is_empty() {
        return Err(ConnectorError::Config(
            "source_table is empty: give a path or glob relative to the files root".into(),
        ));
    }
    let rel = Path::new(pattern);
    if rel.is_absolute() || rel.components().any(|c| !matches!(c, Component::Normal(_) | Component::CurDir)) {
        return Err(ConnectorError::Config(format!(
            "source_table {pattern:?} must be a path relative to the files root, without '..'"
        )));
    }
    let root = root
        .canonicalize()
        .map_err(|e| ConnectorError::Config(format!("files root {} is not readable: {e}", root.display())))?;
    let candidates = if is_glob(pattern) {
        let matcher = globset::GlobBuilder::new(pattern)
            .literal_separator(true)
            .build()
            .map_err(|e| ConnectorError::Config(format!("invalid glob {pattern:?}: {e}")))?
            .compile_matcher();
        walkdir::WalkDir::new(&root)
            .follow_links(false)
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| !e.file_type().is_dir())
            .filter(|e| e.path().strip_prefix(&root).map(|r| matcher.is_match(r)).unwrap_or(false))
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .map(|e| e.into_path())
            .collect()
    } else {
        vec![root.join(rel)]
    };
    let mut files = Vec::with_capacity(candidates.len());
    for path in candidates {
        let real = match path.canonicalize() {
            Ok(p) => p,
            Err(_) if !is_glob(pattern) => {
                return Err(ConnectorError::Source(format!("file {pattern:?} not found under the files root")));
            }
            Err(_) => continue,
        };
        if !real.starts_with(&root) {
            return Err(ConnectorError::Config(format!("{} leads outside the files root", path.display())));
        }
        if real.is_file() {
            files.push(real);
        }
    }
    files.sort();
    files.dedup();
    if files.is_empty() {
        return Err(ConnectorError::Source(format!("no files match {pattern:?} under the files root")));
    }
    Ok(files)
}

/// A file under the root that the files connector can read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveredFile {
    /// Relative to the root: what `source_table` takes.
    pub path: String,
    pub format: &'static str,
    pub size_bytes: u64,
}

/// Every readable file under `root` (hidden files and directories skipped), sorted.
pub fn discover(root: &Path) -> Vec<DiscoveredFile> {
    let mut out: Vec<DiscoveredFile> = walkdir::WalkDir::new(root)
        .follow_links(false)
        .max_depth(8)
        .into_iter()
        .filter_entry(|e| e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.'))
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .filter_map(|e| {
            let rel = e.path().strip_prefix(root).ok()?.to_string_lossy().into_owned();
            let format = match super::FileFormat::from_path(&rel)? {
                super::FileFormat::Csv => "csv",
                super::FileFormat::Tsv => "tsv",
                super::FileFormat::Json => "json",
                super::FileFormat::Parquet => "parquet",
            };
            Some(DiscoveredFile { path: rel, format, size_bytes: e.metadata().map(|m| m.len()).unwrap_or(0) })
        })
        .collect();
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}
