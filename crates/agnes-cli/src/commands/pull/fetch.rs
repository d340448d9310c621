//! Fetching one file: verified before it is renamed into place, retried on network errors
//! and 5xx (`AGNES_STREAM_RETRIES`, default 3; backoff 0.3 s, 1 s, 3 s), resumed from what
//! already arrived.
//!
//! A large file (`AGNES_PULL_CHUNK_BYTES`, default 64 MiB, and more) comes as several
//! ranges at once, written at their offsets into one partial file while a thread checks
//! the contiguous prefix as it grows. Anything else comes as one stream, resumed with
//! `Range` + `If-Range` after an interruption (even by a later `agnes pull`). Either way
//! verification overlaps the transfer: when it ends, only the comparison is left.
//!
//! The check is the manifest's `checksum` (XXH3-128) when the server offers one, its MD5
//! `hash` otherwise (servers of the original's shape), and at least the parquet magic.

use super::progress::FileProgress;
use super::Job;
use crate::client::api::{render_error, Api, ApiFailure};
use agnes_engine::fsutil::CHECKSUM_PREFIX;
use md5::{Digest, Md5};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Why one file could not be fetched.
#[derive(Debug)]
pub(super) enum FetchError {
    /// Worth trying again: network trouble, a 5xx.
    Transient(String),
    /// Not worth trying again: a 4xx, a hash mismatch, a local IO error.
    Permanent(String),
    /// The server answered a range request with the whole file: fetch it as one stream.
    RangesIgnored,
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchError::Transient(m) | FetchError::Permanent(m) => f.write_str(m),
            FetchError::RangesIgnored => f.write_str("the server ignored a range request"),
        }
    }
}

/// What a downloaded file is checked against.
enum Verifier {
    Xxh3(Box<xxhash_rust::xxh3::Xxh3>, String),
    Md5(Box<Md5>, String),
    /// No digest in the manifest: at least the parquet magic at both ends.
    Magic,
}

impl Verifier {
    fn for_job(job: &Job) -> Verifier {
        match &job.checksum {
            Some(c) if c.starts_with(CHECKSUM_PREFIX) => Verifier::Xxh3(Box::default(), c.clone()),
            _ if !job.hash.is_empty() => Verifier::Md5(Box::default(), job.hash.clone()),
            _ => Verifier::Magic,
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        match self {
            Verifier::Xxh3(h, _) => h.update(bytes),
            Verifier::Md5(h, _) => h.update(bytes),
            Verifier::Magic => {}
        }
    }

    fn verify(self, path: &Path) -> Result<(), String> {
        let (want, got) = match self {
            Verifier::Xxh3(h, want) => (want, format!("{CHECKSUM_PREFIX}{:032x}", h.digest128())),
            Verifier::Md5(h, want) => (want, hex::encode(h.finalize())),
            Verifier::Magic if has_parquet_magic(path) => return Ok(()),
            Verifier::Magic => return Err("not a valid parquet (missing PAR1 magic)".into()),
        };
        if want == got {
            return Ok(());
        }
        let short = |s: &str| s.trim_start_matches(CHECKSUM_PREFIX).chars().take(12).collect::<String>();
        Err(format!("hash mismatch: expected {}, got {}", short(&want), short(&got)))
    }
}

fn has_parquet_magic(path: &Path) -> bool {
    let check = || -> std::io::Result<bool> {
        let f = File::open(path)?;
        let len = f.metadata()?.len();
        let (mut head, mut tail) = ([0u8; 4], [0u8; 4]);
        if len < 8 {
            return Ok(false);
        }
        f.read_exact_at(&mut head, 0)?;
        f.read_exact_at(&mut tail, len - 4)?;
        Ok(&head == b"PAR1" && &tail == b"PAR1")
    };
    check().unwrap_or(false)
}

fn partial_path(target: &Path, suffix: &str) -> PathBuf {
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    target.with_file_name(format!(".{name}.{suffix}"))
}

fn io_error(target: &Path) -> impl Fn(std::io::Error) -> FetchError + '_ {
    move |e| FetchError::Permanent(format!("cannot write {}: {e}", target.display()))
}

fn retries() -> usize {
    std::env::var("AGNES_STREAM_RETRIES").ok().and_then(|v| v.parse().ok()).unwrap_or(3)
}

