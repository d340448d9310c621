//! Metric definitions from what an admin uploads (spec §6.2): one YAML document, or a
//! `.tar.gz` / `.tar` of a directory tree of them, where a file's directory is the
//! category of entries that name none.
//!
//! Everything is read before anything is stored, so an import is all or nothing, and every
//! refusal names the file, the entry and the key.

use agnes_core::metric::{definitions_from_document, MetricDefinition, SOURCE_YAML};
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::io::Read;

/// The largest upload accepted.
pub const MAX_UPLOAD_BYTES: usize = 16 * 1024 * 1024;
/// The most an archive may unpack to, and the largest file in it: archives are read in
/// memory, and a small gzip can claim gigabytes.
const MAX_UNPACKED_BYTES: u64 = 64 * 1024 * 1024;
const MAX_FILE_BYTES: u64 = 1024 * 1024;
const MAX_FILES: usize = 10_000;

/// What an upload held.
#[derive(Debug, Default)]
pub struct Imported {
    pub definitions: Vec<MetricDefinition>,
    /// YAML files read.
    pub files: usize,
    /// Index files (`metrics.yml` listing categories), which describe rather than define.
    pub skipped: Vec<String>,
    /// Entries of an archive that are not YAML files (or are hidden).
    pub ignored: Vec<String>,
}

/// Read an upload: an archive by its magic bytes, else one YAML document whose entries
/// must each name their category.
pub fn read_upload(bytes: &[u8]) -> Result<Imported, String> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        return read_tar(flate2::read::GzDecoder::new(bytes));
    }
    if bytes.len() > 262 && &bytes[257..262] == b"ustar" {
        return read_tar(bytes);
    }
    let text = std::str::from_utf8(bytes).map_err(|_| "the file is neither UTF-8 YAML nor a .tar.gz archive")?;
    let doc = parse_yaml(text)?;
    let definitions = definitions_from_document(doc, None, SOURCE_YAML)?;
    Ok(Imported { definitions, files: 1, ..Imported::default() })
}

/// Read YAML files given by their path relative to the tree's root.
pub fn read_files(files: Vec<(String, String)>) -> Result<Imported, String> {
    let mut out = Imported::default();
    let mut seen: HashMap<String, String> = HashMap::new();
    for (path, text) in files {
        let doc = parse_yaml(&text).map_err(|e| format!("{path}: {e}"))?;
        if is_index(&doc) {
            out.skipped.push(path);
            continue;
        }
        out.files += 1;
        let category =
            std::path::Path::new(&path).parent().and_then(|p| p.file_name()).map(|c| c.to_string_lossy().into_owned());
        for d in definitions_from_document(doc, category.as_deref(), SOURCE_YAML).map_err(|e| format!("{path}: {e}"))? {
            if let Some(first) = seen.insert(d.id.clone(), path.clone()) {
                return Err(format!("metric {} is defined twice: in {first} and in {path}", d.id));
            }
            out.definitions.push(d);
        }
    }
    if out.definitions.is_empty() {
        return Err(format!("no metric definitions found ({} YAML files read)", out.files));
    }
    Ok(out)
}

/// Whether `name` is a file the tree import reads.
pub fn is_yaml_name(name: &str) -> bool {
    !name.starts_with('.') && (name.ends_with(".yml") || name.ends_with(".yaml"))
}

/// One YAML document as JSON. An empty or comment-only text is `Null`, which the reader
/// refuses as empty.
pub fn parse_yaml(text: &str) -> Result<Value, String> {
    let has_content =
        text.lines().map(str::trim).any(|l| !l.is_empty() && !l.starts_with('#') && l != "---" && l != "...");
    if !has_content {
        return Ok(Value::Null);
    }
    serde_norway::from_str(text).map_err(|e| format!("invalid YAML: {e}"))
}

/// The original's `metrics.yml` lists categories and their files; it defines nothing.
fn is_index(doc: &Value) -> bool {
    doc.get("categories").is_some() && doc.get("name").is_none()
}

fn read_tar(reader: impl Read) -> Result<Imported, String> {
    let mut archive = tar::Archive::new(reader);
    let mut files = Vec::new();
    let mut ignored = Vec::new();
    let mut unpacked: u64 = 0;
    let bad = |e: std::io::Error| format!("the archive cannot be read: {e}");
    for entry in archive.entries().map_err(bad)? {
        let entry = entry.map_err(bad)?;
        let path = entry.path().map_err(bad)?.to_string_lossy().trim_start_matches("./").to_string();
        let kind = entry.header().entry_type();
        if kind.is_dir() || path.is_empty() {
            continue;
        }
        let hidden = path.split('/').any(|c| c.starts_with('.'));
        let name = path.rsplit('/').next().unwrap_or_default();
        if !kind.is_file() || hidden || !is_yaml_name(name) {
            ignored.push(path);
            continue;
        }
        if files.len() == MAX_FILES {
            return Err(format!("the archive holds more than {MAX_FILES} YAML files"));
        }
        let mut bytes = Vec::new();
        entry.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes).map_err(bad)?;
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(format!("{path}: larger than {} KiB", MAX_FILE_BYTES >> 10));
        }
        unpacked += bytes.len() as u64;
        if unpacked > MAX_UNPACKED_BYTES {
            return Err(format!("the archive unpacks to more than {} MiB", MAX_UNPACKED_BYTES >> 20));
        }
        let text = String::from_utf8(bytes).map_err(|_| format!("{path}: not UTF-8 text"))?;
        files.push((path, text));
    }
    let mut out = read_files(files)?;
    out.ignored = ignored;
    Ok(out)
}

