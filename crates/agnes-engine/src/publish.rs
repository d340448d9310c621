//! Atomic publish of query results as parquet (DESIGN decision 5).
//!
//! The result is written to a hidden temporary file beside the target, fsynced and
//! renamed into place; the MD5, row count and size are then taken from the published
//! file itself. A failure at any step removes the temporary and leaves the previous file
//! (and whatever describes it) untouched.

use crate::fsutil::{commit_rename_hashed, digest_file, digest_published, remove_if_exists, temp_path_for, Digests};
use crate::table_data::{layer, layered_select, BASE_PART, DELTA_PART};
use crate::{EngineError, Result};
use agnes_core::ident::{quote_ident, quote_literal};
use duckdb::Connection;
use std::path::{Path, PathBuf};

/// A parquet file as published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedFile {
    pub path: PathBuf,
    pub md5: String,
    /// What `agnes pull` verifies (see [`Digests::checksum`]).
    pub checksum: String,
    pub rows: i64,
    pub size_bytes: i64,
}

/// One part of a partitioned table: `key` is the file stem (`2024_03`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedPart {
    pub key: String,
    pub file: PublishedFile,
}

/// Run `select_sql` and publish its result at `target`.
pub fn publish_query(conn: &Connection, select_sql: &str, target: &Path) -> Result<PublishedFile> {
    let dir = target.parent().ok_or_else(|| EngineError::Invalid(format!("no parent: {}", target.display())))?;
    std::fs::create_dir_all(dir).map_err(EngineError::io("create directory", dir))?;
    let tmp = temp_path_for(target);
    let result = copy_to_parquet(conn, select_sql, &tmp).and_then(|()| commit_rename_hashed(&tmp, target));
    match result {
        Ok(digests) => describe_with_digests(conn, target, digests),
        Err(e) => {
            let _ = remove_if_exists(&tmp);
            Err(e)
        }
    }
}

/// Publish a parquet file written elsewhere (a connector's own writer) at `tmp`: renamed
/// onto `target` atomically, then described. `tmp` is removed when that fails.
pub fn publish_written(conn: &Connection, tmp: &Path, target: &Path) -> Result<PublishedFile> {
    match commit_rename_hashed(tmp, target) {
        Ok(digests) => describe_with_digests(conn, target, digests),
        Err(e) => {
            let _ = remove_if_exists(tmp);
            Err(e)
        }
    }
}

fn copy_to_parquet(conn: &Connection, select_sql: &str, dest: &Path) -> Result<()> {
    conn.execute_batch(&format!("COPY ({select_sql}) TO {} (FORMAT PARQUET)", quote_literal(&dest.to_string_lossy())))?;
    Ok(())
}

/// Digests, rows and size of a parquet file, taken from the file.
pub fn describe(conn: &Connection, path: &Path) -> Result<PublishedFile> {
    describe_with_digests(conn, path, digest_published(path)?)
}

fn describe_with_digests(conn: &Connection, path: &Path, digests: Digests) -> Result<PublishedFile> {
    let size_bytes = std::fs::metadata(path).map_err(EngineError::io("stat", path))?.len() as i64;
    let rows: i64 = conn.query_row(
        &format!(
            "SELECT COALESCE(SUM(num_rows), 0)::BIGINT FROM parquet_file_metadata({})",
            quote_literal(&path.to_string_lossy())
        ),
        [],
        |r| r.get(0),
    )?;
    Ok(PublishedFile { path: path.to_path_buf(), md5: digests.md5, checksum: digests.checksum, rows, size_bytes })
}

/// Run `select_sql` and publish one parquet per value of `partition_expr` under
/// `target_dir` as `<key>.parquet`. Each part is replaced atomically; parts whose key no
/// longer occurs are removed after every new part is in place. A NULL key becomes the
/// part `__null__`.
pub fn publish_partitioned(
    conn: &Connection,
    select_sql: &str,
    partition_expr: &str,
    target_dir: &Path,
) -> Result<Vec<PublishedPart>> {
    publish_parts(conn, &parted(select_sql, partition_expr), target_dir, None)
}

/// `select_sql` with each row's part key as `__agnes_part`.
fn parted(select_sql: &str, partition_expr: &str) -> String {
    format!("SELECT *, ({partition_expr})::VARCHAR AS __agnes_part FROM ({select_sql})")
}

