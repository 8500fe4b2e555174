//! TLS to PostgreSQL: `sslmode` and `sslrootcert` in the URL, as libpq reads them. These run
//! when `EASYCACHING_TEST_POSTGRES` names a server that takes TLS with a certificate for
//! `localhost`, and `EASYCACHING_TEST_POSTGRES_CA` the root that signed it (`.ci/postgres.sh`
//! makes both); otherwise they are skipped with a note.
#![cfg(feature = "postgres")]

use std::path::PathBuf;

use easycaching::{CacheManager, Error, Json};

mod common;

/// The test server, to be reached at `host` with the URL's query `query`.
struct Server {
    user: String,
    port: u16,
    dbname: String,
    root: PathBuf,
    schema: String,
}

impl Server {
    fn from_env(test: &str) -> Option<Server> {
        let (Ok(url), Ok(root)) =
            (std::env::var("EASYCACHING_TEST_POSTGRES"), std::env::var("EASYCACHING_TEST_POSTGRES_CA"))
        else {
            eprintln!(
                "note: skipping {test}: set EASYCACHING_TEST_POSTGRES and EASYCACHING_TEST_POSTGRES_CA \
                 (see .ci/postgres.sh) to run it"
            );
            return None;
        };
        let config: postgres::Config = url.parse().unwrap();
        Some(Server {
            user: config.get_user().unwrap().to_owned(),
            port: config.get_ports()[0],
            dbname: config.get_dbname().unwrap_or("postgres").to_owned(),
            root: root.into(),
            schema: format!("tls_{test}_{}", std::process::id()),
        })
    }

    fn url(&self, host: &str, query: &str) -> String {
        format!("postgres://{}@{host}:{}/{}?{query}", self.user, self.port, self.dbname)
    }

    fn open(&self, host: &str, query: &str) -> Result<CacheManager, Error> {
        CacheManager::builder_postgres(&self.url(host, query)).postgres_schema(&self.schema).open()
    }

    /// A plain connection of the test's own, to look at the server's sessions.
    fn inspect(&self) -> postgres::Client {
        postgres::Client::connect(&self.url("127.0.0.1", "sslmode=disable"), postgres::NoTls).unwrap()
    }

    /// Whether the sessions of `application` are all encrypted (`None`: it has none).
    fn encrypted(&self, application: &str) -> Option<bool> {
        self.inspect()
            .query_one(
                "SELECT bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
                 WHERE a.application_name = $1",
                &[&application],
            )
            .unwrap()
            .get(0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.inspect().batch_execute(&format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.schema));
    }
}

