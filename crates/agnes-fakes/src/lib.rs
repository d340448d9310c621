//! Faithful fakes of the SaaS APIs agnes reads, for tests and benchmarks: real HTTP on a
//! loopback port, the vendor's paths, parameters, auth headers, paging and error bodies,
//! built from each vendor's published API reference. Never linked into the agnes binary.

pub mod bigquery;
pub mod keboola;
mod server;
