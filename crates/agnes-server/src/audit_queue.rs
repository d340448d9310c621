//! Audit records of high-volume reads (queries, scans), written in batches.
//!
//! Each SQLite commit rewrites the pages it touched, and an audit row touches its table and
//! three indexes: one commit per query filled the write-ahead log faster than it could be
//! checkpointed. Here one task writes whatever has queued up in one transaction, so under
//! load a commit carries hundreds of records. A record is written within a few
//! milliseconds of its request, with the time the request ended; mutations and sign-ins
//! are still audited synchronously (`Audit::record`). Shutdown writes what is queued.

use agnes_store::audit::AuditEntry;
use agnes_store::Store;
use parking_lot::Mutex;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Most records in one transaction.
const BATCH: usize = 512;

#[derive(Clone)]
pub struct AuditQueue {
    tx: mpsc::UnboundedSender<AuditEntry>,
    stop: Arc<tokio::sync::Notify>,
    writer: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

impl AuditQueue {
    pub fn start(store: Store) -> AuditQueue {
        let (tx, mut rx) = mpsc::unbounded_channel::<AuditEntry>();
        let stop = Arc::new(tokio::sync::Notify::new());
        let stopping = stop.clone();
        let writer = tokio::spawn(async move {
            loop {
                let first = tokio::select! {
                    entry = rx.recv() => entry,
                    _ = stopping.notified() => None,
                };
                let stop = first.is_none();
                let mut batch: Vec<AuditEntry> = first.into_iter().collect();
                // Write what is queued; on the way out, all of it.
                loop {
                    while batch.len() < BATCH {
                        match rx.try_recv() {
                            Ok(e) => batch.push(e),
                            Err(_) => break,
                        }
                    }
                    if batch.is_empty() {
                        break;
                    }
                    if let Err(e) = store.audit().record_many(&batch).await {
                        tracing::error!(records = batch.len(), "cannot write the audit log: {e}");
                    }
                    batch.clear();
                    if !stop {
                        break;
                    }
                }
                if stop {
                    return;
                }
            }
        });
        AuditQueue { tx, stop, writer: Arc::new(Mutex::new(Some(writer))) }
    }

    pub fn push(&self, mut entry: AuditEntry) {
        entry.at.get_or_insert_with(chrono::Utc::now);
        if self.tx.send(entry).is_err() {
            tracing::error!("the audit writer has stopped: a record was not written");
        }
    }

    /// Write everything queued, then stop.
    pub async fn shutdown(&self) {
        let writer = self.writer.lock().take();
        if let Some(writer) = writer {
            self.stop.notify_one();
            let _ = writer.await;
        }
    }
}
