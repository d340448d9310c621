//! `agnes auth …`: sign in, see who you are, and manage personal access tokens.

use crate::client::api::{Api, ApiFailure};
use crate::client::{config, output};
use agnes_core::api::{Credentials, IssuedToken, NewToken, SessionToken, TokenView};
use anyhow::{bail, Context};
use clap::Subcommand;
use serde_json::{json, Value};
use std::io::IsTerminal;

#[derive(Subcommand)]
pub enum AuthCommand {
    /// Sign in with email and password; saves a 24-hour session token.
    Login {
        #[arg(long)]
        email: Option<String>,
        /// Read from AGNES_PASSWORD or prompted for when omitted.
        #[arg(long)]
        password: Option<String>,
        /// Server URL to sign in to (saved for later commands).
        #[arg(long)]
        server: Option<String>,
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
        AuthCommand::Login { email, password, server } => login(email, password, server).await,
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

async fn login(email: Option<String>, password: Option<String>, server: Option<String>) -> anyhow::Result<()> {
    if let Some(s) = &server {
        config::save_server(s)?;
    }
    let email = match email {
        Some(e) => e,
        None => prompt("Email", false)?,
    };
    let password = match password.or_else(|| std::env::var("AGNES_PASSWORD").ok()) {
        Some(p) => p,
        None => prompt("Password", true)?,
    };
    let api = Api::new(server.unwrap_or_else(config::server_url), None);
    let session: SessionToken = api.post_as("/auth/token", &Credentials { email, password }).await?;
    config::save_token(&session.access_token, &session.email)?;
    println!("Logged in to {} as {} ({}).", api.server, session.email, session.role);
    Ok(())
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
