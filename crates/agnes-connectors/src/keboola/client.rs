//! A native client of the Keboola Storage API (spec §8.1): token verification, tables
//! with their column metadata, async table exports and their jobs, file details with
//! federation credentials, and slice downloads from the stack's object store.

use super::config::KeboolaSource;
use super::sigv4;
use crate::ConnectorError;
use serde::Deserialize;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What `tokens/verify` says of a token (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenFacts {
    pub project: String,
    pub description: String,
    pub expires: Option<String>,
    pub is_master: bool,
}

/// A table as `tables?include=columns,buckets,columnMetadata` lists it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KbcTable {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub primary_key: Vec<String>,
    #[serde(default)]
    pub columns: Vec<String>,
    #[serde(default)]
    pub rows_count: Option<u64>,
    #[serde(default)]
    pub data_size_bytes: Option<u64>,
    #[serde(default)]
    pub last_import_date: Option<String>,
    #[serde(default)]
    pub last_change_date: Option<String>,
    #[serde(default)]
    pub bucket: Option<KbcBucket>,
    /// Column name → metadata entries; PHP sends `[]` for an empty map.
    #[serde(default)]
    pub column_metadata: Value,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KbcBucket {
    pub id: String,
    #[serde(default)]
    pub display_name: Option<String>,
}

impl KbcTable {
    /// The bucket id: the table id without its last dot-separated part.
    pub fn bucket_id(&self) -> &str {
        self.id.rsplit_once('.').map(|(b, _)| b).unwrap_or(&self.id)
    }

    /// One metadata value of a column (the last entry with that key wins, as a later
    /// provider overrides an earlier one).
    pub fn column_meta(&self, column: &str, key: &str) -> Option<String> {
        self.column_metadata
            .get(column)?
            .as_array()?
            .iter()
            .rev()
            .filter(|e| e.get("key").and_then(Value::as_str) == Some(key))
            .find_map(|e| e.get("value").and_then(Value::as_str).map(String::from))
    }
}

/// An exported file as `files/{id}?federationToken=1` describes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KbcFile {
    pub id: u64,
    pub name: String,
    pub url: String,
    #[serde(default)]
    pub is_sliced: bool,
    #[serde(default)]
    pub provider: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub gcs_credentials: Option<GcsCredentials>,
    #[serde(default)]
    pub credentials: Option<AwsCredentials>,
    #[serde(default)]
    pub abs_credentials: Option<AbsCredentials>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct GcsCredentials {
    pub access_token: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AwsCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AbsCredentials {
    #[serde(rename = "SASConnectionString")]
    pub sas_connection_string: String,
}

pub struct StorageClient {
    http: reqwest::blocking::Client,
    base: String,
    token: String,
    source: KeboolaSource,
}

fn transport(e: reqwest::Error) -> ConnectorError {
    // reqwest's message names the URL, which for a signed link carries its signature.
    ConnectorError::Source(format!("cannot reach Keboola: {}", crate::http_error(e)))
}

impl StorageClient {
    pub fn connect(source: &KeboolaSource) -> Result<StorageClient, ConnectorError> {
        let http = reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(slice_timeout())
            .user_agent(concat!("agnes/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(transport)?;
        Ok(StorageClient {
            http,
            base: format!("{}/v2/storage", source.stack_url()?),
            token: source.token()?,
            source: source.clone(),
        })
    }

    /// A Storage API call; an error answer becomes Keboola's own message and code.
    fn call(&self, request: reqwest::blocking::RequestBuilder) -> Result<Value, ConnectorError> {
        let response = request
            .header("X-StorageApi-Token", &self.token)
            .header("Accept", "application/json")
            .send()
            .map_err(transport)?;
        let status = response.status();
        let body: Value = response.json().unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(body);
        }
        let message = body.get("error").and_then(Value::as_str).unwrap_or("no message");
        let code = body.get("code").map(|c| c.as_str().map(String::from).unwrap_or_else(|| c.to_string()));
        let code = code.map(|c| format!(" ({c})")).unwrap_or_default();
        Err(if status == reqwest::StatusCode::UNAUTHORIZED {
            ConnectorError::Config(format!(
                "{}: Keboola refused the token in {}: {message}{code}",
                self.source.label(),
                self.source.token_env()
            ))
        } else {
            ConnectorError::Source(format!("Keboola answered {status}: {message}{code}"))
        })
    }

    fn get(&self, path: &str) -> Result<Value, ConnectorError> {
        self.call(self.http.get(format!("{}/{path}", self.base)))
    }

    pub fn verify(&self) -> Result<TokenFacts, ConnectorError> {
        let v = self.get("tokens/verify")?;
        let text = |v: &Value| v.as_str().map(String::from);
        Ok(TokenFacts {
            project: v.pointer("/owner/name").and_then(text).unwrap_or_default(),
            description: v.get("description").and_then(text).unwrap_or_default(),
            expires: v.get("expires").and_then(text),
            is_master: v.get("isMasterToken").and_then(Value::as_bool).unwrap_or(false),
        })
    }

    pub fn tables(&self) -> Result<Vec<KbcTable>, ConnectorError> {
        let v = self.get("tables?include=columns,buckets,columnMetadata")?;
        serde_json::from_value(v).map_err(|e| ConnectorError::Source(format!("Keboola's table list: {e}")))
    }

    pub fn table(&self, id: &str) -> Result<KbcTable, ConnectorError> {
        let v = self.get(&format!("tables/{}", encode(id)))?;
        serde_json::from_value(v).map_err(|e| ConnectorError::Source(format!("Keboola's table {id}: {e}")))
    }

    /// Start an export of `table` with `params` (the Storage API's JSON body); the job id.
    pub fn export(&self, table: &str, params: &Value) -> Result<u64, ConnectorError> {
        let url = format!("{}/tables/{}/export-async", self.base, encode(table));
        let job = self.call(self.http.post(url).json(params))?;
        id_of(&job, "id").ok_or_else(|| ConnectorError::Source("Keboola's export answer has no job id".into()))
    }

    /// Poll a job until it ends: its file id, or Keboola's message when it failed. Polls
    /// start `AGNES_KEBOOLA_POLL_INTERVAL_SEC` (2 s) apart, growing ×1.5 up to 10 s.
    pub fn wait(&self, job: u64) -> Result<u64, ConnectorError> {
        let started = Instant::now();
        let timeout = self.source.export_timeout();
        let mut interval = std::env::var("AGNES_KEBOOLA_POLL_INTERVAL_SEC")
            .ok()
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|s| *s > 0.0)
            .map(Duration::from_secs_f64)
            .unwrap_or(Duration::from_secs(2));
        loop {
            let v = self.get(&format!("jobs/{job}"))?;
            match v.get("status").and_then(Value::as_str) {
                Some("success") => {
                    return id_of(&v, "/results/file/id").or_else(|| id_of(&v, "/results/fileId")).ok_or_else(|| {
                        ConnectorError::Source(format!("Keboola's export job {job} succeeded without a file"))
                    })
                }
                Some("error") => {
                    let message =
                        v.pointer("/error/message").and_then(Value::as_str).unwrap_or("the export job failed");
                    return Err(ConnectorError::Source(format!("Keboola's export job {job} failed: {message}")));
                }
                _ => {}
            }
            if started.elapsed() + interval > timeout {
                return Err(ConnectorError::Source(format!(
                    "Keboola's export job {job} did not finish within {} s",
                    timeout.as_secs()
                )));
            }
            std::thread::sleep(interval);
            interval = (interval.mul_f64(1.5)).min(Duration::from_secs(10));
        }
    }

    pub fn file(&self, id: u64) -> Result<KbcFile, ConnectorError> {
        let v = self.get(&format!("files/{id}?federationToken=1"))?;
        serde_json::from_value(v).map_err(|e| ConnectorError::Source(format!("Keboola's file {id}: {e}")))
    }

    /// Download every slice of `file` into `dir`, in the manifest's order, `parallel` at a
    /// time; each is retried on network errors and 5xx answers.
    pub fn download(&self, file: &KbcFile, dir: &Path) -> Result<Vec<PathBuf>, ConnectorError> {
        let urls: Vec<String> = if file.is_sliced {
            let manifest: Value = self.fetch_json(&file.url)?;
            manifest
                .get("entries")
                .and_then(Value::as_array)
                .ok_or_else(|| ConnectorError::Source("Keboola's slice manifest has no entries".into()))?
                .iter()
                .map(|e| e.get("url").and_then(Value::as_str).map(String::from))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| ConnectorError::Source("a slice of Keboola's manifest has no url".into()))?
        } else {
            vec![file.url.clone()]
        };
        let targets: Vec<PathBuf> = (0..urls.len()).map(|i| dir.join(format!("slice-{i:05}"))).collect();
        let next = std::sync::atomic::AtomicUsize::new(0);
        let failure = std::sync::Mutex::new(None);
        std::thread::scope(|scope| {
            for _ in 0..self.source.parallel_downloads().min(urls.len()) {
                scope.spawn(|| loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= urls.len() || failure.lock().map(|f| f.is_some()).unwrap_or(true) {
                        return;
                    }
                    if let Err(e) = self.fetch_slice(file, &urls[i], &targets[i]) {
                        let mut f = failure.lock().unwrap_or_else(|e| e.into_inner());
                        f.get_or_insert(e);
                        return;
                    }
                });
            }
        });
        match failure.into_inner().unwrap_or_else(|e| e.into_inner()) {
            Some(e) => Err(e),
            None => Ok(targets),
        }
    }

    fn fetch_json(&self, url: &str) -> Result<Value, ConnectorError> {
        let response = self.http.get(url).send().map_err(transport)?;
        if !response.status().is_success() {
            return Err(ConnectorError::Source(format!("Keboola's file link answered {}", response.status())));
        }
        response
            .json()
            .map_err(|e| ConnectorError::Source(format!("Keboola's slice manifest: {}", crate::http_error(e))))
    }

    /// The request that reads one slice: `gs://` through the GCS JSON API with the bearer
    /// token, `s3://` presigned with the federation credentials, `azure://` with the SAS,
    /// anything else as the signed link it is.
    fn slice_request(&self, file: &KbcFile, url: &str) -> Result<reqwest::blocking::RequestBuilder, ConnectorError> {
        let missing = |what: &str| ConnectorError::Source(format!("Keboola's file {} has no {what}", file.id));
        if let Some(rest) = url.strip_prefix("gs://") {
            let (bucket, key) = rest.split_once('/').ok_or_else(|| missing("valid gs:// slice URL"))?;
            let token = &file.gcs_credentials.as_ref().ok_or_else(|| missing("gcsCredentials"))?.access_token;
            let endpoint = self.source.config.gcs_endpoint.as_deref().unwrap_or("https://storage.googleapis.com");
            let url = format!("{}/storage/v1/b/{bucket}/o/{}?alt=media", endpoint.trim_end_matches('/'), encode(key));
            return Ok(self.http.get(url).bearer_auth(token));
        }
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, key) = rest.split_once('/').ok_or_else(|| missing("valid s3:// slice URL"))?;
            let c = file.credentials.as_ref().ok_or_else(|| missing("credentials"))?;
            let region = file.region.as_deref().unwrap_or("us-east-1");
            let (base, path) = match &self.source.config.s3_endpoint {
                Some(e) => (e.trim_end_matches('/').to_string(), format!("/{bucket}/{key}")),
                None => (format!("https://{bucket}.s3.{region}.amazonaws.com"), format!("/{key}")),
            };
            let signed = sigv4::presign_get(
                &base,
                &path,
                region,
                &sigv4::Credentials {
                    access_key: &c.access_key_id,
                    secret_key: &c.secret_access_key,
                    session_token: Some(&c.session_token),
                },
                chrono::Utc::now(),
                3600,
            )?;
            return Ok(self.http.get(signed));
        }
        if let Some(rest) = url.strip_prefix("azure://") {
            let sas = file.abs_credentials.as_ref().ok_or_else(|| missing("absCredentials"))?;
            let signature = sas
                .sas_connection_string
                .split(';')
                .find_map(|p| p.strip_prefix("SharedAccessSignature="))
                .ok_or_else(|| missing("shared access signature"))?;
            return Ok(self.http.get(format!("https://{rest}?{signature}")));
        }
        Ok(self.http.get(url))
    }

    /// One slice to `target`, retried with backoff on network errors and 5xx; a 4xx fails
    /// at once.
    fn fetch_slice(&self, file: &KbcFile, url: &str, target: &Path) -> Result<(), ConnectorError> {
        let mut delay = Duration::from_millis(250);
        let mut attempt = 1;
        loop {
            let outcome = self.try_fetch(file, url, target);
            match outcome {
                Ok(()) => return Ok(()),
                Err(Fetch::Final(e)) => return Err(e),
                Err(Fetch::Retry(e)) if attempt >= 4 => {
                    return Err(ConnectorError::Source(format!("a slice failed {attempt} times: {e}")))
                }
                Err(Fetch::Retry(_)) => {
                    std::thread::sleep(delay);
                    delay *= 2;
                    attempt += 1;
                }
            }
        }
    }

    fn try_fetch(&self, file: &KbcFile, url: &str, target: &Path) -> Result<(), Fetch> {
        let mut response = self
            .slice_request(file, url)
            .map_err(Fetch::Final)?
            .send()
            .map_err(|e| Fetch::Retry(crate::http_error(e)))?;
        let status = response.status();
        if status.is_server_error() {
            return Err(Fetch::Retry(format!("the object store answered {status}")));
        }
        if !status.is_success() {
            return Err(Fetch::Final(ConnectorError::Source(format!("a slice download answered {status}"))));
        }
        let mut out = std::fs::File::create(target)
            .map_err(|e| Fetch::Final(ConnectorError::Source(format!("cannot create {}: {e}", target.display()))))?;
        response.copy_to(&mut out).map_err(|e| Fetch::Retry(crate::http_error(e)))?;
        Ok(())
    }
}

enum Fetch {
    Retry(String),
    Final(ConnectorError),
}

/// `AGNES_KEBOOLA_SLICE_TIMEOUT_SEC` (300 s): how long one request may take.
fn slice_timeout() -> Duration {
    Duration::from_secs(
        std::env::var("AGNES_KEBOOLA_SLICE_TIMEOUT_SEC").ok().and_then(|v| v.parse().ok()).unwrap_or(300),
    )
}

fn id_of(v: &Value, pointer: &str) -> Option<u64> {
    let v = if pointer.starts_with('/') { v.pointer(pointer)? } else { v.get(pointer)? };
    v.as_u64().or_else(|| v.as_str()?.parse().ok())
}

/// A path segment: everything but unreserved characters percent-encoded.
fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, sigv4::UNRESERVED).to_string()
}
