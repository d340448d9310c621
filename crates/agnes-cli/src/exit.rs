//! One place that turns an error into a message, a hint and an exit code.

use std::process::ExitCode;

/// An error that exits with a specific code (the original's per-command codes).
#[derive(Debug)]
pub struct Coded {
    code: u8,
    inner: anyhow::Error,
}

impl Coded {
    pub fn wrap(code: u8, inner: anyhow::Error) -> anyhow::Error {
        anyhow::Error::new(Coded { code, inner })
    }

    /// The exit code of `e`, and the error it wraps.
    pub fn of(e: &anyhow::Error) -> (u8, &anyhow::Error) {
        match e.downcast_ref::<Coded>() {
            Some(c) => (c.code, &c.inner),
            None => (1, e),
        }
    }
}

impl std::fmt::Display for Coded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#}", self.inner)
    }
}

impl std::error::Error for Coded {}

/// An error with what to do about it, printed as its `hint:` line.
#[derive(Debug)]
pub struct Hinted {
    hint: &'static str,
    inner: anyhow::Error,
}

impl Hinted {
    pub fn wrap(hint: &'static str, inner: anyhow::Error) -> anyhow::Error {
        anyhow::Error::new(Hinted { hint, inner })
    }
}

impl std::fmt::Display for Hinted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#}", self.inner)
    }
}

impl std::error::Error for Hinted {}

/// Print `error: …` and, when we know one, `hint: …`; exit with the error's code, else 1
/// (the original's code for failures that are not usage errors; clap exits 2 on bad usage).
pub fn report(e: anyhow::Error) -> ExitCode {
    eprintln!("error: {e:#}");
    let (code, inner) = Coded::of(&e);
    if let Some(hint) = hint(inner) {
        eprintln!("hint: {hint}");
    }
    ExitCode::from(code)
}

/// What to do about `e`, when we know.
pub fn hint(e: &anyhow::Error) -> Option<String> {
    if let Some(h) = e.downcast_ref::<Hinted>() {
        return Some(h.hint.into());
    }
    if let Some(api) = e.downcast_ref::<crate::client::api::ApiFailure>() {
        return api.hint();
    }
    server_hint(e).map(String::from)
}

fn server_hint(e: &anyhow::Error) -> Option<&'static str> {
    if let Some(server) = e.downcast_ref::<agnes_server::ServerError>() {
        return match server {
            agnes_server::ServerError::Bind { .. } => {
                Some("is another agnes already listening there? pick another address with --bind")
            }
            agnes_server::ServerError::Store(agnes_store::StoreError::NewerSchema { .. }) => {
                Some("this data dir was written by a newer agnes: run that version, or restore a backup")
            }
            agnes_server::ServerError::Config(_) => {
                Some("check instance.yaml and the environment variables it references")
            }
            _ => None,
        };
    }
    None
}
