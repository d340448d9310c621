//! Argon2id password hashes (PHC strings), never logged or returned.
//!
//! Argon2 is slow and memory-hard on purpose (tens of milliseconds and 19 MiB a call).
//! It therefore never runs on an async worker: [`hash`] and [`verify`] run it on the
//! blocking pool, and at most half the cores at once, so a flood of sign-ins queues for
//! its turn instead of taking the cores every other request needs. Callers do the cheap
//! checks (rate limit, user and token lookups, length) first, so bad requests cost no
//! Argon2 work at all; `agnes_password_work_total` counts every call.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use std::sync::LazyLock;
use tokio::sync::Semaphore;

pub const MIN_PASSWORD_LEN: usize = 8;

/// Argon2 calls allowed at once.
static WORKERS: LazyLock<Semaphore> = LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    Semaphore::new((cores / 2).max(1))
});

/// The length rule alone, for checking a request before any other work.
pub fn check_length(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(format!("Password must be at least {MIN_PASSWORD_LEN} characters"));
    }
    Ok(())
}

/// Hash a new password (after [`check_length`]).
pub async fn hash(password: &str) -> Result<String, String> {
    check_length(password)?;
    let password = password.to_owned();
    run("hash", move || {
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        Argon2::default().hash_password(password.as_bytes(), &salt).map(|h| h.to_string()).map_err(|e| e.to_string())
    })
    .await?
}

/// Whether `password` matches the stored PHC string.
pub async fn verify(password: &str, stored: &str) -> bool {
    if PasswordHash::new(stored).is_err() {
        return false;
    }
    let (password, stored) = (password.to_owned(), stored.to_owned());
    run("verify", move || {
        PasswordHash::new(&stored).is_ok_and(|p| Argon2::default().verify_password(password.as_bytes(), &p).is_ok())
    })
    .await
    .unwrap_or(false)
}

async fn run<T: Send + 'static>(op: &'static str, work: impl FnOnce() -> T + Send + 'static) -> Result<T, String> {
    let _turn = WORKERS.acquire().await.map_err(|e| e.to_string())?;
    metrics::counter!("agnes_password_work_total", "op" => op).increment(1);
    tokio::task::spawn_blocking(work).await.map_err(|e| format!("password work failed: {e}"))
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn hash_and_verify() {
        let h = super::hash("correct horse").await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(super::verify("correct horse", &h).await);
        assert!(!super::verify("wrong horse", &h).await);
        assert!(super::hash("short").await.is_err());
        assert!(!super::verify("x", "not a hash").await);
    }

    /// The work runs on the blocking pool: a current-thread runtime (one worker) keeps
    /// answering other tasks while a verification is under way.
    #[tokio::test(flavor = "current_thread")]
    async fn verification_leaves_the_worker_free() {
        let h = super::hash("correct horse").await.unwrap();
        let verifying = tokio::spawn(async move { super::verify("correct horse", &h).await });
        // If Argon2 ran on this (only) worker, the spawned task would hold it until done
        // and this yield would return only afterwards.
        tokio::task::yield_now().await;
        assert!(!verifying.is_finished(), "the verification must not have run to completion inline");
        assert!(verifying.await.unwrap());
    }
}