/// Publish a table in parts from `rows`: a SELECT of its columns plus `__agnes_part`, the
/// part each row belongs in (not written). Every part is replaced atomically and parts
/// `rows` no longer fills are removed.
pub fn publish_in_parts(conn: &Connection, rows: &str, target_dir: &Path) -> Result<Vec<PublishedPart>> {
    publish_parts(conn, rows, target_dir, None)
}

/// Replace, in the table published in parts under `target_dir`, every row whose `key`
/// column holds one of `keys` by `rows` (as for [`publish_in_parts`]): the parts holding
/// one of `keys` or receiving a row are rewritten, a part left without rows is removed,
/// the others stay as they are (same file, same hash). A key may move between parts, or
/// have no rows any more. Returns every part of the table.
pub fn replace_in_parts(
    conn: &Connection,
    rows: &str,
    key: &str,
    keys: &[String],
    target_dir: &Path,
) -> Result<Vec<PublishedPart>> {
    std::fs::create_dir_all(target_dir).map_err(EngineError::io("create directory", target_dir))?;
    conn.execute_batch(&format!(
        "CREATE OR REPLACE TEMP TABLE __agnes_rows AS {rows}; CREATE OR REPLACE TEMP TABLE __agnes_keys (k VARCHAR)"
    ))?;
    for chunk in keys.chunks(1000) {
        let values = chunk.iter().map(|k| format!("({})", quote_literal(k))).collect::<Vec<_>>().join(", ");
        conn.execute_batch(&format!("INSERT INTO __agnes_keys VALUES {values}"))?;
    }
    let mut affected: std::collections::BTreeSet<String> = {
        let mut stmt = conn.prepare("SELECT DISTINCT __agnes_part FROM __agnes_rows")?;
        let parts = stmt.query_map([], |r| r.get::<_, Option<String>>(0))?;
        parts
            .map(|k| k.map_err(EngineError::from).and_then(|k| k.map_or(Ok("__null__".to_string()), |v| part_key(&v))))
            .collect::<Result<_>>()?
    };
    let column = quote_ident(key);
    let mut kept = Vec::new();
    for (stem, path) in published_parts(target_dir)? {
        let file = quote_literal(&path.to_string_lossy());
        let holds: bool = conn.query_row(
            &format!(
                "SELECT EXISTS (SELECT 1 FROM read_parquet({file}) WHERE {column} IN (SELECT k FROM __agnes_keys))"
            ),
            [],
            |r| r.get(0),
        )?;
        if holds || affected.contains(&stem) {
            kept.push(format!(
                "SELECT *, {} AS __agnes_part FROM read_parquet({file}) WHERE {column} NOT IN (SELECT k FROM __agnes_keys)",
                quote_literal(&stem)
            ));
            affected.insert(stem);
        }
    }
    kept.push("SELECT * FROM __agnes_rows".into());
    let result = publish_parts(conn, &kept.join(" UNION ALL BY NAME "), target_dir, Some(&affected));
    conn.execute_batch("DROP TABLE IF EXISTS __agnes_rows; DROP TABLE IF EXISTS __agnes_keys")?;
    result
}

/// The published parts in `dir`: their keys and files (hidden temporaries left out).
fn published_parts(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    Ok(std::fs::read_dir(dir)
        .map_err(EngineError::io("list", dir))?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let stem = name.strip_suffix(".parquet").filter(|_| !name.starts_with('.'))?.to_string();
            Some((stem, e.path()))
        })
        .collect())
}