/// The problems of one metric against the registry's table names.
pub fn problems(d: &MetricDefinition, registry: &BTreeSet<String>) -> Vec<String> {
    let mut out = Vec::new();
    for t in d.named_tables() {
        if !registry.contains(t) {
            out.push(format!("table '{t}' is not in the registry"));
        }
    }
    let texts = d.sql_texts();
    if texts.is_empty() {
        out.push("has no SQL".into());
    }
    for (label, sql) in texts {
        match agnes_engine::sql_refs::tables_read(sql) {
            Err(e) => out.push(format!("{label} does not parse: {e}")),
            Ok(read) => out.extend(
                read.into_iter()
                    .filter(|t| !registry.contains(t))
                    .map(|t| format!("{label} reads '{t}', which is not in the registry")),
            ),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_gz(files: &[(&str, &str)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
        for (path, text) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(text.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append_data(&mut header, path, text.as_bytes()).unwrap();
        }
        builder.into_inner().unwrap().finish().unwrap()
    }

    #[test]
    fn one_document_needs_categories() {
        let got = read_upload(b"- name: a\n  category: c\n  sql: SELECT 1\n- name: b\n  category: c\n").unwrap();
        assert_eq!(got.definitions.len(), 2);
        assert!(read_upload(b"name: a\n").unwrap_err().contains("missing 'category'"));
        assert!(read_upload(b"").unwrap_err().contains("empty"));
        assert!(read_upload(b"# only a comment\n").unwrap_err().contains("empty"));
        assert!(read_upload(b"name: [unclosed\n").unwrap_err().contains("invalid YAML"));
        assert!(read_upload(&[0xff, 0xfe, 0x00]).unwrap_err().contains("neither"));
    }

    #[test]
    fn a_tree_takes_categories_from_directories() {
        let archive = tar_gz(&[
            ("./metrics.yml", "version: 1\ncategories:\n  revenue: {folder: revenue}\n"),
            ("./revenue/mrr.yml", "name: mrr\nsql: SELECT 1\n"),
            ("./revenue/more.yaml", "- name: arr\n- name: churn\n  category: retention\n"),
            ("./README.md", "# not a metric"),
            ("./revenue/._mrr.yml", "junk"),
        ]);
        let got = read_upload(&archive).unwrap();
        let mut ids: Vec<_> = got.definitions.iter().map(|d| d.id.as_str()).collect();
        ids.sort();
        assert_eq!(ids, ["retention/churn", "revenue/arr", "revenue/mrr"]);
        assert_eq!(got.skipped, ["metrics.yml"]);
        assert_eq!(got.ignored, ["README.md", "revenue/._mrr.yml"]);
        assert_eq!(got.files, 2);
    }

    #[test]
    fn a_tree_refuses_what_it_cannot_place() {
        let loose = tar_gz(&[("mrr.yml", "name: mrr\n")]);
        assert!(read_upload(&loose).unwrap_err().contains("mrr.yml: missing 'category'"));
        let twice = tar_gz(&[("a/x.yml", "name: x\n"), ("b/y.yml", "name: x\ncategory: a\n")]);
        assert!(read_upload(&twice).unwrap_err().contains("defined twice"));
        let broken = tar_gz(&[("a/x.yml", "name: x\n"), ("a/y.yml", "name: : :\n")]);
        assert!(read_upload(&broken).unwrap_err().starts_with("a/y.yml: invalid YAML"));
        let nothing = tar_gz(&[("README.md", "hi")]);
        assert!(read_upload(&nothing).unwrap_err().contains("no metric definitions"));
        assert!(read_upload(&[0x1f, 0x8b, 1, 2, 3]).unwrap_err().contains("cannot be read"));
    }

    #[test]
    fn problems_are_found_in_tables_and_sql() {
        let registry: BTreeSet<String> = ["orders".to_string()].into();
        let doc = serde_json::json!([
            {"name": "ok", "category": "c", "table": "orders", "sql": "SELECT count(*) FROM orders"},
            {"name": "bad", "category": "c", "table": "subs", "sql": "SELEC 1", "sql_by_x": "SELECT * FROM ghosts"},
            {"name": "empty", "category": "c"},
        ]);
        let defs = agnes_core::metric::definitions_from_document(doc, None, "yaml_import").unwrap();
        assert!(problems(&defs[0], &registry).is_empty());
        let found = problems(&defs[1], &registry);
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found[0].contains("'subs' is not in the registry"));
        assert!(found[1].starts_with("sql does not parse"));
        assert!(found[2].contains("sql_by_x reads 'ghosts'"));
        assert_eq!(problems(&defs[2], &registry), ["has no SQL"]);
    }
}
