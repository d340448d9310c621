//! Talking to PostgreSQL: connecting (TLS by rustls), what the server says about itself,
//! what it holds (discovery), the columns of a relation, and rows as binary COPY.

use super::config::{PgSource, SslMode};
use super::types::Kind;
use crate::ConnectorError;
use agnes_core::ident::quote_ident;
use postgres::types::{FromSql, Type};
use postgres::Client;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::sync::Arc;

/// PostgreSQL's errors, with the server's message and detail but never the connection
/// settings (which may hold a password).
pub fn source_error(context: &str, e: postgres::Error) -> ConnectorError {
    let text = match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(detail) => format!("{}: {} ({detail})", db.code().code(), db.message()),
            None => format!("{}: {}", db.code().code(), db.message()),
        },
        // The client's own message ("error connecting to server") says what failed; its
        // cause says why (refused, timed out, a certificate).
        None => match std::error::Error::source(&e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        },
    };
    ConnectorError::Source(format!("{context}: {text}"))
}

/// Accepts any certificate: `prefer` and `require` encrypt without verifying, as libpq does.
#[derive(Debug)]
struct Unverified(Arc<CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn tls(source: &PgSource) -> Result<tokio_postgres_rustls::MakeRustlsConnect, ConnectorError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ConnectorError::Config(format!("TLS: {e}")))?;
    let config = match source.config.sslmode {
        SslMode::VerifyFull => {
            let mut roots = rustls::RootCertStore::empty();
            match &source.config.sslrootcert {
                Some(path) => {
                    use rustls::pki_types::pem::PemObject;
                    for cert in CertificateDer::pem_file_iter(path)
                        .map_err(|e| ConnectorError::Config(format!("sslrootcert {}: {e}", path.display())))?
                    {
                        let cert = cert.map_err(|e| ConnectorError::Config(format!("sslrootcert: {e}")))?;
                        roots.add(cert).map_err(|e| ConnectorError::Config(format!("sslrootcert: {e}")))?;
                    }
                }
                None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        _ => builder.dangerous().with_custom_certificate_verifier(Arc::new(Unverified(provider))).with_no_client_auth(),
    };
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// A client of `source`.
pub fn connect(source: &PgSource) -> Result<Client, ConnectorError> {
    let config = source.client_config()?;
    config.connect(tls(source)?).map_err(|e| source_error(&format!("cannot connect to '{}'", source.name), e))
}

/// What `agnes admin source test` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFacts {
    pub server_version: String,
    pub role: String,
    pub superuser: bool,
    /// Tables and views the role may SELECT, outside the system schemas.
    pub tables_visible: i64,
}

const USER_RELATIONS: &str = "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE c.relkind IN ('r', 'v', 'm', 'p', 'f') \
       AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' \
       AND has_table_privilege(c.oid, 'SELECT')";

pub fn server_facts(client: &mut Client) -> Result<ServerFacts, ConnectorError> {
    let row = client
        .query_one(
            &format!(
                "SELECT current_setting('server_version'), current_user::text, \
                 (SELECT rolsuper FROM pg_roles WHERE rolname = current_user), (SELECT count(*) {USER_RELATIONS})"
            ),
            &[],
        )
        .map_err(|e| source_error("cannot read the server's facts", e))?;
    Ok(ServerFacts {
        server_version: row.get(0),
        role: row.get(1),
        superuser: row.get::<_, Option<bool>>(2).unwrap_or(false),
        tables_visible: row.get(3),
    })
}

/// One relation the role may read.
#[derive(Debug, Clone, PartialEq)]
pub struct PgRelation {
    pub schema: String,
    pub name: String,
    /// `table`, `view`, `materialized_view`, `partitioned_table` or `foreign_table`.
    pub kind: &'static str,
    pub columns: Vec<PgColumn>,
    pub primary_key: Vec<String>,
    /// From the planner's statistics; `None` before the first ANALYZE and for views.
    pub estimated_rows: Option<i64>,
    pub estimated_bytes: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgColumn {
    pub name: String,
    /// As PostgreSQL writes it: `numeric(12,2)`, `timestamp with time zone`…
    pub type_name: String,
    pub nullable: bool,
}

fn relkind(k: i8) -> &'static str {
    match k as u8 {
        b'r' => "table",
        b'v' => "view",
        b'm' => "materialized_view",
        b'p' => "partitioned_table",
        _ => "foreign_table",
    }
}

/// Every relation the role may read, with columns, primary key and estimates.
pub fn discover(client: &mut Client) -> Result<Vec<PgRelation>, ConnectorError> {
    let err = |e| source_error("cannot list the source's tables", e);
    let relations = client
        .query(
            &format!(
                "SELECT c.oid, n.nspname::text, c.relname::text, c.relkind, c.reltuples::float8, \
                 CASE WHEN c.relkind IN ('r', 'm', 'p') THEN pg_total_relation_size(c.oid) END \
                 {USER_RELATIONS} ORDER BY 2, 3"
            ),
            &[],
        )
        .map_err(err)?;
    let oids: Vec<u32> = relations.iter().map(|r| r.get(0)).collect();
    let columns = client
        .query(
            "SELECT a.attrelid, a.attname::text, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull \
             FROM pg_attribute a WHERE a.attrelid = ANY($1) AND a.attnum > 0 AND NOT a.attisdropped \
             ORDER BY a.attrelid, a.attnum",
            &[&oids],
        )
        .map_err(err)?;
    let keys = client
        .query(
            "SELECT i.indrelid, a.attname::text FROM pg_index i \
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
             WHERE i.indisprimary AND i.indrelid = ANY($1) ORDER BY i.indrelid, array_position(i.indkey, a.attnum)",
            &[&oids],
        )
        .map_err(err)?;
    Ok(relations
        .iter()
        .map(|r| {
            let oid: u32 = r.get(0);
            let rows: f64 = r.get(4);
            PgRelation {
                schema: r.get(1),
                name: r.get(2),
                kind: relkind(r.get(3)),
                columns: columns
                    .iter()
                    .filter(|c| c.get::<_, u32>(0) == oid)
                    .map(|c| PgColumn { name: c.get(1), type_name: c.get(2), nullable: c.get(3) })
                    .collect(),
                primary_key: keys.iter().filter(|k| k.get::<_, u32>(0) == oid).map(|k| k.get(1)).collect(),
                estimated_rows: (rows >= 0.0).then_some(rows as i64),
                estimated_bytes: r.get(5),
            }
        })
        .collect())
}

/// A column as the extract reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceColumn {
    pub name: String,
    pub pg_type: Type,
    pub kind: Kind,
}

