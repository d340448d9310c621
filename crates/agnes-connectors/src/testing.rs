//! A throw-away PostgreSQL cluster for tests: `initdb` and `pg_ctl` from the machine's
//! PostgreSQL, on a free loopback port, in a temporary directory removed (and the server
//! stopped) when the value drops. PostgreSQL refuses to run as root, so as root the
//! commands run as the `postgres` system user (`runuser`).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The superuser the cluster is created with, and its password.
pub const ADMIN_USER: &str = "agnes_admin";
pub const ADMIN_PASSWORD: &str = "throwaway-admin-pw";

pub struct PgCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
}

/// The directory holding `initdb`, `pg_ctl` and `postgres`: `AGNES_PG_BIN`, else the
/// newest `/usr/lib/postgresql/<major>/bin`.
fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("AGNES_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is installed (/usr/lib/postgresql), or AGNES_PG_BIN names its bin directory")
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .collect();
    versions.sort();
    versions.pop().expect("a PostgreSQL version under /usr/lib/postgresql").1
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free loopback port").port()
}

impl PgCluster {
    /// Create and start a cluster; panics with PostgreSQL's log when it cannot.
    pub fn start() -> PgCluster {
        Self::start_with(false)
    }

    /// A cluster that also speaks TLS, with a certificate for `127.0.0.1` and `localhost`
    /// issued by a CA of its own ([`PgCluster::ca_file`]).
    pub fn start_tls() -> PgCluster {
        Self::start_with(true)
    }

    /// The CA that issued a TLS cluster's certificate (PEM).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    fn start_with(tls: bool) -> PgCluster {
        let dir = tempfile::Builder::new().prefix("agnes-pg").tempdir().expect("a temporary directory");
        let bin = bin_dir();
        let cluster = PgCluster { port: free_port(), bin, dir };
        if as_root() {
            let status = Command::new("chown").args(["-R", "postgres:postgres"]).arg(cluster.dir.path()).status();
            assert!(
                status.is_ok_and(|s| s.success()),
                "cannot hand {} to the postgres user",
                cluster.dir.path().display()
            );
        }
        let pwfile = cluster.dir.path().join("pw");
        std::fs::write(&pwfile, ADMIN_PASSWORD).expect("write the password file");
        if as_root() {
            let _ = Command::new("chown").args(["postgres:postgres"]).arg(&pwfile).status();
        }
        cluster.run(
            "initdb",
            &[
                "-D".as_ref(),
                cluster.data().as_os_str(),
                "-U".as_ref(),
                ADMIN_USER.as_ref(),
                "--auth=scram-sha-256".as_ref(),
                "--pwfile".as_ref(),
                pwfile.as_os_str(),
                "-E".as_ref(),
                "UTF8".as_ref(),
                "--no-locale".as_ref(),
                "--no-sync".as_ref(),
            ],
        );
        let mut options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            cluster.port,
            cluster.dir.path().display()
        );
        if tls {
            cluster.issue_certificate();
            let (crt, key) = (cluster.dir.path().join("server.crt"), cluster.dir.path().join("server.key"));
            options.push_str(&format!(
                " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                crt.display(),
                key.display()
            ));
        }
        let log = cluster.dir.path().join("log");
        cluster.run(
            "pg_ctl",
            &[
                "-D".as_ref(),
                cluster.data().as_os_str(),
                "-o".as_ref(),
                options.as_ref(),
                "-l".as_ref(),
                log.as_os_str(),
                "-w".as_ref(),
                "start".as_ref(),
            ],
        );
        cluster
    }

    /// A CA and a server certificate signed by it (a self-signed leaf is no trust anchor
    /// for webpki), readable by the server only.
    fn issue_certificate(&self) {
        let dir = self.dir.path();
        std::fs::write(
            dir.join("leaf.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
             keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
        )
        .expect("write the extensions");
        for args in [
            "req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj /CN=agnes-test-ca",
            "req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=localhost",
            "x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 2 -extfile leaf.ext",
        ] {
            let out = Command::new("openssl").args(args.split(' ')).current_dir(dir).output().expect("openssl runs");
            assert!(out.status.success(), "openssl {args}: {}", String::from_utf8_lossy(&out.stderr));
        }
        let key = dir.join("server.key");
        std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).expect("chmod the key");
        if as_root() {
            let _ = Command::new("chown").args(["postgres:postgres"]).arg(&key).arg(dir.join("server.crt")).status();
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn run(&self, program: &str, args: &[&std::ffi::OsStr]) {
        let exe = self.bin.join(program);
        let output = if as_root() {
            Command::new("runuser").args(["-u", "postgres", "--"]).arg(&exe).args(args).output()
        } else {
            Command::new(&exe).args(args).output()
        }
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", exe.display()));
        if !output.status.success() {
            let log = std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default();
            panic!(
                "{program} failed: {}\n{}\n{log}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }

    /// A connection URL for `user` with `password` to `database`.
    pub fn url(&self, user: &str, password: &str, database: &str) -> String {
        format!("postgresql://{user}:{password}@127.0.0.1:{}/{database}", self.port)
    }

    /// A superuser client on `database`.
    pub fn client(&self, database: &str) -> postgres::Client {
        postgres::Client::connect(&self.url(ADMIN_USER, ADMIN_PASSWORD, database), postgres::NoTls)
            .expect("connect to the throw-away cluster")
    }

    /// Run SQL in `database` as the superuser (several statements allowed).
    pub fn execute_in(&self, database: &str, sql: &str) {
        self.client(database).batch_execute(sql).unwrap_or_else(|e| panic!("{e:?}\n{sql}"));
    }

    /// Run SQL in `postgres` as the superuser.
    pub fn execute(&self, sql: &str) {
        self.execute_in("postgres", sql);
    }

    /// Load a CSV (header row, `NA` for NULL) into an existing table of `database`.
    pub fn load_csv(&self, database: &str, table: &str, csv: &Path) {
        let mut client = self.client(database);
        let mut writer = client
            .copy_in(&format!("COPY {table} FROM STDIN WITH (FORMAT csv, HEADER true, NULL 'NA')"))
            .expect("COPY FROM STDIN");
        let bytes = std::fs::read(csv).unwrap_or_else(|e| panic!("{}: {e}", csv.display()));
        std::io::Write::write_all(&mut writer, &bytes).expect("send the CSV");
        writer.finish().expect("COPY finishes");
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let exe = self.bin.join("pg_ctl");
        let data = self.data();
        let args = ["-D".as_ref(), data.as_os_str(), "-m".as_ref(), "immediate".as_ref(), "stop".as_ref()];
        let _ = if as_root() {
            Command::new("runuser").args(["-u", "postgres", "--"]).arg(&exe).args(args).output()
        } else {
            Command::new(&exe).args(args).output()
        };
    }
}

fn as_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}
