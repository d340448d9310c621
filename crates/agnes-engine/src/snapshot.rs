//! Writing a snapshot: an Arrow IPC stream, as `/api/v2/scan` answers it, into a parquet
//! file that appears whole or not at all.

use crate::fsutil::{commit_rename_hashed, remove_if_exists, temp_path_for, Digests};
use crate::{EngineError, Result};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

/// What was written.
#[derive(Debug, Clone)]
pub struct Written {
    pub rows: u64,
    pub bytes: u64,
    pub digests: Digests,
}

/// Convert the IPC stream in `ipc` into the parquet file `target`, batch by batch. On any
/// error the target is left as it was.
pub fn ipc_to_parquet(ipc: &Path, target: &Path) -> Result<Written> {
    let tmp = temp_path_for(target);
    let written = write(ipc, &tmp).and_then(|rows| {
        let digests = commit_rename_hashed(&tmp, target)?;
        let bytes = std::fs::metadata(target).map_err(EngineError::io("stat", target))?.len();
        Ok(Written { rows, bytes, digests })
    });
    if written.is_err() {
        let _ = remove_if_exists(&tmp);
    }
    written
}

fn write(ipc: &Path, tmp: &Path) -> Result<u64> {
    let input = File::open(ipc).map_err(EngineError::io("open", ipc))?;
    let reader = arrow_ipc::reader::StreamReader::try_new(BufReader::with_capacity(1 << 20, input), None)
        .map_err(|e| invalid("read", e))?;
    let out = File::create(tmp).map_err(EngineError::io("create", tmp))?;
    let props = WriterProperties::builder().set_compression(Compression::SNAPPY).build();
    let mut writer = ArrowWriter::try_new(out, reader.schema(), Some(props)).map_err(|e| invalid("write", e))?;
    let mut rows = 0u64;
    for batch in reader {
        let batch = batch.map_err(|e| invalid("read", e))?;
        rows += batch.num_rows() as u64;
        writer.write(&batch).map_err(|e| invalid("write", e))?;
    }
    writer.close().map_err(|e| invalid("write", e))?;
    Ok(rows)
}

/// Write rows answered as JSON (`columns` and each row's values, as `/api/query` gives
/// them) to the parquet file `target`, letting DuckDB type each column from its values
/// (numbers, text, ISO dates and times); with no rows the columns are text. The rows pass
/// through a newline-delimited JSON file beside `target`, removed afterwards.
pub fn json_rows_to_parquet(columns: &[String], rows: &[Vec<serde_json::Value>], target: &Path) -> Result<u64> {
    use agnes_core::ident::{quote_ident, quote_literal};
    let lines = temp_path_for(&target.with_extension("ndjson"));
    let written = (|| {
        let mut out = std::io::BufWriter::new(File::create(&lines).map_err(EngineError::io("create", &lines))?);
        for row in rows {
            let object: serde_json::Map<String, serde_json::Value> =
                columns.iter().cloned().zip(row.iter().cloned()).collect();
            serde_json::to_writer(&mut out, &object).map_err(|e| invalid("write the rows", e))?;
            std::io::Write::write_all(&mut out, b"\n").map_err(EngineError::io("write", &lines))?;
        }
        std::io::Write::flush(&mut out).map_err(EngineError::io("write", &lines))?;
        drop(out);
        let select = if rows.is_empty() {
            let typed: Vec<String> = columns.iter().map(|c| format!("NULL::VARCHAR AS {}", quote_ident(c))).collect();
            format!("SELECT {} WHERE false", if typed.is_empty() { "NULL".to_string() } else { typed.join(", ") })
        } else {
            format!(
                "SELECT * FROM read_json_auto({}, format = 'newline_delimited')",
                quote_literal(&lines.to_string_lossy())
            )
        };
        let conn = crate::duck::open_in_memory()?;
        conn.execute_batch(&format!(
            "COPY ({select}) TO {} (FORMAT PARQUET)",
            quote_literal(&target.to_string_lossy())
        ))?;
        Ok(rows.len() as u64)
    })();
    let _ = remove_if_exists(&lines);
    written
}

fn invalid(action: &str, e: impl std::fmt::Display) -> EngineError {
    EngineError::Invalid(format!("cannot {action} the snapshot: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipc_stream_becomes_a_parquet_duckdb_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::duck::open_in_memory().unwrap();
        let sql = "SELECT range AS id, 'r' || range AS label, DATE '2024-01-01' + range::INTEGER AS day, \
                   (range / 3)::DECIMAL(10, 2) AS amount FROM range(5000)";
        let mut stmt = conn.prepare(sql).unwrap();
        let batches: Vec<_> = stmt.query_arrow([]).unwrap().collect();
        let mut w = arrow_ipc::writer::StreamWriter::try_new(Vec::new(), &batches[0].schema()).unwrap();
        for b in &batches {
            w.write(b).unwrap();
        }
        w.finish().unwrap();
        let ipc = dir.path().join("scan.ipc");
        std::fs::write(&ipc, w.into_inner().unwrap()).unwrap();
        let target = dir.path().join("snap.parquet");
        let written = ipc_to_parquet(&ipc, &target).unwrap();
        assert_eq!(written.rows, 5000);
        assert_eq!(written.digests, crate::fsutil::digest_file(&target).unwrap(), "the hash covers the whole file");
        let same: i64 = conn
            .query_row(
                &format!(
                    "SELECT count(*) FROM (SELECT * FROM read_parquet('{}') EXCEPT SELECT * FROM ({sql}))",
                    target.display()
                ),
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(same, 0, "every row and type round-trips");

        std::fs::write(&ipc, b"not arrow").unwrap();
        assert!(ipc_to_parquet(&ipc, &target).is_err());
        assert_eq!(crate::fsutil::digest_file(&target).unwrap(), written.digests, "a failed write keeps the old file");
        let leftovers = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with('.'))
            .count();
        assert_eq!(leftovers, 0, "no temporary file is left behind");
    }
}
