//! Answers of repeatable queries, kept for the next identical request.
//!
//! A sandbox's data never changes: its cache key holds every table's content hash, so a
//! sync makes a new sandbox with a new id. An answer keyed by the sandbox id, the SQL, the
//! limit and the format is therefore valid for as long as anyone can ask for it. Only
//! statements DuckDB's parse shows to be repeatable (no `random()`, `now()`, sampling…)
//! are kept; the quota slot, the byte budget and the audit record still apply to a hit.

use axum::body::Bytes;
use parking_lot::Mutex;
use std::collections::HashMap;

/// Largest answer kept, and the most kept in all.
const MAX_ANSWER: usize = 1 << 20;
const BUDGET: usize = 32 << 20;

#[derive(Clone)]
pub struct Answer {
    pub body: Bytes,
    /// Arrow IPC answers: `(rows, truncated)`; JSON answers carry these in the body.
    pub arrow: Option<(usize, bool)>,
}

#[derive(Clone, PartialEq, Eq, Hash)]
pub struct AnswerKey {
    pub sandbox: u64,
    pub sql: String,
    pub limit: usize,
    pub arrow: bool,
}

#[derive(Default)]
pub struct Answers {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<AnswerKey, (Answer, u64)>,
    bytes: usize,
    clock: u64,
}

impl Answers {
    pub fn get(&self, key: &AnswerKey) -> Option<Answer> {
        let mut inner = self.inner.lock();
        inner.clock += 1;
        let now = inner.clock;
        inner.entries.get_mut(key).map(|(answer, used)| {
            *used = now;
            answer.clone()
        })
    }

    /// Keep `answer` unless it is too big; the least recently used go to make room.
    pub fn put(&self, key: AnswerKey, answer: Answer) {
        let size = answer.body.len() + key.sql.len();
        if size > MAX_ANSWER {
            return;
        }
        let mut inner = self.inner.lock();
        while inner.bytes + size > BUDGET {
            let Some(oldest) = inner.entries.iter().min_by_key(|(_, (_, used))| *used).map(|(k, _)| k.clone()) else {
                break;
            };
            if let Some((gone, _)) = inner.entries.remove(&oldest) {
                inner.bytes -= gone.body.len() + oldest.sql.len();
            }
        }
        inner.clock += 1;
        let now = inner.clock;
        if let Some((old, _)) = inner.entries.insert(key.clone(), (answer, now)) {
            inner.bytes -= old.body.len() + key.sql.len();
        }
        inner.bytes += size;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(sandbox: u64, sql: &str) -> AnswerKey {
        AnswerKey { sandbox, sql: sql.into(), limit: 10, arrow: false }
    }

    #[test]
    fn answers_are_per_sandbox_and_bounded() {
        let a = Answers::default();
        a.put(key(1, "SELECT 1"), Answer { body: Bytes::from_static(b"one"), arrow: None });
        assert_eq!(a.get(&key(1, "SELECT 1")).unwrap().body, "one");
        assert!(a.get(&key(2, "SELECT 1")).is_none(), "another sandbox (other grants or data) misses");
        let big = Bytes::from(vec![0u8; MAX_ANSWER / 2]);
        for i in 0..200 {
            a.put(key(1, &format!("SELECT {i}")), Answer { body: big.clone(), arrow: None });
        }
        assert!(a.get(&key(1, "SELECT 199")).is_some(), "the newest stays");
        assert!(a.get(&key(1, "SELECT 0")).is_none(), "the oldest went");
        assert!(a.inner.lock().bytes <= BUDGET);
        a.put(key(1, "huge"), Answer { body: Bytes::from(vec![0u8; MAX_ANSWER + 1]), arrow: None });
        assert!(a.get(&key(1, "huge")).is_none(), "too big to keep");
    }
}
