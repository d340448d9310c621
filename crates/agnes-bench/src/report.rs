//! `BENCHMARKS.md`: one section per scenario, replaced on each run, with the machine and
//! the date it was measured on.

use std::path::Path;

pub struct Section {
    /// Stable heading, e.g. `publish`.
    pub name: &'static str,
    pub body: String,
}

pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| s.lines().next().and_then(|l| l.split_whitespace().nth(1)).and_then(|kb| kb.parse::<f64>().ok()))
        .map(|kb| kb / 1048576.0)
        .unwrap_or(0.0);
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    format!("{cores} cores ({cpu}), {mem_gib:.0} GiB RAM; measured {}", chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"))
}

pub fn write_section(path: &Path, section: &Section) -> std::io::Result<()> {
    let existing = std::fs::read_to_string(path).unwrap_or_else(|_| {
        "# Benchmarks\n\nWritten by `cargo run -p agnes-bench -- <scenario>`; each section is replaced when its scenario runs.\nRatios compare agnes with a baseline measured in the same run on the same machine.\n".to_string()
    });
    let start_marker = format!("<!-- bench:{} -->", section.name);
    let end_marker = format!("<!-- /bench:{} -->", section.name);
    let block = format!("{start_marker}\n{}\n{end_marker}", section.body.trim_end());
    let updated = match (existing.find(&start_marker), existing.find(&end_marker)) {
        (Some(s), Some(e)) if e > s => format!("{}{}{}", &existing[..s], block, &existing[e + end_marker.len()..]),
        _ => format!("{}\n{}\n", existing.trim_end(), block),
    };
    std::fs::write(path, updated)
}
