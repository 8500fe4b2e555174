//! The `easycaching` command on a PostgreSQL database (`--db postgres://…`): a real guest
//! plugin run twice, two plugin processes at once, and the data commands, all on one server.
//!
//! Run when `EASYCACHING_TEST_POSTGRES` names a server whose user may create databases
//! (`postgres://postgres@127.0.0.1:54329/postgres`, as `.ci/postgres.sh` starts it); skipped
//! with a note otherwise. Each test creates a database of its own and drops it at its end.

use std::process::Output;

use easycaching_tests::{cli, guest};

const POSTGRES_ENV: &str = "EASYCACHING_TEST_POSTGRES";

/// A database of its own on the test server, dropped when this is.
struct Database {
    admin: String,
    name: String,
    url: String,
}

impl Database {
    /// A new database, or `None` (with a note) when no server is named.
    fn create(test: &str) -> Option<Database> {
        let Ok(admin) = std::env::var(POSTGRES_ENV) else {
            eprintln!("note: skipping {test}: set {POSTGRES_ENV} to a PostgreSQL server's URL to run it");
            return None;
        };
        let name = format!("easycaching_{test}_{}", std::process::id());
        let mut client =
            postgres::Client::connect(&admin, postgres::NoTls).expect("connect to the test server");
        client.batch_execute(&format!("DROP DATABASE IF EXISTS {name}")).unwrap();
        client.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
        // The admin URL with its database replaced: postgres://user@host:port/DB?options.
        let (base, query) = admin.split_once('?').map_or((admin.as_str(), None), |(b, q)| (b, Some(q)));
        let server = match base.rsplit_once('/') {
            Some((server, _)) if server.contains("//") && server.len() > server.find("//").unwrap() + 2 => {
                server
            }
            _ => base,
        };
        let url = match query {
            Some(query) => format!("{server}/{name}?{query}"),
            None => format!("{server}/{name}"),
        };
        Some(Database { admin, name, url })
    }

    fn easycaching(&self, args: &[&str]) -> Output {
        cli().arg("--db").arg(&self.url).args(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let output = self.easycaching(args);
        assert!(
            output.status.success(),
            "easycaching {args:?} failed: {}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if let Ok(mut client) = postgres::Client::connect(&self.admin, postgres::NoTls) {
            let _ = client.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
        }
    }
}

const WALKTHROUGH_GRANTS: [&str; 6] =
    ["--allow", "cache:test=rwc", "--allow", "cache:walkthrough=rwc", "--allow", "queue:jobs=rwc"];

#[test]
fn a_plugin_run_on_postgres_keeps_its_data_for_the_next_run_and_the_data_commands() {
    let Some(db) = Database::create("plugin_run") else { return };
    let walkthrough = guest("walkthrough");
    let run = |db: &Database| {
        let mut args = vec!["run", walkthrough.to_str().unwrap()];
        args.extend(WALKTHROUGH_GRANTS);
        db.ok(&args)
    };
    let first = run(&db);
    assert!(first.contains("seen 1 walkthrough run(s)"), "{first}");
    let second = run(&db);
    assert!(second.contains("seen 2 walkthrough run(s)"), "{second}");
    let listed = db.ok(&["ls"]);
    assert!(listed.lines().any(|line| line.starts_with("cache  walkthrough")), "{listed}");
    assert!(listed.lines().any(|line| line.starts_with("queue  jobs")), "{listed}");
    // What the plugin stored, read and changed from the shell.
    assert_eq!(db.ok(&["cache", "get", "test", "b"]), "[1,2]\n");
    db.ok(&["cache", "set", "test", "shell", r#"{"from": "the shell"}"#]);
    assert_eq!(db.ok(&["cache", "get", "test", "shell"]), "{\"from\": \"the shell\"}\n");
    assert_eq!(db.ok(&["cache", "incr", "counters", "hits"]), "1\n");
    assert_eq!(db.ok(&["cache", "incr", "counters", "hits"]), "2\n");
    // Backups are pg_dump's business: refused, saying so.
    let backup = db.easycaching(&["backup", "/nonexistent/copy.db"]);
    assert!(!backup.status.success());
    assert!(String::from_utf8_lossy(&backup.stderr).contains("pg_dump"));
}

#[test]
fn plugins_in_two_processes_at_once_count_every_run() {
    let Some(db) = Database::create("two_processes") else { return };
    let walkthrough = guest("walkthrough");
    let spawn = || {
        let mut args = vec!["run", walkthrough.to_str().unwrap()];
        args.extend(WALKTHROUGH_GRANTS);
        cli().arg("--db").arg(&db.url).args(&args).stdout(std::process::Stdio::null()).spawn().unwrap()
    };
    let runs: Vec<_> = (0..3).map(|_| spawn()).collect();
    for mut run in runs {
        assert!(run.wait().unwrap().success());
    }
    let last = db.ok(&[
        "run",
        walkthrough.to_str().unwrap(),
        WALKTHROUGH_GRANTS[0],
        WALKTHROUGH_GRANTS[1],
        WALKTHROUGH_GRANTS[2],
        WALKTHROUGH_GRANTS[3],
        WALKTHROUGH_GRANTS[4],
        WALKTHROUGH_GRANTS[5],
    ]);
    assert!(last.contains("seen 4 walkthrough run(s)"), "{last}");
}

#[test]
fn an_unreachable_server_is_named_without_its_password() {
    // Runs without a server: nothing listens on port 1.
    let output = cli().args(["--db", "postgres://ada:s3cret@127.0.0.1:1/app", "ls"]).output().unwrap();
    assert!(!output.status.success());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("postgres://ada@127.0.0.1:1/app"), "{said}");
    assert!(!said.contains("s3cret"), "{said}");
}

#[test]
fn serve_answers_from_postgres_sees_the_shells_writes_and_stops_cleanly() {
    let Some(db) = Database::create("serve") else { return };
    let mut child = cli()
        .arg("--db")
        .arg(&db.url)
        .args(["serve", guest("http_cache").to_str().unwrap(), "--allow", "cache:web=rwc"])
        .args(["--listen", "127.0.0.1:0", "--workers", "2"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines = easycaching_tests::lines_of(child.stdout.take().unwrap());
    let first = lines.recv_timeout(std::time::Duration::from_secs(60)).expect("serve says where it listens");
    let base = easycaching_tests::listening_url(&first);
    let get = |key: &str| {
        ureq::get(&format!("{base}/cache?key={key}")).call().unwrap().body_mut().read_to_string().unwrap()
    };
    ureq::post(&format!("{base}/cache?key=a&value=hello")).send_empty().unwrap();
    assert_eq!(get("a"), r#"{"a":{"json":"hello"}}"#);
    assert_eq!(db.ok(&["cache", "get", "web", "a"]), "{\"json\":\"hello\"}\n");
    db.ok(&["cache", "set", "web", "a", r#"{"json":"from the shell"}"#]);
    // The server's LRU learns of the shell's write by notification: within a bounded wait.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while get("a") != r#"{"a":{"json":"from the shell"}}"# {
        assert!(std::time::Instant::now() < deadline, "serve kept answering the old value");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    easycaching_tests::terminate(&child);
    let status = child.wait().unwrap();
    assert!(status.success(), "serve stopped with {status}");
}