/// Merge `changes` (a SELECT of new and changed rows) into the partitioned table in
/// `target_dir` on `key`: every part holding a changed key, and every part a changed row
/// falls in, is rewritten as its rows whose key `changes` lacks plus the changed rows of
/// its period; the other parts stay as they are (same file, same hash). Returns every
/// part of the table.
pub fn merge_partitioned(
    conn: &Connection,
    changes: &str,
    partition_expr: &str,
    target_dir: &Path,
    key: &[String],
) -> Result<Vec<PublishedPart>> {
    if key.is_empty() {
        return Err(EngineError::Invalid("merging into partitions needs a primary key".into()));
    }
    std::fs::create_dir_all(target_dir).map_err(EngineError::io("create directory", target_dir))?;
    conn.execute_batch(&format!("CREATE OR REPLACE TEMP TABLE __agnes_changes AS {changes}"))?;
    let same_key = key
        .iter()
        .map(|k| format!("d.{0} IS NOT DISTINCT FROM o.{0}", quote_ident(k)))
        .collect::<Vec<_>>()
        .join(" AND ");
    let mut affected: std::collections::BTreeSet<String> = {
        let mut stmt = conn.prepare(&format!("SELECT DISTINCT ({partition_expr})::VARCHAR FROM __agnes_changes"))?;
        let keys = stmt.query_map([], |r| r.get::<_, Option<String>>(0))?;
        keys.map(|k| k.map_err(EngineError::from).and_then(|k| k.map_or(Ok("__null__".to_string()), |v| part_key(&v))))
            .collect::<Result<_>>()?
    };
    let existing = published_parts(target_dir)?;
    for (stem, path) in &existing {
        if affected.contains(stem) {
            continue;
        }
        let holds: bool = conn.query_row(
            &format!(
                "SELECT EXISTS (SELECT 1 FROM read_parquet({}) AS o WHERE EXISTS (SELECT 1 FROM __agnes_changes AS d WHERE {same_key}))",
                quote_literal(&path.to_string_lossy())
            ),
            [],
            |r| r.get(0),
        )?;
        if holds {
            affected.insert(stem.clone());
        }
    }
    let rewritten: Vec<&PathBuf> = existing.iter().filter(|(k, _)| affected.contains(k)).map(|(_, p)| p).collect();
    let kept = if rewritten.is_empty() {
        String::new()
    } else {
        let files = rewritten.iter().map(|p| quote_literal(&p.to_string_lossy())).collect::<Vec<_>>().join(", ");
        format!(
            "SELECT o.* FROM read_parquet([{files}], union_by_name = true) AS o \
             WHERE NOT EXISTS (SELECT 1 FROM __agnes_changes AS d WHERE {same_key}) UNION ALL BY NAME "
        )
    };
    let select = format!("{kept}SELECT * FROM __agnes_changes");
    let result = publish_parts(conn, &parted(&select, partition_expr), target_dir, Some(&affected));
    conn.execute_batch("DROP TABLE IF EXISTS __agnes_changes")?;
    result
}

