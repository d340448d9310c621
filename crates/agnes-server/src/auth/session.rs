//! Session JWTs (HS256, 24 h) and the verification shared with personal access tokens.

use agnes_store::identity::User;
use chrono::{Duration, Utc};
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

pub const SESSION_HOURS: i64 = 24;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub email: String,
    /// `session` or `pat`.
    pub typ: String,
    pub jti: String,
    pub iat: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Sessions: the user's session generation at issue. The session ends when it moves
    /// (logout, password change or reset, deactivation). Absent in older tokens: 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sgen: Option<i64>,
}

impl Claims {
    /// Whether this session was issued at the user's current session generation.
    pub fn session_is_current(&self, user: &User) -> bool {
        self.sgen.unwrap_or(0) == user.session_generation
    }
}

/// Sign a 24-hour session token for a user, valid until their session generation moves.
pub fn issue(secret: &[u8], user: &User) -> String {
    let now = Utc::now();
    let claims = Claims {
        sub: user.id.clone(),
        email: user.email.clone(),
        typ: "session".into(),
        jti: uuid::Uuid::new_v4().simple().to_string(),
        iat: now.timestamp(),
        exp: Some((now + Duration::hours(SESSION_HOURS)).timestamp()),
        scope: None,
        sgen: Some(user.session_generation),
    };
    encode(&Header::default(), &claims, &EncodingKey::from_secret(secret))
        .expect("HS256 signing of plain claims cannot fail")
}

/// Verify the signature and, with `check_exp`, the expiry. Personal access tokens are
/// checked without it: their expiry of record is the database's, which can answer
/// precisely "Token expired".
pub fn verify(secret: &[u8], token: &str, check_exp: bool) -> Option<Claims> {
    let mut v = Validation::new(Algorithm::HS256);
    v.required_spec_claims.clear();
    v.validate_exp = check_exp;
    v.leeway = 0;
    decode::<Claims>(token, &DecodingKey::from_secret(secret), &v).ok().map(|d| d.claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(generation: i64) -> User {
        User {
            id: "u1".into(),
            email: "a@b.c".into(),
            name: None,
            password_hash: None,
            active: true,
            created_at: String::new(),
            session_generation: generation,
        }
    }

    #[test]
    fn round_trip_and_tamper() {
        let t = issue(b"0123456789abcdef0123456789abcdef", &user(3));
        let c = verify(b"0123456789abcdef0123456789abcdef", &t, true).unwrap();
        assert_eq!((c.sub.as_str(), c.typ.as_str()), ("u1", "session"));
        assert!(c.session_is_current(&user(3)));
        assert!(!c.session_is_current(&user(4)), "a moved generation ends the session");
        assert!(c.exp.unwrap() - c.iat == SESSION_HOURS * 3600);
        assert!(verify(b"another-secret-another-secret-xx", &t, true).is_none());
        let mut bad = t.clone();
        bad.pop();
        assert!(verify(b"0123456789abcdef0123456789abcdef", &bad, true).is_none());
    }
}
