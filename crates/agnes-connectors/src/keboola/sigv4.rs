//! AWS Signature Version 4 for a presigned GET (query-string authentication), which is
//! how `s3://` slices of a Keboola export on AWS are read with the federation credentials
//! `files/{id}?federationToken=1` hands out.

use crate::ConnectorError;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};
use sha2::{Digest, Sha256};

/// SigV4's URI encoding: everything but `A-Z a-z 0-9 - . _ ~`.
pub const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

pub struct Credentials<'a> {
    pub access_key: &'a str,
    pub secret_key: &'a str,
    pub session_token: Option<&'a str>,
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

fn uri_encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, UNRESERVED).to_string()
}

/// `base` (scheme and host) + `path` (starting with `/`, unencoded), presigned for
/// `expires` seconds from `now`.
pub fn presign_get(
    base: &str,
    path: &str,
    region: &str,
    c: &Credentials<'_>,
    now: DateTime<Utc>,
    expires: u64,
) -> Result<String, ConnectorError> {
    let host = base
        .split_once("://")
        .map(|(_, h)| h)
        .filter(|h| !h.is_empty())
        .ok_or_else(|| ConnectorError::Config(format!("not an endpoint URL: {base}")))?;
    let canonical_uri = path.split('/').map(uri_encode).collect::<Vec<_>>().join("/");
    let date = now.format("%Y%m%d").to_string();
    let stamp = now.format("%Y%m%dT%H%M%SZ").to_string();
    let scope = format!("{date}/{region}/s3/aws4_request");
    let mut query = vec![
        ("X-Amz-Algorithm".to_string(), "AWS4-HMAC-SHA256".to_string()),
        ("X-Amz-Credential".to_string(), format!("{}/{scope}", c.access_key)),
        ("X-Amz-Date".to_string(), stamp.clone()),
        ("X-Amz-Expires".to_string(), expires.to_string()),
        ("X-Amz-SignedHeaders".to_string(), "host".to_string()),
    ];
    if let Some(token) = c.session_token {
        query.push(("X-Amz-Security-Token".to_string(), token.to_string()));
    }
    query.sort();
    let canonical_query =
        query.iter().map(|(k, v)| format!("{}={}", uri_encode(k), uri_encode(v))).collect::<Vec<_>>().join("&");
    let canonical_request = format!("GET\n{canonical_uri}\n{canonical_query}\nhost:{host}\n\nhost\nUNSIGNED-PAYLOAD");
    let string_to_sign =
        format!("AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{}", hex::encode(Sha256::digest(canonical_request.as_bytes())));
    let key = ["s3", "aws4_request"]
        .iter()
        .fold(hmac(&hmac(format!("AWS4{}", c.secret_key).as_bytes(), &date), region), |k, part| hmac(&k, part));
    let signature = hex::encode(hmac(&key, &string_to_sign));
    Ok(format!("{base}{canonical_uri}?{canonical_query}&X-Amz-Signature={signature}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AWS's published example of a presigned URL ("Authenticating Requests: Using Query
    /// Parameters", Amazon S3 API reference): the same inputs give the same signature.
    #[test]
    fn matches_the_aws_documentation_example() {
        let now = DateTime::parse_from_rfc3339("2013-05-24T00:00:00Z").unwrap().with_timezone(&Utc);
        let url = presign_get(
            "https://examplebucket.s3.amazonaws.com",
            "/test.txt",
            "us-east-1",
            &Credentials {
                access_key: "AKIAIOSFODNN7EXAMPLE",
                secret_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                session_token: None,
            },
            now,
            86400,
        )
        .unwrap();
        assert!(
            url.ends_with("X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"),
            "{url}"
        );
        assert!(url.starts_with("https://examplebucket.s3.amazonaws.com/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256"));
    }
}
