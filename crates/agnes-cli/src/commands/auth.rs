//! `agnes auth …`: sign in, see who you are, and manage personal access tokens.

use crate::client::api::{Api, ApiFailure};
use crate::client::{config, output};
use agnes_core::api::{CliToken, Credentials, IssuedToken, NewToken, SessionToken, SsoProvider, TokenView};
use anyhow::{bail, Context};
use clap::Subcommand;
use serde_json::{json, Value};
use std::io::IsTerminal;

#[derive(Subcommand)]
pub enum AuthCommand {
    /// Sign in. With email and password: a 24-hour session token. Without them, on a server
    /// with single sign-on (or with `--browser`): in the browser, saving a 90-day personal
    /// access token.
    Login {
        #[arg(long)]
        email: Option<String>,
        /// Read from AGNES_PASSWORD or prompted for when omitted.
        #[arg(long)]
        password: Option<String>,
        /// Server URL to sign in to (saved for later commands).
        #[arg(long)]
        server: Option<String>,
        /// Sign in through the browser even without single sign-on.
        #[arg(long, conflicts_with_all = ["email", "password"])]
        browser: bool,
        /// Browser sign-in, printing the page to open instead of opening it.
        #[arg(long, conflicts_with_all = ["email", "password"])]
        no_browser: bool,
    },
    /// Forget the saved token.
    Logout,
    /// Show who the saved token belongs to (decoded locally).
    Whoami {
        #[arg(long)]
        json: bool,
    },
    /// Save a token you were given (e.g. a personal access token).
    ImportToken {
        #[arg(long)]
        token: String,
        #[arg(long)]
        server: Option<String>,
        #[arg(long)]
        email: Option<String>,
        /// Save without asking the server whether the token works.
        #[arg(long)]
        skip_verify: bool,
    },
    /// Personal access tokens.
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create a token (needs a session login, not a token).
    Create {
        #[arg(long)]
        name: String,
        /// Lifetime: `<N>d`, `<N>h` or `never` (default 90d, at most 3650d).
        #[arg(long, default_value = "90d")]
        ttl: String,
        /// Print only the token.
        #[arg(long)]
        raw: bool,
    },
    /// List your tokens.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by id, prefix or name.
    Revoke { token: String },
}

pub async fn run(cmd: AuthCommand) -> anyhow::Result<()> {
    match cmd {
        AuthCommand::Login { email, password, server, browser, no_browser } => {
            if let Some(s) = &server {
                config::save_server(s)?;
            }
            let api = Api::new(server.unwrap_or_else(config::server_url), None);
            let asked_for_password = email.is_some() || password.is_some() || std::env::var("AGNES_PASSWORD").is_ok();
            if browser || no_browser || (!asked_for_password && has_sso(&api).await) {
                browser_login(&api, !no_browser).await
            } else {
                login(&api, email, password).await
            }
        }
        AuthCommand::Logout => {
            if config::delete_token()? {
                println!("Logged out.");
            } else {
                println!("Not logged in.");
            }
            Ok(())
        }
        AuthCommand::Whoami { json } => whoami(json),
        AuthCommand::ImportToken { token, server, email, skip_verify } => {
            import_token(token, server, email, skip_verify).await
        }
        AuthCommand::Token(t) => token(t).await,
    }
}

fn prompt(label: &str, secret: bool) -> anyhow::Result<String> {
    if !std::io::stdin().is_terminal() {
        bail!("{label} is required (pass it as a flag; no terminal to ask on)");
    }
    eprint!("{label}: ");
    if secret {
        // No echo control without a terminal library: say so rather than pretend.
        eprint!("(input is visible) ");
    }
    let mut s = String::new();
    std::io::stdin().read_line(&mut s)?;
    Ok(s.trim().to_string())
}

async fn login(api: &Api, email: Option<String>, password: Option<String>) -> anyhow::Result<()> {
    let email = match email {
        Some(e) => e,
        None => prompt("Email", false)?,
    };
    let password = match password.or_else(|| std::env::var("AGNES_PASSWORD").ok()) {
        Some(p) => p,
        None => prompt("Password", true)?,
    };
    let session: SessionToken = api.post_as("/auth/token", &Credentials { email, password }).await?;
    config::save_token(&session.access_token, &session.email)?;
    println!("Logged in to {} as {} ({}).", api.server, session.email, session.role);
    Ok(())
}

