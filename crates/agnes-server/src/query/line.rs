//! Backpressure: a request over its user's concurrency slots waits in line for a slot
//! instead of failing at once (an agent that fires eight queries gets eight answers).
//!
//! Each user has a line: a first-come, first-served lock whose holder alone asks the
//! state DB for a slot, woken when one of the user's slots is released (or every 100 ms,
//! since a slot can also free by going stale). While anyone is in line, new requests join
//! it rather than try first, so a later request never overtakes an earlier one.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::Notify;

/// How often the head of a line looks again without being woken.
pub const POLL: std::time::Duration = std::time::Duration::from_millis(100);

#[derive(Default)]
pub struct Lines {
    users: Mutex<HashMap<String, Arc<Line>>>,
}

impl Lines {
    /// The line of `user_id` (created on first use; one small entry per user).
    pub fn of(&self, user_id: &str) -> Arc<Line> {
        self.users.lock().entry(user_id.to_string()).or_default().clone()
    }
}

#[derive(Default)]
pub struct Line {
    turn: tokio::sync::Mutex<()>,
    freed: Notify,
    waiting: AtomicUsize,
}

impl Line {
    /// Whether nobody is waiting, so a new request may try for a slot directly.
    pub fn is_empty(&self) -> bool {
        self.waiting.load(Ordering::Acquire) == 0
    }

    /// Join the line; leaving is dropping the returned place.
    pub fn join(self: &Arc<Self>) -> Place {
        self.waiting.fetch_add(1, Ordering::AcqRel);
        Place(self.clone())
    }

    /// One of the user's slots was given back: wake the head of the line.
    pub fn slot_freed(&self) {
        self.freed.notify_one();
    }
}

/// A request's place in its user's line.
pub struct Place(Arc<Line>);

impl Place {
    /// Wait to be the head of the line, until `deadline`.
    pub async fn head(&self, deadline: tokio::time::Instant) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        tokio::time::timeout_at(deadline, self.0.turn.lock()).await.ok()
    }

    /// As the head: wait until a slot is freed, `POLL` passes or `deadline` comes.
    pub async fn next_chance(&self, deadline: tokio::time::Instant) {
        let wake = deadline.min(tokio::time::Instant::now() + POLL);
        let _ = tokio::time::timeout_at(wake, self.0.freed.notified()).await;
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The line is first come, first served: heads are granted in arrival order.
    #[tokio::test]
    async fn heads_in_arrival_order() {
        let lines = Arc::new(Lines::default());
        let line = lines.of("u");
        let order = Arc::new(Mutex::new(Vec::new()));
        let first = line.join();
        let guard = first.head(tokio::time::Instant::now() + POLL).await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..4 {
            let (queued, order) = (line.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let place = queued.join();
                let _head = place.head(tokio::time::Instant::now() + std::time::Duration::from_secs(5)).await.unwrap();
                order.lock().push(i);
            }));
            // Let task i queue before task i+1 arrives.
            while line.waiting.load(Ordering::Acquire) < i + 2 {
                tokio::task::yield_now().await;
            }
            tokio::task::yield_now().await;
        }
        assert!(!line.is_empty());
        drop(guard);
        drop(first);
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*order.lock(), vec![0, 1, 2, 3]);
        assert!(line.is_empty());
    }
}
