//! A held quota slot. It goes back when the request ends, also when the client hangs up
//! and the handler is dropped mid-way.

use super::line::Line;
use agnes_store::Store;
use std::sync::Arc;

pub struct Slot {
    store: Store,
    id: String,
    user_id: String,
    access_generation: i64,
    released: bool,
    /// The user's line, told when the slot is back.
    line: Arc<Line>,
}

impl Slot {
    pub(super) fn new(store: Store, acquired: agnes_store::quotas::Acquired, user_id: String, line: Arc<Line>) -> Slot {
        Slot { store, id: acquired.slot, user_id, access_generation: acquired.access_generation, released: false, line }
    }

    /// The access generation when the slot was taken.
    pub fn access_generation(&self) -> i64 {
        self.access_generation
    }

    /// Give the slot back and count `bytes` against the caller's day.
    pub async fn release(mut self, bytes: usize) {
        self.released = true;
        if let Err(e) = self.store.quotas().release(&self.id, &self.user_id, bytes as i64).await {
            tracing::error!("cannot release a quota slot: {e}");
        }
        self.line.slot_freed();
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        let (store, id, user) = (self.store.clone(), std::mem::take(&mut self.id), std::mem::take(&mut self.user_id));
        let line = self.line.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Err(e) = store.quotas().release(&id, &user, 0).await {
                    tracing::error!("cannot release a quota slot: {e}");
                }
                line.slot_freed();
            });
        }
    }
}
