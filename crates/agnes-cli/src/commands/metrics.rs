//! Business metric definitions from the CLI (spec §4.8, §6): `agnes admin metrics import |
//! export | validate` and `agnes catalog --metrics [--show ID]`. Everything goes over HTTP
//! with the caller's token; nothing here opens the server's database.

use crate::client::api::{read_as, Api, ApiFailure};
use crate::client::output;
use crate::exit::{Coded, Hinted};
use agnes_core::api::{Catalog, MetricList, MetricsImported};
use agnes_core::metric::{MetricDefinition, MetricFile, MetricRecord};
use anyhow::{bail, Context};
use clap::Subcommand;
use reqwest::StatusCode;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub enum MetricsCommand {
    /// Import a YAML file, or a directory of `<category>/<name>.yml` files (sent as one
    /// archive; a file's directory is the category of entries that name none).
    Import { path: PathBuf },
    /// Write every metric to `<dir>/<category>/<name>.yml`.
    Export {
        #[arg(long, default_value = "./export/")]
        dir: PathBuf,
    },
    /// Check every metric (the server's, or those under PATH): its tables exist in the
    /// registry and each SQL parses in DuckDB and reads only registered tables. Exit 1 on
    /// any problem.
    Validate { path: Option<PathBuf> },
}

pub async fn run(cmd: MetricsCommand) -> anyhow::Result<()> {
    let api = Api::from_config();
    match cmd {
        MetricsCommand::Import { path } => import(&api, &path).await,
        MetricsCommand::Export { dir } => export(&api, &dir).await,
        MetricsCommand::Validate { path } => validate(&api, path.as_deref()).await,
    }
}

/// How deep a metrics tree may go: categories are one level; the margin allows a tree
/// passed from a parent directory.
const MAX_DEPTH: usize = 8;

/// Every YAML file under `root`, by path relative to it (hidden entries skipped).
fn yaml_files(root: &Path) -> anyhow::Result<Vec<(String, PathBuf)>> {
    fn walk(root: &Path, dir: &Path, depth: usize, out: &mut Vec<(String, PathBuf)>) -> anyhow::Result<()> {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name().to_string_lossy().into_owned();
            let path = e.path();
            if name.starts_with('.') {
                continue;
            }
            if path.is_dir() {
                if depth < MAX_DEPTH {
                    walk(root, &path, depth + 1, out)?;
                }
            } else if agnes_server::metric_import::is_yaml_name(&name) {
                let rel = path.strip_prefix(root).unwrap_or(&path).to_string_lossy().replace('\\', "/");
                out.push((rel, path));
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(root, root, 0, &mut out)?;
    Ok(out)
}

/// A directory tree as the `.tar.gz` the import endpoint reads.
fn archive(root: &Path) -> anyhow::Result<Vec<u8>> {
    let files = yaml_files(root)?;
    if files.is_empty() {
        bail!("no .yml or .yaml files under {}", root.display());
    }
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default()));
    for (rel, path) in &files {
        let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, rel, bytes.as_slice())?;
    }
    Ok(tar.into_inner()?.finish()?)
}

async fn import(api: &Api, path: &Path) -> anyhow::Result<()> {
    // The server tells an archive from YAML by its bytes; the name is only a label.
    let (bytes, filename) = if path.is_dir() {
        (archive(path)?, "metrics.tar.gz")
    } else {
        (std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?, "metrics.yml")
    };
    let (content_type, body) = crate::client::api::multipart_file("file", filename, &bytes);
    const IMPORT: &str = "/api/admin/metrics/import";
    let v = api.post_bytes(IMPORT, &content_type, body).await.map_err(|e| match e {
        ApiFailure::Http { status: StatusCode::BAD_REQUEST, .. } => Hinted::wrap(
            "nothing was imported; `agnes admin metrics validate PATH` checks the files without the server",
            e.into(),
        ),
        e => e.into(),
    })?;
    let imported: MetricsImported = read_as(IMPORT, v)?;
    println!("Imported {} metrics from {} files.", imported.count, imported.files);
    for p in &imported.skipped {
        println!("  {p}: skipped (an index, not definitions)");
    }
    for p in &imported.ignored {
        println!("  {p}: ignored (not YAML)");
    }
    Ok(())
}

async fn fetch_all(api: &Api) -> Result<Vec<MetricDefinition>, anyhow::Error> {
    let list: MetricList = api.get_as("/api/metrics").await?;
    Ok(list.metrics.into_iter().map(|r| r.definition).collect())
}

async fn export(api: &Api, dir: &Path) -> anyhow::Result<()> {
    let defs = fetch_all(api).await?;
    for d in &defs {
        let folder = dir.join(&d.category);
        std::fs::create_dir_all(&folder).with_context(|| format!("cannot create {}", folder.display()))?;
        let text = serde_norway::to_string(&MetricFile::from(d))?;
        let target = folder.join(format!("{}.yml", d.name));
        let tmp = folder.join(format!(".{}.yml.tmp", d.name));
        std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, &target).with_context(|| format!("cannot write {}", target.display()))?;
    }
    println!("Exported {} metrics to {}.", defs.len(), dir.display());
    Ok(())
}

