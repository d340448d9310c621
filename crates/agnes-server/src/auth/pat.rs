//! Personal access tokens: an HS256 JWT (`typ: "pat"`, `jti` = the token row id) behind
//! a fixed `agnes_pat_` prefix so secret scanners recognise leaked tokens. Only the
//! SHA-256 of the whole token and a short display prefix are stored.

use agnes_core::api::IssuedToken;
use agnes_store::identity::{PatRecord, User};
use agnes_store::Store;
use chrono::{Duration, Utc};
use jsonwebtoken::{encode, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const TOKEN_PREFIX: &str = "agnes_pat_";

#[derive(Debug, Serialize, Deserialize)]
pub struct PatClaims {
    pub sub: String,
    pub email: String,
    pub typ: String,
    pub jti: String,
    pub iat: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    pub scope: String,
}

pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The scope of a token created without one.
pub const DEFAULT_SCOPE: &str = "general";

/// Issue and store a token for `user` with `scope` (recorded in its `scope` claim), valid
/// for `lifetime` (`None` = never expires).
pub async fn issue(
    store: &Store,
    secret: &[u8],
    user: &User,
    name: &str,
    scope: &str,
    lifetime: Option<Duration>,
) -> Result<IssuedToken, crate::ServerError> {
    let id = uuid::Uuid::new_v4().to_string();
    let now = Utc::now();
    let exp = lifetime.map(|d| now + d);
    let claims = PatClaims {
        sub: user.id.clone(),
        email: user.email.clone(),
        typ: "pat".into(),
        jti: id.clone(),
        iat: now.timestamp(),
        exp: exp.map(|t| t.timestamp()),
        scope: scope.to_string(),
    };
    let jwt = encode(&Header::default(), &claims, &EncodingKey::from_secret(secret))
        .map_err(|e| crate::ServerError::Config(format!("cannot sign token: {e}")))?;
    let token = format!("{TOKEN_PREFIX}{jwt}");
    let record = PatRecord {
        prefix: id.replace('-', "")[..8].to_string(),
        id: id.clone(),
        user_id: user.id.clone(),
        name: name.to_string(),
        token_hash: token_hash(&token),
        created_at: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        expires_at: exp.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
    };
    store.identity().insert_pat(&record).await?;
    Ok(IssuedToken {
        id,
        name: record.name,
        prefix: record.prefix,
        token,
        expires_at: record.expires_at,
        created_at: record.created_at,
    })
}
