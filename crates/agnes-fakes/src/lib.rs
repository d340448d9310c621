//! Faithful fakes of the SaaS APIs agnes reads, for tests and benchmarks: real HTTP on a
//! loopback port, the vendor's paths, parameters, auth headers, paging and error bodies,
//! built from each vendor's published API reference. Never linked into the agnes binary.

pub mod bigquery;
pub mod google;
pub mod google_directory;
pub mod jira;
pub mod keboola;
pub mod oidc;
mod server;
pub mod smtp;

/// A fresh RSA key pair from `openssl` (private PKCS#8 PEM, public PEM).
pub(crate) fn rsa_key_pair(dir: &std::path::Path) -> (String, String) {
    let private = dir.join("key.pem");
    let status = std::process::Command::new("openssl")
        .args(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out"])
        .arg(&private)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl runs");
    assert!(status.success(), "openssl genpkey failed");
    let public = std::process::Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&private)
        .output()
        .expect("openssl runs");
    assert!(public.status.success(), "openssl pkey -pubout failed");
    (std::fs::read_to_string(&private).unwrap(), String::from_utf8(public.stdout).unwrap())
}

/// RFC 6749 §5.2 error bodies; a refused client is challenged (`WWW-Authenticate`).
pub(crate) fn oauth_error(status: axum::http::StatusCode, error: &str, description: &str) -> axum::response::Response {
    use axum::response::IntoResponse;
    let body = serde_json::json!({"error": error, "error_description": description});
    let mut response = (status, axum::Json(body)).into_response();
    if status == axum::http::StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(axum::http::header::WWW_AUTHENTICATE, "Basic realm=\"fake\"".parse().unwrap());
    }
    response
}