/// Whether the server offers single sign-on (an older server without the route: no).
async fn has_sso(api: &Api) -> bool {
    api.get_as::<Vec<SsoProvider>>("/auth/providers").await.is_ok_and(|p| !p.is_empty())
}

/// How long the browser sign-in waits for the person.
const BROWSER_WAIT: std::time::Duration = std::time::Duration::from_secs(300);

/// Sign in through the browser: a listener on a loopback port, the server's `/cli-login`
/// page (signed in however the person signs in), and back to the listener with a one-time
/// code, which is traded for a personal access token.
async fn browser_login(api: &Api, open: bool) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.context("cannot listen on a loopback port")?;
    let port = listener.local_addr()?.port();
    let state = hex::encode(rand::random::<[u8; 16]>());
    let url = format!("{}/cli-login?port={port}&state={state}", api.server.trim_end_matches('/'));
    println!("Sign in in your browser: {url}");
    if open && !open_browser(&url) {
        println!("(No browser could be opened here: open the page above yourself.)");
    }
    let code = tokio::time::timeout(BROWSER_WAIT, wait_for_code(&listener, &state))
        .await
        .map_err(|_| anyhow::anyhow!("no sign-in within {} minutes", BROWSER_WAIT.as_secs() / 60))
        .map_err(|e| crate::exit::Hinted::wrap("run `agnes auth login` again and allow it in the browser", e))??;
    let issued: CliToken = api.post_as("/auth/cli/exchange", &json!({"code": code})).await?;
    config::save_token(&issued.token, &issued.email)?;
    println!("Logged in to {} as {} (a personal access token for 90 days).", api.server, issued.email);
    Ok(())
}

/// The browser's system opener, if there is one.
fn open_browser(url: &str) -> bool {
    let opener = if cfg!(target_os = "macos") { "open" } else { "xdg-open" };
    std::process::Command::new(opener)
        .arg(url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Answer requests on the listener until one is `/callback` with our state: its code.
async fn wait_for_code(listener: &tokio::net::TcpListener, state: &str) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    loop {
        let (mut stream, _) = listener.accept().await?;
        let mut buf = vec![0u8; 8192];
        let n = stream.read(&mut buf).await.unwrap_or(0);
        let head = String::from_utf8_lossy(&buf[..n]);
        let target = head.lines().next().and_then(|l| l.split_whitespace().nth(1)).unwrap_or_default();
        let query: std::collections::HashMap<String, String> = target
            .strip_prefix("/callback?")
            .unwrap_or_default()
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), percent_encoding::percent_decode_str(v).decode_utf8_lossy().into_owned()))
            .collect();
        let ours = query.get("state").is_some_and(|s| s == state);
        let (status, text) = match (ours, query.get("code")) {
            (true, Some(_)) => ("200 OK", "agnes is signed in. You can close this tab."),
            _ => ("400 Bad Request", "This is not the sign-in agnes is waiting for."),
        };
        let page = format!("<!doctype html><meta charset=\"utf-8\"><title>agnes</title><p>{text}</p>");
        let reply = format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
            page.len()
        );
        let _ = stream.write_all(reply.as_bytes()).await;
        if let (true, Some(code)) = (ours, query.get("code")) {
            return Ok(code.clone());
        }
    }
}