/// Stage `parted_sql` (rows with their `__agnes_part`) by part and publish the parts; the
/// parts `scope` names (all, when `None`) that the result no longer has are removed. Every
/// part in the directory is returned.
fn publish_parts(
    conn: &Connection,
    parted_sql: &str,
    target_dir: &Path,
    scope: Option<&std::collections::BTreeSet<String>>,
) -> Result<Vec<PublishedPart>> {
    std::fs::create_dir_all(target_dir).map_err(EngineError::io("create directory", target_dir))?;
    let staging = target_dir.with_file_name(format!(
        ".{}.{}.tmpdir",
        target_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&staging);
    let result = stage_and_publish(conn, parted_sql, target_dir, &staging, scope);
    let _ = std::fs::remove_dir_all(&staging);
    result
}

fn stage_and_publish(
    conn: &Connection,
    parted_sql: &str,
    target_dir: &Path,
    staging: &Path,
    scope: Option<&std::collections::BTreeSet<String>>,
) -> Result<Vec<PublishedPart>> {
    conn.execute_batch(&format!(
        "COPY ({parted_sql}) TO {} \
         (FORMAT PARQUET, PARTITION_BY (__agnes_part), WRITE_PARTITION_COLUMNS false)",
        quote_literal(&staging.to_string_lossy())
    ))?;
    let mut staged: Vec<(String, Vec<PathBuf>)> = Vec::new();
    if staging.exists() {
        for entry in std::fs::read_dir(staging).map_err(EngineError::io("list", staging))? {
            let entry = entry.map_err(EngineError::io("list", staging))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(value) = name.strip_prefix("__agnes_part=") else {
                continue;
            };
            let key = part_key(value)?;
            let mut files: Vec<PathBuf> = std::fs::read_dir(entry.path())
                .map_err(EngineError::io("list", entry.path()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
                .collect();
            files.sort();
            staged.push((key, files));
        }
    }
    staged.sort();

    let mut parts = Vec::with_capacity(staged.len());
    for (key, files) in staged {
        let target = target_dir.join(format!("{key}.parquet"));
        let file = if files.len() == 1 && target.is_file() && digest_file(&files[0])? == digest_published(&target)? {
            // The same bytes as published: the part stays as it is (not rewritten, so
            // nothing that reads it, and no analyst, sees a change).
            describe(conn, &target)?
        } else if files.len() == 1 {
            let tmp = temp_path_for(&target);
            std::fs::rename(&files[0], &tmp).map_err(EngineError::io("stage part", &tmp))?;
            match commit_rename_hashed(&tmp, &target) {
                Ok(digests) => describe_with_digests(conn, &target, digests)?,
                Err(e) => {
                    let _ = remove_if_exists(&tmp);
                    return Err(e);
                }
            }
        } else {
            let list = files.iter().map(|p| quote_literal(&p.to_string_lossy())).collect::<Vec<_>>().join(", ");
            publish_query(conn, &format!("SELECT * FROM read_parquet([{list}])"), &target)?
        };
        parts.push(PublishedPart { key, file });
    }

    let written: std::collections::HashSet<String> = parts.iter().map(|p| p.key.clone()).collect();
    for entry in std::fs::read_dir(target_dir).map_err(EngineError::io("list", target_dir))?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".parquet").filter(|_| !name.starts_with('.')) else { continue };
        if written.contains(stem) {
            continue;
        }
        if scope.is_none_or(|s| s.contains(stem)) {
            remove_if_exists(&entry.path())?;
        } else {
            parts.push(PublishedPart { key: stem.to_string(), file: describe(conn, &entry.path())? });
        }
    }
    crate::fsutil::fsync_dir(target_dir)?;
    parts.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(parts)
}

/// The share of the base's rows the delta of a layered table may hold before a sync
/// compacts it into the base. Every read of a layered table builds a hash of the delta's
/// keys and probes it with every base row; a delta under a tenth of the base keeps that a
/// small part of the read, and at 1 % changed rows per sync the base is rewritten about
/// every tenth sync.
pub const COMPACT_AT_DELTA_SHARE: f64 = 0.1;

/// Publish `changes` (a parquet file of new and changed rows, written anywhere on the same
/// file system; consumed) into the layered table in `dir`, merged on `key`
/// (see [`crate::table_data`]):
/// - no base yet: `changes` becomes the base, beside an empty delta;
/// - otherwise the delta becomes its rows whose key `changes` lacks, plus `changes`; when
///   it then holds more than [`COMPACT_AT_DELTA_SHARE`] of the base's rows, the merged
///   table becomes the base and the delta is emptied.
///
/// Each file is replaced atomically and a reader is right at every instant: the base is
/// replaced before the delta, and a row in both reads once, from the delta.
pub fn publish_layered(conn: &Connection, changes: &Path, dir: &Path, key: &[String]) -> Result<PublishedLayers> {
    let result = merge_layers(conn, changes, dir, key);
    let _ = remove_if_exists(changes);
    result
}

/// The two parts of a layered table, and how many rows it reads as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedLayers {
    /// `base` then `delta`.
    pub parts: Vec<PublishedPart>,
    pub rows: i64,
}

/// The layers of the table in `dir` as they are, described.
pub fn describe_layered(conn: &Connection, dir: &Path, key: &[String]) -> Result<PublishedLayers> {
    let (base, delta) = (describe(conn, &layer(dir, BASE_PART))?, describe(conn, &layer(dir, DELTA_PART))?);
    layers(conn, key, base, delta)
}

fn layers(conn: &Connection, key: &[String], base: PublishedFile, delta: PublishedFile) -> Result<PublishedLayers> {
    let rows = if delta.rows == 0 {
        base.rows
    } else {
        let merged = layered_select(&base.path.to_string_lossy(), &delta.path.to_string_lossy(), key)?;
        conn.query_row(&format!("SELECT count(*) FROM ({merged})"), [], |r| r.get(0))?
    };
    Ok(PublishedLayers {
        parts: vec![
            PublishedPart { key: BASE_PART.to_string(), file: base },
            PublishedPart { key: DELTA_PART.to_string(), file: delta },
        ],
        rows,
    })
}