/// Run `attempt` until it succeeds, fails for good, or the retries are spent: waits of
/// 0.3 s, then about 1 s, then 3 s (each with jitter, so parallel downloads do not retry in
/// step).
async fn with_retries<F, Fut, T>(what: &str, attempt: F) -> Result<T, FetchError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, FetchError>>,
{
    use backon::Retryable;
    let policy = backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(300))
        .with_factor(3.3)
        .with_max_delay(Duration::from_secs(3))
        .with_max_times(retries())
        .with_jitter();
    attempt
        .retry(policy)
        .when(|e| matches!(e, FetchError::Transient(_)))
        .notify(|e, wait| tracing::debug!(what, ?wait, "retrying download: {e}"))
        .await
}

async fn request(api: &Api, url: &str, headers: &[(&str, String)]) -> Result<reqwest::Response, FetchError> {
    match api.get_stream(url, headers).await {
        Ok(r) => Ok(r),
        Err(ApiFailure::Http { status, detail, .. }) if status.is_server_error() => {
            Err(FetchError::Transient(render_error(status, &detail)))
        }
        Err(e @ ApiFailure::Transport { .. }) => Err(FetchError::Transient(e.to_string())),
        Err(e) => Err(FetchError::Permanent(e.to_string())),
    }
}

fn interrupted(e: reqwest::Error) -> FetchError {
    FetchError::Transient(format!("download interrupted: {}", e.without_url()))
}

/// Fetch `job` into place; `pieces` is how many ranges a large file may be split into.
pub(super) async fn fetch(api: &Api, job: &Job, progress: &FileProgress, pieces: usize) -> Result<u64, String> {
    let chunk = std::env::var("AGNES_PULL_CHUNK_BYTES").ok().and_then(|v| v.parse().ok()).unwrap_or(64u64 << 20);
    let n = job.size.checked_div(chunk).unwrap_or(0).min(pieces as u64) as usize;
    if n >= 2 && !job.hash.is_empty() {
        match fetch_pieces(api, job, progress, n).await {
            Err(FetchError::RangesIgnored) => {}
            other => return other.map_err(|e| e.to_string()),
        }
    }
    with_retries(&job.table, || fetch_stream(api, job, progress)).await.map_err(|e| e.to_string())
}

/// One attempt at the whole file as a stream, resuming from the partial file when there is
/// one (`If-Range` guards against a partial of another version).
async fn fetch_stream(api: &Api, job: &Job, progress: &FileProgress) -> Result<u64, FetchError> {
    let io = io_error(&job.target);
    let partial = partial_path(&job.target, "partial");
    if let Some(dir) = job.target.parent() {
        tokio::fs::create_dir_all(dir).await.map_err(&io)?;
    }
    let have = tokio::fs::metadata(&partial).await.map(|m| m.len()).unwrap_or(0);
    let mut headers = Vec::new();
    if have > 0 && !job.hash.is_empty() {
        headers.push(("range", format!("bytes={have}-")));
        headers.push(("if-range", format!("\"{}\"", job.hash)));
    }
    let mut resp = request(api, &job.url, &headers).await?;
    let resumed = resp.status() == reqwest::StatusCode::PARTIAL_CONTENT;
    let file = if resumed {
        std::fs::OpenOptions::new().append(true).open(&partial).map_err(&io)?
    } else {
        File::create(&partial).map_err(&io)?
    };
    let prefix = if resumed { Some((File::open(&partial).map_err(&io)?, have)) } else { None };
    // Receiving, checking and writing run at once: the async task receives, one thread
    // checks (the resumed prefix first, from disk), one writes. Bounded channels keep
    // memory flat whatever the file size.
    let (check_tx, check_rx) = std::sync::mpsc::sync_channel::<bytes::Bytes>(16);
    let (write_tx, write_rx) = std::sync::mpsc::sync_channel::<bytes::Bytes>(16);
    let mut verifier = Verifier::for_job(job);
    let checker = std::thread::spawn(move || -> std::io::Result<Verifier> {
        if let Some((f, len)) = prefix {
            let mut buf = vec![0u8; 1 << 20];
            let mut pos = 0;
            while pos < len {
                let n = ((len - pos) as usize).min(buf.len());
                f.read_exact_at(&mut buf[..n], pos)?;
                verifier.update(&buf[..n]);
                pos += n as u64;
            }
        }
        for chunk in check_rx {
            verifier.update(&chunk);
        }
        Ok(verifier)
    });
    let writer = std::thread::spawn(move || -> std::io::Result<()> {
        use std::io::Write;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
        for chunk in write_rx {
            w.write_all(&chunk)?;
        }
        w.flush()
    });
    let mut written = if resumed { have } else { 0 };
    let mut failure = None;
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                written += chunk.len() as u64;
                progress.update(written);
                if check_tx.send(chunk.clone()).is_err() || write_tx.send(chunk).is_err() {
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => {
                failure = Some(interrupted(e));
                break;
            }
        }
    }
    drop((check_tx, write_tx));
    match tokio::task::spawn_blocking(move || writer.join()).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => return Err(io(e)),
        _ => return Err(FetchError::Permanent("the writer thread failed".into())),
    }
    let verifier = match tokio::task::spawn_blocking(move || checker.join()).await {
        Ok(Ok(Ok(v))) => v,
        Ok(Ok(Err(e))) => return Err(io(e)),
        _ => return Err(FetchError::Permanent("the checking thread failed".into())),
    };
    if let Some(e) = failure {
        // Keep what arrived: the next attempt resumes from it.
        return Err(e);
    }
    finish(verifier, &partial, &job.target).await?;
    Ok(written)
}