/// A manager works on it: a write read back by a second manager.
fn works(manager: &CacheManager, other: &CacheManager) {
    let cache = manager.create_cache("tls").unwrap();
    cache.set("k", Json::parse(r#"{"over":"tls"}"#).unwrap()).unwrap();
    assert_eq!(other.open_cache("tls").unwrap().get("k").unwrap(), cache.get("k").unwrap());
}

#[test]
fn require_and_prefer_encrypt_and_disable_does_not() {
    let Some(server) = Server::from_env("require_and_prefer") else { return };
    for (mode, encrypted) in [("require", true), ("prefer", true), ("disable", false)] {
        let application = format!("easycaching-tls-{mode}-{}", std::process::id());
        let query = format!("sslmode={mode}&application_name={application}");
        let (manager, other) =
            (server.open("127.0.0.1", &query).unwrap(), server.open("127.0.0.1", &query).unwrap());
        works(&manager, &other);
        assert_eq!(server.encrypted(&application), Some(encrypted), "sslmode={mode}");
    }
}

/// `allow` connects without TLS where the server lets it, and with TLS where it insists: for
/// the role `easycaching_tls_only`, which `.ci/postgres.sh` lets in only over TLS.
#[test]
fn allow_encrypts_only_when_the_server_insists() {
    let Some(server) = Server::from_env("allow") else { return };
    let application = format!("easycaching-tls-allow-{}", std::process::id());
    let query = format!("sslmode=allow&application_name={application}");
    let (manager, other) =
        (server.open("127.0.0.1", &query).unwrap(), server.open("127.0.0.1", &query).unwrap());
    works(&manager, &other);
    assert_eq!(server.encrypted(&application), Some(false), "the server lets postgres in without TLS");
    drop((manager, other));

    // The role, granted reads and writes on the test's schema; dropped when the test ends.
    let _role = common::ReadWriteRole::create(server.inspect(), "easycaching_tls_only", &server.schema);
    // The same schema, reached as the role (the server's Drop drops it).
    let open_as_tls_only = |query: &str| {
        let url =
            format!("postgres://easycaching_tls_only@127.0.0.1:{}/{}?{query}", server.port, server.dbname);
        CacheManager::builder_postgres(&url).postgres_schema(&server.schema).open()
    };
    // `hostnossl all easycaching_tls_only all reject`, first in pg_hba.conf (.ci/postgres.sh).
    let refused = match open_as_tls_only("sslmode=disable") {
        Ok(_) => panic!("the server must refuse easycaching_tls_only without TLS: see .ci/postgres.sh"),
        Err(error) => error.to_string(),
    };
    assert!(refused.contains("pg_hba.conf"), "{refused}");
    let application = format!("easycaching-tls-allow-only-{}", std::process::id());
    let query = format!("sslmode=allow&application_name={application}");
    let (manager, other) = (open_as_tls_only(&query).unwrap(), open_as_tls_only(&query).unwrap());
    works(&manager, &other);
    assert_eq!(server.encrypted(&application), Some(true));
}

#[test]
fn verify_full_checks_the_root_and_the_host_name() {
    let Some(server) = Server::from_env("verify_full") else { return };
    let root = format!("sslrootcert={}", server.root.display());
    let application = format!("easycaching-tls-verified-{}", std::process::id());
    let verified = format!("sslmode=verify-full&{root}&application_name={application}");
    let (manager, other) =
        (server.open("localhost", &verified).unwrap(), server.open("localhost", &verified).unwrap());
    works(&manager, &other);
    assert_eq!(server.encrypted(&application), Some(true));

    // The certificate is made out to localhost, not to 127.0.0.1.
    let error = server.open("127.0.0.1", &format!("sslmode=verify-full&{root}")).unwrap_err().to_string();
    assert!(error.contains("certificate") && error.contains("127.0.0.1"), "{error}");
    // Roots that did not sign it (the system's) are refused too.
    let error = server.open("localhost", "sslmode=verify-full").unwrap_err().to_string();
    assert!(error.contains("certificate") || error.contains("root"), "{error}");
}

#[test]
fn verify_ca_and_require_with_a_root_check_the_root_only() {
    let Some(server) = Server::from_env("verify_ca") else { return };
    let root = format!("sslrootcert={}", server.root.display());
    for mode in ["verify-ca", "require"] {
        let query = format!("sslmode={mode}&{root}");
        let (manager, other) =
            (server.open("127.0.0.1", &query).unwrap(), server.open("127.0.0.1", &query).unwrap());
        works(&manager, &other);
    }
    // The server's own certificate is no root: its chain does not check.
    let not_a_root = server.root.with_file_name("server.crt");
    let error = server
        .open("127.0.0.1", &format!("sslmode=verify-ca&sslrootcert={}", not_a_root.display()))
        .unwrap_err()
        .to_string();
    assert!(error.contains("certificate"), "{error}");
}

#[test]
fn a_root_file_that_is_missing_is_named() {
    let Some(server) = Server::from_env("missing_root") else { return };
    let error = server.open("localhost", "sslmode=verify-full&sslrootcert=/no/such/root.crt").unwrap_err();
    assert!(matches!(error, Error::InvalidArgument(_)), "{error:?}");
    assert!(error.to_string().contains("/no/such/root.crt"), "{error}");
}