fn merge_layers(conn: &Connection, changes: &Path, dir: &Path, key: &[String]) -> Result<PublishedLayers> {
    std::fs::create_dir_all(dir).map_err(EngineError::io("create directory", dir))?;
    let (base, delta) = (layer(dir, BASE_PART), layer(dir, DELTA_PART));
    let read = |p: &Path| format!("SELECT * FROM read_parquet({})", quote_literal(&p.to_string_lossy()));
    let empty = |base: &Path| publish_query(conn, &format!("{} LIMIT 0", read(base)), &delta);
    let (base_file, delta_file) = if !base.is_file() {
        let staged = temp_path_for(&base);
        std::fs::rename(changes, &staged).map_err(EngineError::io("stage", &staged))?;
        let base_file = publish_written(conn, &staged, &base)?;
        (base_file, empty(&base)?)
    } else {
        let merged = if delta.is_file() {
            layered_select(&delta.to_string_lossy(), &changes.to_string_lossy(), key)?
        } else {
            read(changes)
        };
        let delta_file = publish_query(conn, &merged, &delta)?;
        let base_file = describe(conn, &base)?;
        if (delta_file.rows as f64) > COMPACT_AT_DELTA_SHARE * base_file.rows as f64 {
            let whole = layered_select(&base.to_string_lossy(), &delta.to_string_lossy(), key)?;
            let base_file = publish_query(conn, &whole, &base)?;
            (base_file, empty(&base)?)
        } else {
            (base_file, delta_file)
        }
    };
    layers(conn, key, base_file, delta_file)
}

