//! One place that turns an error into a message, a hint and an exit code.

use std::process::ExitCode;

/// Print `error: …` and, when we know one, `hint: …`; exit 1 (the original's code for
/// failures that are not usage errors; clap itself exits 2 on bad usage).
pub fn report(e: anyhow::Error) -> ExitCode {
    eprintln!("error: {e:#}");
    if let Some(hint) = hint(&e) {
        eprintln!("hint: {hint}");
    }
    ExitCode::from(1)
}

fn hint(e: &anyhow::Error) -> Option<String> {
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