/// The columns of `select` (the client resolves enums, domains and arrays), with the
/// `numeric(p,s)` modifiers of `relation`'s columns when the select reads one relation
/// whole. A column of a type with no mapping fails here, naming it.
pub fn columns_of(
    client: &mut Client,
    select: &str,
    relation: Option<(&str, &str)>,
) -> Result<Vec<SourceColumn>, ConnectorError> {
    let statement = client.prepare(select).map_err(|e| source_error("cannot read the source's columns", e))?;
    let typmods: Vec<(String, i32)> = match relation {
        Some((schema, table)) => client
            .query(
                "SELECT a.attname::text, a.atttypmod FROM pg_attribute a \
                 JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped",
                &[&schema, &table],
            )
            .map_err(|e| source_error("cannot read the source's columns", e))?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect(),
        None => Vec::new(),
    };
    statement
        .columns()
        .iter()
        .map(|c| {
            let typmod = typmods.iter().find(|(n, _)| n == c.name()).map_or(-1, |(_, t)| *t);
            let kind = Kind::of(c.type_(), typmod).map_err(|ty| {
                ConnectorError::Source(format!(
                    "column {} has type {ty}, which agnes cannot map to parquet; cast it in a materialized \
                     source_query (e.g. {}::text)",
                    c.name(),
                    quote_ident(c.name())
                ))
            })?;
            Ok(SourceColumn { name: c.name().to_string(), pg_type: c.type_().clone(), kind })
        })
        .collect()
}

/// The planner's estimate of `select`: rows and average row width in bytes. Nothing runs.
pub fn plan_estimate(client: &mut Client, select: &str) -> Result<(f64, f64), postgres::Error> {
    // The simple protocol answers the plan as text (EXPLAIN's json is no bindable type).
    let plan = client
        .simple_query(&format!("EXPLAIN (FORMAT JSON) {select}"))?
        .into_iter()
        .find_map(|m| match m {
            postgres::SimpleQueryMessage::Row(row) => row.get(0).map(String::from),
            _ => None,
        })
        .unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(&plan).unwrap_or_default();
    let top = &v[0]["Plan"];
    Ok((top["Plan Rows"].as_f64().unwrap_or(0.0).max(0.0), top["Plan Width"].as_f64().unwrap_or(0.0).max(0.0)))
}

/// A value's bytes as they came (binary format), for [`super::types::append`].
pub struct Raw<'a>(pub &'a [u8]);

impl<'a> FromSql<'a> for Raw<'a> {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(raw))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}