/// Verify the complete partial file and rename it into place; a file that fails the
/// check is removed, never renamed.
async fn finish(verifier: Verifier, partial: &Path, target: &Path) -> Result<(), FetchError> {
    let checked = {
        let partial = partial.to_path_buf();
        tokio::task::spawn_blocking(move || verifier.verify(&partial))
            .await
            .map_err(|_| FetchError::Permanent("the checking thread failed".into()))?
    };
    if let Err(m) = checked {
        let _ = tokio::fs::remove_file(partial).await;
        return Err(FetchError::Permanent(m));
    }
    tokio::fs::rename(partial, target).await.map_err(io_error(target))
}

/// The byte ranges of one file and how much of each has been written.
struct Pieces {
    ranges: Vec<(u64, u64)>,
    done: Vec<AtomicU64>,
}

impl Pieces {
    fn split(size: u64, n: usize) -> Pieces {
        let step = size.div_ceil(n as u64);
        let ranges: Vec<(u64, u64)> =
            (0..n as u64).map(|i| (i * step, ((i + 1) * step).min(size))).filter(|(s, e)| s < e).collect();
        let done = ranges.iter().map(|_| AtomicU64::new(0)).collect();
        Pieces { ranges, done }
    }

    /// How many bytes from the start of the file are written.
    fn contiguous(&self) -> u64 {
        let mut mark = 0;
        for ((start, end), done) in self.ranges.iter().zip(&self.done) {
            mark = start + done.load(Ordering::Acquire);
            if mark < *end {
                break;
            }
        }
        mark
    }

    fn written(&self) -> u64 {
        self.done.iter().map(|d| d.load(Ordering::Relaxed)).sum()
    }
}

/// Check the file's contiguous prefix as it grows, until `finished` and nothing is left.
/// Returns the verifier and how many bytes it saw.
fn follow(
    file: &File,
    pieces: &Pieces,
    finished: &AtomicBool,
    mut verifier: Verifier,
) -> std::io::Result<(Verifier, u64)> {
    let mut buf = vec![0u8; 1 << 20];
    let mut pos = 0;
    loop {
        // Read the flag before the mark: every write counted before `finished` was set is
        // then seen, and the loop cannot stop short.
        let stop = finished.load(Ordering::Acquire);
        let mark = pieces.contiguous();
        if pos < mark {
            let n = ((mark - pos) as usize).min(buf.len());
            file.read_exact_at(&mut buf[..n], pos)?;
            verifier.update(&buf[..n]);
            pos += n as u64;
        } else if stop {
            return Ok((verifier, pos));
        } else {
            std::thread::sleep(Duration::from_micros(500));
        }
    }
}

