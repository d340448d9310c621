//! One thread that interrupts queries at their time limits. Spawning a timer thread per
//! query cost more than a point query itself; here arming and disarming a deadline is a
//! lock, a push and a wake-up.

use duckdb::InterruptHandle;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

struct Armed {
    id: u64,
    deadline: Instant,
    handle: Arc<InterruptHandle>,
    fired: Arc<AtomicBool>,
}

#[derive(Default)]
struct Board {
    armed: Vec<Armed>,
    next_id: u64,
}

struct Watchdog {
    board: Mutex<Board>,
    wake: Condvar,
}

fn watchdog() -> &'static Watchdog {
    static DOG: OnceLock<&'static Watchdog> = OnceLock::new();
    DOG.get_or_init(|| {
        let dog: &'static Watchdog = Box::leak(Box::new(Watchdog { board: Mutex::default(), wake: Condvar::new() }));
        std::thread::Builder::new()
            .name("agnes-query-watchdog".into())
            .spawn(move || dog.patrol())
            .expect("the watchdog thread starts");
        dog
    })
}

impl Watchdog {
    fn patrol(&self) {
        let mut board = self.board.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let now = Instant::now();
            board.armed.retain(|a| {
                if a.deadline > now {
                    return true;
                }
                a.fired.store(true, Ordering::SeqCst);
                a.handle.interrupt();
                false
            });
            let next = board.armed.iter().map(|a| a.deadline).min();
            board = match next {
                Some(deadline) => {
                    let wait = deadline.saturating_duration_since(Instant::now());
                    self.wake.wait_timeout(board, wait).unwrap_or_else(|e| e.into_inner()).0
                }
                None => self.wake.wait(board).unwrap_or_else(|e| e.into_inner()),
            };
        }
    }
}

/// A deadline being watched. Disarm it when the query ends.
pub(crate) struct Ticket {
    id: u64,
    fired: Arc<AtomicBool>,
}

/// Interrupt `handle` once `timeout` has passed, unless the ticket is disarmed first.
pub(crate) fn arm(timeout: Duration, handle: Arc<InterruptHandle>) -> Ticket {
    let dog = watchdog();
    let fired = Arc::new(AtomicBool::new(false));
    let mut board = dog.board.lock().unwrap_or_else(|e| e.into_inner());
    board.next_id += 1;
    let id = board.next_id;
    let deadline = Instant::now() + timeout;
    let earliest = board.armed.iter().all(|a| a.deadline > deadline);
    board.armed.push(Armed { id, deadline, handle, fired: fired.clone() });
    drop(board);
    if earliest {
        dog.wake.notify_one();
    }
    Ticket { id, fired }
}

impl Ticket {
    /// Stop watching; answers whether the interrupt was sent.
    pub(crate) fn disarm(self) -> bool {
        let mut board = watchdog().board.lock().unwrap_or_else(|e| e.into_inner());
        board.armed.retain(|a| a.id != self.id);
        self.fired.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_only_past_the_deadline() {
        let conn = crate::duck::open_in_memory().unwrap();
        let quick = arm(Duration::from_secs(60), conn.interrupt_handle());
        let slow = arm(Duration::from_millis(20), conn.interrupt_handle());
        std::thread::sleep(Duration::from_millis(200));
        assert!(slow.disarm(), "the short deadline fired");
        assert!(!quick.disarm(), "the long one did not");
    }
}
