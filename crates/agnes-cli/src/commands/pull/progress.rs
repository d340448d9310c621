//! How a pull shows its progress: a bar per file on a terminal, periodic lines otherwise.

use super::Job;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How a pull shows its progress: a bar per file on a terminal, periodic lines otherwise
/// (`[i/N files] name: 40% (4.0 MiB / 10.0 MiB) at 80.0 MiB/s`), nothing when quiet.
pub(super) struct Reporter {
    show: bool,
    bars: Option<indicatif::MultiProgress>,
    interval_bytes: u64,
    interval: Duration,
}

impl Reporter {
    pub(super) fn new(show: bool) -> Reporter {
        use std::io::IsTerminal;
        let bars = (show && std::io::stdout().is_terminal()).then(indicatif::MultiProgress::new);
        let interval_bytes =
            std::env::var("AGNES_PULL_PROGRESS_INTERVAL_BYTES").ok().and_then(|v| v.parse().ok()).unwrap_or(1 << 20);
        let secs =
            std::env::var("AGNES_PULL_PROGRESS_INTERVAL_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(5.0f64);
        Reporter { show, bars, interval_bytes, interval: Duration::from_secs_f64(secs.max(0.1)) }
    }

    pub(super) fn start(&self, job: &Job, index: usize, count: usize) -> FileProgress {
        let label = format!("[{}/{count} files] {}", index + 1, job.table);
        let bar = self.bars.as_ref().map(|m| {
            let b = m.add(indicatif::ProgressBar::new(job.size));
            b.set_style(
                indicatif::ProgressStyle::with_template("{msg} [{bar:25}] {bytes}/{total_bytes} {bytes_per_sec}")
                    .expect("static template")
                    .progress_chars("=> "),
            );
            b.set_message(label.clone());
            b
        });
        FileProgress {
            show: self.show,
            bar,
            label,
            total: job.size,
            started: Instant::now(),
            interval_bytes: self.interval_bytes,
            interval: self.interval,
            ticks: Mutex::new(Ticks { last_line: Instant::now(), last_bytes: 0, next_pct: 10, done: 0 }),
        }
    }
}

/// One file's progress. Updated through `&self`: the pieces of a large file report from
/// concurrent tasks.
pub(super) struct FileProgress {
    show: bool,
    bar: Option<indicatif::ProgressBar>,
    label: String,
    total: u64,
    started: Instant,
    interval_bytes: u64,
    interval: Duration,
    ticks: Mutex<Ticks>,
}

struct Ticks {
    last_line: Instant,
    last_bytes: u64,
    next_pct: u64,
    done: u64,
}

fn mib(b: u64) -> f64 {
    b as f64 / 1048576.0
}

impl FileProgress {
    pub(super) fn update(&self, bytes: u64) {
        let mut t = self.ticks.lock().unwrap_or_else(|e| e.into_inner());
        t.done = bytes;
        if let Some(bar) = &self.bar {
            bar.set_position(bytes);
            return;
        }
        if !self.show {
            return;
        }
        let pct = (bytes * 100).checked_div(self.total).unwrap_or(0);
        let step = pct >= t.next_pct && bytes.saturating_sub(t.last_bytes) >= self.interval_bytes;
        if step || t.last_line.elapsed() >= self.interval {
            let rate = mib(bytes) / self.started.elapsed().as_secs_f64().max(1e-3);
            println!("{}: {pct}% ({:.1} MiB / {:.1} MiB) at {rate:.1} MiB/s", self.label, mib(bytes), mib(self.total));
            t.last_line = Instant::now();
            t.last_bytes = bytes;
            t.next_pct = (pct / 10 + 1) * 10;
        }
    }

    pub(super) fn finish(self, ok: bool) {
        if let Some(bar) = self.bar {
            bar.finish_with_message(format!("{} {}", self.label, if ok { "done" } else { "FAILED" }));
        } else if self.show && ok {
            println!(
                "{}: 100% done ({:.1} MiB in {:.1} s)",
                self.label,
                mib(self.ticks.into_inner().unwrap_or_else(|e| e.into_inner()).done),
                self.started.elapsed().as_secs_f64()
            );
        }
    }
}