/// Definitions under a local path, read exactly as the server would import them.
fn read_local(path: &Path) -> anyhow::Result<Vec<MetricDefinition>> {
    let imported = if path.is_dir() {
        let mut files = Vec::new();
        for (rel, p) in yaml_files(path)? {
            files.push((rel, std::fs::read_to_string(&p).with_context(|| format!("cannot read {}", p.display()))?));
        }
        agnes_server::metric_import::read_files(files)
    } else {
        agnes_server::metric_import::read_upload(
            &std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?,
        )
    };
    imported.map(|i| i.definitions).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

async fn validate(api: &Api, path: Option<&Path>) -> anyhow::Result<()> {
    let defs = match path {
        Some(p) => read_local(p)?,
        None => fetch_all(api).await?,
    };
    let catalog: Catalog = api.get_as("/api/v2/catalog").await?;
    let registry: BTreeSet<String> = catalog.tables.into_iter().flat_map(|t| [t.id, t.name]).collect();
    let mut bad = 0;
    for d in &defs {
        let found = agnes_server::metric_import::problems(d, &registry);
        if found.is_empty() {
            println!("OK    {}", d.id);
        }
        for p in &found {
            println!("WARN  {}: {p}", d.id);
        }
        bad += usize::from(!found.is_empty());
    }
    println!("{} metrics checked, {bad} with problems.", defs.len());
    if bad > 0 {
        let problems = anyhow::anyhow!("{bad} of {} metrics have problems", defs.len());
        return Err(Coded::wrap(1, Hinted::wrap("fix what the WARN lines above name, then import again", problems)));
    }
    Ok(())
}

/// `agnes catalog --metrics [--show ID] [--json]`.
pub async fn catalog(show: Option<&str>, as_json: bool) -> anyhow::Result<()> {
    let api = Api::from_config();
    match show {
        Some(id) => show_metric(&api, id, as_json).await,
        None => {
            let list: MetricList = api.get_as("/api/metrics").await.map_err(|e| Coded::wrap(5, e.into()))?;
            if as_json {
                output::json(&list.metrics);
            } else {
                print_grouped(&list.metrics);
            }
            Ok(())
        }
    }
}

fn print_grouped(metrics: &[MetricRecord]) {
    if metrics.is_empty() {
        println!("No metrics found.");
        return;
    }
    let mut category = None;
    for MetricRecord { definition: m, .. } in metrics {
        if category != Some(&m.category) {
            category = Some(&m.category);
            println!("[{}]", m.category);
        }
        let unit = m.unit.as_deref().map(|u| format!(" ({u})")).unwrap_or_default();
        println!("  {:<30} {}{unit}", m.name, m.display_name);
    }
}

async fn show_metric(api: &Api, id: &str, as_json: bool) -> anyhow::Result<()> {
    let Some((category, name)) = id.split_once('/') else {
        bail!("a metric id is <category>/<name>, e.g. revenue/total_revenue");
    };
    let path =
        format!("/api/metrics/{}/{}", crate::client::api::urlencode(category), crate::client::api::urlencode(name));
    let record: MetricRecord = match api.get_as(&path).await {
        Ok(m) => m,
        Err(ApiFailure::Http { status: StatusCode::NOT_FOUND, .. }) => {
            return Err(Coded::wrap(1, anyhow::anyhow!("Metric not found: {id}")));
        }
        Err(e) => return Err(Coded::wrap(5, e.into())),
    };
    if as_json {
        output::json(&record);
        return Ok(());
    }
    let m = &record.definition;
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    for (label, value) in [
        ("ID", m.id.clone()),
        ("Name", m.name.clone()),
        ("Display Name", m.display_name.clone()),
        ("Category", m.category.clone()),
        ("Type", m.kind.clone()),
        ("Unit", dash(&m.unit)),
        ("Grain", m.grain.clone()),
        ("Table", dash(&m.table_name)),
        ("Description", dash(&m.description)),
    ] {
        println!("{:<13} {value}", format!("{label}:"));
    }
    if !m.tables.is_empty() {
        println!("{:<13} {}", "Tables:", m.tables.join(", "));
    }
    println!("{:<13} {}", "Synonyms:", m.synonyms.join(", "));
    println!("\nSQL:\n{}", m.sql.trim_end());
    for (variant, sql) in &m.sql_variants {
        println!("\nSQL {}:\n{}", variant.replace('_', " "), sql.trim_end());
    }
    for note in &m.notes {
        println!("\nNote: {note}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_becomes_an_archive_the_server_reads() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("revenue")).unwrap();
        std::fs::create_dir_all(dir.path().join(".git")).unwrap();
        std::fs::write(dir.path().join("revenue/mrr.yml"), "name: mrr\nsql: SELECT 1\n").unwrap();
        std::fs::write(dir.path().join("revenue/notes.txt"), "not yaml").unwrap();
        std::fs::write(dir.path().join(".git/x.yml"), "name: hidden\n").unwrap();
        let got = agnes_server::metric_import::read_upload(&archive(dir.path()).unwrap()).unwrap();
        assert_eq!((got.files, got.ignored.len()), (1, 0), "hidden and non-YAML files stay home");
        assert_eq!(got.definitions[0].id, "revenue/mrr");
        assert_eq!(read_local(dir.path()).unwrap(), got.definitions);
        assert!(archive(&dir.path().join("nowhere")).is_err());
    }
}