/// The file as `n` ranges fetched at once, each retried and resumed on its own.
async fn fetch_pieces(api: &Api, job: &Job, progress: &FileProgress, n: usize) -> Result<u64, FetchError> {
    let io = io_error(&job.target);
    let partial = partial_path(&job.target, "pieces.partial");
    if let Some(dir) = job.target.parent() {
        tokio::fs::create_dir_all(dir).await.map_err(&io)?;
    }
    let file =
        std::fs::OpenOptions::new().create(true).truncate(true).read(true).write(true).open(&partial).map_err(&io)?;
    file.set_len(job.size).map_err(&io)?;
    let file = Arc::new(file);
    let pieces = Arc::new(Pieces::split(job.size, n));
    let finished = Arc::new(AtomicBool::new(false));
    let checker = {
        let (file, pieces, finished) = (file.clone(), pieces.clone(), finished.clone());
        let verifier = Verifier::for_job(job);
        std::thread::spawn(move || follow(&file, &pieces, &finished, verifier))
    };
    let (file_ref, pieces_ref): (&File, &Pieces) = (&file, &pieces);
    let work = futures::future::join_all(
        (0..pieces.ranges.len())
            .map(|i| with_retries(&job.table, move || fetch_piece(api, job, file_ref, pieces_ref, i)))
            .collect::<Vec<_>>(),
    );
    tokio::pin!(work);
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let results = loop {
        tokio::select! {
            r = &mut work => break r,
            _ = tick.tick() => progress.update(pieces.written()),
        }
    };
    progress.update(pieces.written());
    finished.store(true, Ordering::Release);
    let checked = tokio::task::spawn_blocking(move || checker.join()).await;
    let outcome = results.into_iter().find_map(Result::err).map_or(Ok(()), Err).and_then(|()| match checked {
        Ok(Ok(Ok((v, seen)))) if seen == job.size => Ok(v),
        Ok(Ok(Ok((_, seen)))) => Err(FetchError::Permanent(format!("only {seen} of {} bytes arrived", job.size))),
        Ok(Ok(Err(e))) => Err(io(e)),
        _ => Err(FetchError::Permanent("the checking thread failed".into())),
    });
    match outcome {
        Ok(verifier) => {
            finish(verifier, &partial, &job.target).await?;
            Ok(job.size)
        }
        Err(e) => {
            let _ = tokio::fs::remove_file(&partial).await;
            Err(e)
        }
    }
}

/// One attempt at what is missing of range `i`.
async fn fetch_piece(api: &Api, job: &Job, file: &File, pieces: &Pieces, i: usize) -> Result<(), FetchError> {
    let (start, end) = pieces.ranges[i];
    let done = &pieces.done[i];
    let mut pos = start + done.load(Ordering::Acquire);
    if pos >= end {
        return Ok(());
    }
    let headers = [("range", format!("bytes={pos}-{}", end - 1)), ("if-range", format!("\"{}\"", job.hash))];
    let mut resp = request(api, &job.url, &headers).await?;
    if resp.status() != reqwest::StatusCode::PARTIAL_CONTENT {
        return Err(FetchError::RangesIgnored);
    }
    while let Some(chunk) = resp.chunk().await.map_err(interrupted)? {
        if pos + chunk.len() as u64 > end {
            return Err(FetchError::Permanent("the server sent more than the range asked for".into()));
        }
        // A write into the page cache takes microseconds: not worth a thread hop.
        file.write_all_at(&chunk, pos).map_err(io_error(&job.target))?;
        pos += chunk.len() as u64;
        done.store(pos - start, Ordering::Release);
    }
    if pos < end {
        return Err(FetchError::Transient("the server closed a range early".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_cover_the_file_exactly() {
        for (size, n) in [(10u64, 3usize), (9, 3), (1, 4), (1 << 30, 4)] {
            let p = Pieces::split(size, n);
            assert_eq!(p.ranges.first().unwrap().0, 0);
            assert_eq!(p.ranges.last().unwrap().1, size);
            assert!(p.ranges.windows(2).all(|w| w[0].1 == w[1].0), "{:?}", p.ranges);
        }
    }

    #[test]
    fn the_contiguous_prefix_stops_at_the_first_gap() {
        let p = Pieces::split(30, 3);
        assert_eq!(p.contiguous(), 0);
        p.done[1].store(10, Ordering::Release);
        assert_eq!(p.contiguous(), 0, "a later piece alone does not count");
        p.done[0].store(4, Ordering::Release);
        assert_eq!(p.contiguous(), 4);
        p.done[0].store(10, Ordering::Release);
        assert_eq!(p.contiguous(), 20, "a finished piece lets the next one count");
        p.done[2].store(10, Ordering::Release);
        assert_eq!(p.contiguous(), 30);
        assert_eq!(p.written(), 30);
    }
}