/// Part keys come from `strftime`, so they are digits and underscores; anything else
/// (a partition column with odd values) is refused rather than used as a file name.
fn part_key(value: &str) -> Result<String> {
    if value == "__HIVE_DEFAULT_PARTITION__" || value == "NULL" {
        return Ok("__null__".to_string());
    }
    if !value.is_empty()
        && value.len() <= 64
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        Ok(value.to_string())
    } else {
        Err(EngineError::Invalid(format!("partition key {value:?} is not usable as a file name")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsutil::md5_file;

    fn conn() -> Connection {
        crate::duck::open_in_memory().unwrap()
    }

    #[test]
    fn publishes_and_describes() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("data/t.parquet");
        let c = conn();
        let f = publish_query(&c, "SELECT range AS i FROM range(1000)", &target).unwrap();
        assert_eq!(f.rows, 1000);
        assert_eq!(f.size_bytes as u64, std::fs::metadata(&target).unwrap().len());
        assert_eq!(f.md5, md5_file(&target).unwrap());
        let again = publish_query(&c, "SELECT range AS i FROM range(1000)", &target).unwrap();
        assert_eq!(again.md5, f.md5, "same data must publish the same bytes");
    }

    #[test]
    fn failing_write_keeps_old_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("t.parquet");
        let c = conn();
        let good = publish_query(&c, "SELECT 1 AS a", &target).unwrap();
        // Fails mid-query: the error is raised while rows are being produced.
        let err = publish_query(
            &c,
            "SELECT CASE WHEN range < 5000 THEN range ELSE error('boom') END AS a FROM range(10000)",
            &target,
        );
        assert!(err.is_err());
        assert_eq!(md5_file(&target).unwrap(), good.md5, "old file untouched");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(leftovers.len(), 1, "only the published file remains: {leftovers:?}");
    }

    #[test]
    fn partitioned_publish_replaces_and_prunes_parts() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("data/events");
        let c = conn();
        let sql = "SELECT DATE '2024-01-01' + INTERVAL (range) DAY AS d, range AS v FROM range(70)";
        let parts = publish_partitioned(&c, sql, "strftime(d, '%Y_%m')", &target).unwrap();
        let keys: Vec<_> = parts.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["2024_01", "2024_02", "2024_03"]);
        assert_eq!(parts.iter().map(|p| p.file.rows).sum::<i64>(), 70);
        let cols: Vec<String> = c
            .prepare(&format!("DESCRIBE SELECT * FROM read_parquet('{}')", target.join("2024_01.parquet").display()))
            .unwrap()
            .query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(cols, ["d", "v"], "the partition key column is not written");

        let parts = publish_partitioned(
            &c,
            "SELECT * FROM (VALUES (DATE '2024-02-10', 1), (NULL, 2)) t(d, v)",
            "strftime(d, '%Y_%m')",
            &target,
        )
        .unwrap();
        let keys: Vec<_> = parts.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["2024_02", "__null__"]);
        let mut files: Vec<_> =
            std::fs::read_dir(&target).unwrap().flatten().map(|e| e.file_name().into_string().unwrap()).collect();
        files.sort();
        assert_eq!(files, ["2024_02.parquet", "__null__.parquet"], "stale parts pruned");
    }

    #[test]
    fn replacing_keys_rewrites_only_the_parts_they_touch() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("data/comments");
        let c = conn();
        let rows = |values: &str| format!("SELECT * FROM (VALUES {values}) t(issue_key, body, __agnes_part)");
        let parts = publish_in_parts(
            &c,
            &rows("('A-1', 'a', '2024-01'), ('A-1', 'b', '2024-01'), ('A-2', 'c', '2024-01'), ('A-3', 'd', '2024-02')"),
            &target,
        )
        .unwrap();
        assert_eq!(
            parts.iter().map(|p| (p.key.as_str(), p.file.rows)).collect::<Vec<_>>(),
            [("2024-01", 3), ("2024-02", 1)]
        );
        let february = parts[1].file.md5.clone();
        let read = |part: &str| -> Vec<(String, String)> {
            c.prepare(&format!(
                "SELECT issue_key, body FROM read_parquet('{}') ORDER BY ALL",
                target.join(format!("{part}.parquet")).display()
            ))
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
        };

        // A-1 loses a row, A-2 moves to March, A-9 is new; February is not touched.
        let keys = ["A-1", "A-2", "A-9"].map(String::from);
        let parts = replace_in_parts(
            &c,
            &rows("('A-1', 'b2', '2024-01'), ('A-2', 'c', '2024-03'), ('A-9', 'z', '2024-03')"),
            "issue_key",
            &keys,
            &target,
        )
        .unwrap();
        let summary: Vec<_> = parts.iter().map(|p| (p.key.as_str(), p.file.rows)).collect();
        assert_eq!(summary, [("2024-01", 1), ("2024-02", 1), ("2024-03", 2)]);
        assert_eq!(parts[1].file.md5, february, "an untouched part keeps its file");
        assert_eq!(read("2024-01"), [("A-1".into(), "b2".into())]);
        assert_eq!(read("2024-03"), [("A-2".into(), "c".into()), ("A-9".into(), "z".into())]);
        let cols: Vec<String> = c
            .prepare(&format!("DESCRIBE SELECT * FROM read_parquet('{}')", target.join("2024-03.parquet").display()))
            .unwrap()
            .query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(cols, ["issue_key", "body"]);

        // Keys with no rows any more: their rows go, and an emptied part goes with them.
        let none = "SELECT * FROM (VALUES ('x', 'x', 'x')) t(issue_key, body, __agnes_part) WHERE false";
        let parts = replace_in_parts(&c, none, "issue_key", &["A-3".into(), "A-1".into()], &target).unwrap();
        assert_eq!(parts.iter().map(|p| p.key.as_str()).collect::<Vec<_>>(), ["2024-03"]);
        assert!(!target.join("2024-02.parquet").exists() && !target.join("2024-01.parquet").exists());
    }

    /// Write `sql`'s rows as a parquet file of changes in `dir`.
    fn changes(c: &Connection, dir: &Path, sql: &str) -> PathBuf {
        let p = temp_path_for(&dir.join("changes.parquet"));
        c.execute_batch(&format!("COPY ({sql}) TO '{}' (FORMAT PARQUET)", p.display())).unwrap();
        p
    }

    fn table(c: &Connection, dir: &Path) -> Vec<(i64, String)> {
        let data = crate::table_data::TableData::Layered { dir: dir.to_path_buf(), key: vec!["id".into()] };
        c.prepare(&format!("SELECT id, v FROM ({}) ORDER BY id", data.select_sql().unwrap()))
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    }

    #[test]
    fn layered_tables_merge_on_read_and_compact_when_the_delta_grows() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("t");
        let c = conn();
        let key = vec!["id".to_string()];
        let first = changes(&c, tmp.path(), "SELECT range AS id, 'v0' AS v FROM range(100)");
        let published = publish_layered(&c, &first, &dir, &key).unwrap();
        let parts = published.parts;
        assert!(!first.exists(), "the changes file is consumed");
        assert_eq!(
            parts.iter().map(|p| (p.key.as_str(), p.file.rows)).collect::<Vec<_>>(),
            [("base", 100), ("delta", 0)]
        );
        let base_hash = parts[0].file.md5.clone();

        // Two updates and one insert: only the delta changes.
        let more = changes(&c, tmp.path(), "SELECT * FROM (VALUES (5, 'v1'), (7, 'v1'), (100, 'new')) t(id, v)");
        let published = publish_layered(&c, &more, &dir, &key).unwrap();
        assert_eq!(published.rows, 101);
        assert_eq!(published, describe_layered(&c, &dir, &key).unwrap());
        let parts = published.parts;
        assert_eq!(parts[0].file.md5, base_hash, "the base is not rewritten");
        assert_eq!(parts[1].file.rows, 3);
        let rows = table(&c, &dir);
        assert_eq!(rows.len(), 101);
        assert_eq!(rows[5], (5, "v1".to_string()));
        assert_eq!(rows[6], (6, "v0".to_string()));
        assert_eq!(rows[100], (100, "new".to_string()));

        // The same key again: the newer row wins, and the delta keeps one row per key.
        let again = changes(&c, tmp.path(), "SELECT 5 AS id, 'v2' AS v");
        let parts = publish_layered(&c, &again, &dir, &key).unwrap().parts;
        assert_eq!(parts[1].file.rows, 3);
        assert_eq!(table(&c, &dir)[5], (5, "v2".to_string()));

        // Past a tenth of the base: compacted into the base, the delta emptied.
        let many = changes(&c, tmp.path(), "SELECT range AS id, 'v3' AS v FROM range(20, 40)");
        let parts = publish_layered(&c, &many, &dir, &key).unwrap().parts;
        assert_ne!(parts[0].file.md5, base_hash);
        assert_eq!(
            parts.iter().map(|p| (p.key.as_str(), p.file.rows)).collect::<Vec<_>>(),
            [("base", 101), ("delta", 0)]
        );
        let rows = table(&c, &dir);
        assert_eq!(rows.len(), 101);
        assert_eq!(rows[5], (5, "v2".to_string()));
        assert_eq!(rows[25], (25, "v3".to_string()));
    }

    #[test]
    fn a_layered_table_without_a_key_is_refused() {
        assert!(crate::table_data::layered_select("a", "b", &[]).is_err());
    }

    #[test]
    fn merging_into_partitions_rewrites_only_the_parts_it_touches() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("t");
        let c = conn();
        let expr = "strftime(d, '%Y_%m')";
        let key = vec!["id".to_string()];
        let sql = "SELECT range AS id, DATE '2024-01-01' + INTERVAL (range) DAY AS d, 'v0' AS v FROM range(90)";
        let before = publish_partitioned(&c, sql, expr, &dir).unwrap();
        assert_eq!(before.iter().map(|p| p.key.as_str()).collect::<Vec<_>>(), ["2024_01", "2024_02", "2024_03"]);
        // Row 3 moves from January to February; row 40 changes in February; row 200 is new in April.
        let changes = "SELECT * FROM (VALUES (3, DATE '2024-02-20', 'moved'), (40, DATE '2024-02-10', 'v1'), \
                       (200, DATE '2024-04-02', 'new')) t(id, d, v)";
        let after = merge_partitioned(&c, changes, expr, &dir, &key).unwrap();
        let keys: Vec<&str> = after.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["2024_01", "2024_02", "2024_03", "2024_04"]);
        assert_eq!(after[2], before[2], "March is untouched");
        assert_ne!(after[0].file.md5, before[0].file.md5, "January lost row 3");
        assert_eq!(after.iter().map(|p| p.file.rows).sum::<i64>(), 91);
        let glob = dir.join("*.parquet");
        let rows: Vec<(i64, String, String)> = c
            .prepare(&format!(
                "SELECT id, strftime(d, '%Y_%m'), v FROM read_parquet('{}') \
                 WHERE id IN (3, 40, 200) ORDER BY id",
                glob.display()
            ))
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(
            rows,
            [
                (3, "2024_02".to_string(), "moved".to_string()),
                (40, "2024_02".to_string(), "v1".to_string()),
                (200, "2024_04".to_string(), "new".to_string())
            ],
            "each key once, in the part of its new period"
        );
    }
}