/// The claims of a session JWT or a personal access token, without verifying the signature.
fn claims(token: &str) -> Option<Value> {
    use base64::Engine;
    let jwt = token.strip_prefix("agnes_pat_").unwrap_or(token);
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn whoami(as_json: bool) -> anyhow::Result<()> {
    let token = config::token().ok_or(ApiFailure::NotLoggedIn)?;
    let c = claims(&token).context("the saved token is not a JWT")?;
    let exp = c["exp"].as_i64().and_then(|e| chrono::DateTime::from_timestamp(e, 0)).map(|t| t.to_rfc3339());
    let out = json!({
        "server": config::server_url(),
        "user_id": c["sub"], "email": c["email"], "type": c["typ"],
        "expires_at": exp, "token_id": if c["typ"] == "pat" { c["jti"].clone() } else { Value::Null },
    });
    if as_json {
        output::json(&out);
    } else {
        println!(
            "{} on {} ({} token, {})",
            output::cell(&out["email"]),
            out["server"].as_str().unwrap_or(""),
            output::cell(&out["type"]),
            exp.map(|e| format!("expires {e}")).unwrap_or_else(|| "no expiry".into())
        );
    }
    Ok(())
}

async fn import_token(
    token: String,
    server: Option<String>,
    email: Option<String>,
    skip_verify: bool,
) -> anyhow::Result<()> {
    let token = token.trim().to_string();
    let server = server.unwrap_or_else(config::server_url);
    if !skip_verify {
        Api::new(server.clone(), Some(token.clone())).get("/api/me/effective-access").await?;
    }
    let email =
        email.or_else(|| claims(&token).and_then(|c| c["email"].as_str().map(String::from))).unwrap_or_default();
    config::save_server(&server)?;
    config::save_token(&token, &email)?;
    println!("Token saved for {} on {server}.", if email.is_empty() { "(unknown user)" } else { &email });
    Ok(())
}

/// A token request for `name` living `ttl` (`<N>d`, `<N>h` or `never`).
fn new_token(name: String, ttl: &str) -> anyhow::Result<NewToken> {
    let token = NewToken { name, expires_in_days: None, scope: None, ttl_seconds: None };
    let t = ttl.trim().to_lowercase();
    if t == "never" {
        return Ok(NewToken { expires_in_days: Some(None), ..token });
    }
    let unit = t.chars().last().unwrap_or(' ');
    let n = &t[..t.len() - unit.len_utf8().min(t.len())];
    let n: i64 = n.parse().with_context(|| format!("invalid --ttl {ttl:?}: use <N>d, <N>h or never"))?;
    match unit {
        'd' => Ok(NewToken { expires_in_days: Some(Some(n)), ..token }),
        'h' => Ok(NewToken { ttl_seconds: Some(n * 3600), ..token }),
        _ => bail!("invalid --ttl {ttl:?}: use <N>d, <N>h or never"),
    }
}

async fn token(cmd: TokenCommand) -> anyhow::Result<()> {
    let api = Api::from_config();
    if !api.has_token() {
        return Err(ApiFailure::NotLoggedIn.into());
    }
    match cmd {
        TokenCommand::Create { name, ttl, raw } => {
            let issued: IssuedToken = api.post_as("/auth/tokens", &new_token(name, &ttl)?).await?;
            if raw {
                println!("{}", issued.token);
            } else {
                let expires = issued.expires_at.as_deref().unwrap_or("never");
                println!("Token '{}' created (id {}, expires {expires}).", issued.name, issued.id);
                println!("{}", issued.token);
                println!("It is shown only now: store it somewhere safe.");
            }
        }
        TokenCommand::List { json } => {
            let v: Vec<TokenView> = api.get_as("/auth/tokens").await?;
            output::listing(
                &v,
                json,
                &[
                    ("id", "ID"),
                    ("name", "NAME"),
                    ("prefix", "PREFIX"),
                    ("created_at", "CREATED"),
                    ("expires_at", "EXPIRES"),
                    ("last_used_at", "LAST USED"),
                    ("revoked_at", "REVOKED"),
                ],
            );
        }
        TokenCommand::Revoke { token } => {
            let list: Vec<TokenView> = api.get_as("/auth/tokens").await?;
            let matches: Vec<&TokenView> =
                list.iter().filter(|t| t.id == token || t.prefix == token || t.name == token).collect();
            let id = match matches.as_slice() {
                [one] => one.id.clone(),
                [] => bail!("no token of yours matches {token:?} (by id, prefix or name)"),
                _ => bail!("{} tokens match {token:?}: revoke by id", matches.len()),
            };
            api.delete(&format!("/auth/tokens/{id}")).await?;
            println!("Token {id} revoked.");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn ttls() {
        // The wire body: `null` (never expires) differs from an absent field (the default).
        let body = |ttl: &str| serde_json::to_value(super::new_token("ci".into(), ttl).unwrap()).unwrap();
        assert_eq!(body("never"), serde_json::json!({"name": "ci", "expires_in_days": null}));
        assert_eq!(body("30d"), serde_json::json!({"name": "ci", "expires_in_days": 30}));
        assert_eq!(body("2h"), serde_json::json!({"name": "ci", "ttl_seconds": 7200}));
        assert!(super::new_token("ci".into(), "soon").is_err());
        assert!(super::new_token("ci".into(), "5ü").is_err());
    }
}
