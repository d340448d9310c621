//! Answers of repeatable queries, kept for the next identical request.
//!
//! A sandbox's data never changes: its cache key holds every table's content hash, so a
//! sync makes a new sandbox with a new id. An answer keyed by the sandbox id, the SQL, the
//! limit and the format is therefore valid for as long as anyone can ask for it. Only
//! statements DuckDB's parse shows to be repeatable (no `random()`, `now()`, sampling…)
//! are kept; the quota slot, the byte budget and the audit record still apply to a hit.

use axum::body::Bytes;
use lru::LruCache;
use parking_lot::Mutex;

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

pub struct Answers {
    inner: Mutex<Inner>,
}

struct Inner {
    /// Bounded by `bytes`, not by count: the least recently used go first.
    entries: LruCache<AnswerKey, Answer>,
    bytes: usize,
}

impl Default for Answers {
    fn default() -> Self {
        Answers { inner: Mutex::new(Inner { entries: LruCache::unbounded(), bytes: 0 }) }
    }
}

fn weight(key: &AnswerKey, answer: &Answer) -> usize {
    answer.body.len() + key.sql.len()
}

impl Answers {
    pub fn get(&self, key: &AnswerKey) -> Option<Answer> {
        self.inner.lock().entries.get(key).cloned()
    }

    /// Keep `answer` unless it is too big; the least recently used go to make room.
    pub fn put(&self, key: AnswerKey, answer: Answer) {
        let size = weight(&key, &answer);
        if size > MAX_ANSWER {
            return;
        }
        let mut inner = self.inner.lock();
        if let Some(old) = inner.entries.pop(&key) {
            inner.bytes -= weight(&key, &old);
        }
        while inner.bytes + size > BUDGET {
            let Some((gone_key, gone)) = inner.entries.pop_lru() else { break };
            inner.bytes -= weight(&gone_key, &gone);
        }
        inner.entries.put(key, answer);
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
