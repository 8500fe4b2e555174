//! `easycaching serve`, end to end: the release binary serving real guest components on a
//! loopback port, driven by a real HTTP client. Every wait is bounded.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, ExitStatus, Output, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use easycaching_harness::{Error, Harness, PluginLimits};
use easycaching_tests::{cli, guest, lines_of, listening_url};
use serde_json::{Value, json};

/// The longest the server may take to start (compiling the plugin the first time) or to stop.
const START_OR_STOP_WITHIN: Duration = Duration::from_secs(60);

/// A running `easycaching serve`, killed if the test ends without stopping it.
struct Served {
    child: Child,
    url: String,
    stdout: Receiver<String>,
}

impl Served {
    /// Starts `easycaching --db DB serve PLUGIN --listen 127.0.0.1:0 ARGS...` and waits for the
    /// line that says where it listens.
    fn start(db: &Path, plugin: &str, args: &[&str]) -> Served {
        let mut child = cli()
            .arg("--db")
            .arg(db)
            .arg("serve")
            .arg(guest(plugin))
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the CLI starts");
        let stdout = lines_of(child.stdout.take().expect("piped"));
        let first = stdout.recv_timeout(START_OR_STOP_WITHIN).expect("the server says where it listens");
        Served { child, url: listening_url(&first), stdout }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// A raw connection to the server, for clients that misbehave.
    fn connect(&self) -> TcpStream {
        TcpStream::connect(self.url.trim_start_matches("http://")).expect("the server accepts")
    }

    /// The metrics, as the server serves them.
    fn metrics(&self) -> Value {
        json_of(&get(&client(), &self.url("/_easycaching/metrics")).1)
    }

    /// Waits (at most 10 s) until `in_flight` plugin calls are running.
    fn wait_for_in_flight(&self, in_flight: u64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.metrics()["in_flight"] != in_flight {
            assert!(Instant::now() < deadline, "never {in_flight} request(s) in flight");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends SIGTERM and waits for the process to exit; its status and the rest of its stdout.
    fn terminate(mut self) -> (ExitStatus, String) {
        easycaching_tests::terminate(&self.child);
        let deadline = Instant::now() + START_OR_STOP_WITHIN;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("the server can be waited for") {
                break status;
            }
            assert!(Instant::now() < deadline, "the server did not stop within {START_OR_STOP_WITHIN:?}");
            std::thread::sleep(Duration::from_millis(20));
        };
        let rest: Vec<String> = self.stdout.try_iter().collect();
        (status, rest.join("\n"))
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP client whose statuses are answers, not errors, and whose every call is bounded.
fn client() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// Status and body of a response.
fn answer(response: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> (u16, String) {
    let mut response = response.expect("the server answers");
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_string().expect("a text body");
    (status, body)
}

fn get(client: &ureq::Agent, url: &str) -> (u16, String) {
    answer(client.get(url).call())
}

fn post(client: &ureq::Agent, url: &str) -> (u16, String) {
    answer(client.post(url).send_empty())
}

fn delete(client: &ureq::Agent, url: &str) -> (u16, String) {
    answer(client.delete(url).call())
}

/// Percent-encodes everything but ASCII letters and digits.
fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' => char::from(byte).to_string(),
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

fn json_of(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body:?}"))
}

fn easycaching(db: &Path, args: &[&str]) -> Output {
    cli().arg("--db").arg(db).args(args).output().expect("the CLI runs")
}

#[test]
fn the_web_example_answers_as_the_original_and_keeps_what_it_was_given() {
    answers_as_the_original_and_keeps_what_it_was_given("http_cache");
}

#[test]
fn the_python_web_example_answers_as_the_original_and_keeps_what_it_was_given() {
    answers_as_the_original_and_keeps_what_it_was_given("python-http-cache");
}

/// Serves the web example `plugin` (the Rust one or a port of it) and checks its answers to the
/// original's endpoints, the listing and mistakes, the metrics and what it stored.
fn answers_as_the_original_and_keeps_what_it_was_given(plugin: &str) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("web.db");
    let server = Served::start(&db, plugin, &["--workers", "5", "--allow", "cache:web=rwc"]);
    let client = client();

    // The original's two endpoints: POST stores {"json": value} and answers null; GET answers
    // {key: value}, and {key: null} for a key never stored.
    assert_eq!(post(&client, &server.url("/cache?key=foo&value=bar")), (200, "null".to_owned()));
    let (status, body) = get(&client, &server.url("/cache?key=foo"));
    assert_eq!((status, json_of(&body)), (200, json!({"foo": {"json": "bar"}})));
    let (status, body) = get(&client, &server.url("/cache?key=nothing"));
    assert_eq!((status, json_of(&body)), (200, json!({"nothing": null})));
    // Query values are URL-decoded.
    assert_eq!(post(&client, &server.url("/cache?key=a%20b&value=x+y%2Bz")).0, 200);
    let (_, body) = get(&client, &server.url("/cache?key=a+b"));
    assert_eq!(json_of(&body), json!({"a b": {"json": "x y+z"}}));

    // The listing, a page at a time, in key order.
    for key in ["k1", "k2", "k3"] {
        assert_eq!(post(&client, &server.url(&format!("/cache?key={key}&value={key}"))).0, 200);
    }
    let (status, body) = get(&client, &server.url("/cache?limit=3"));
    let first = json_of(&body);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        first["entries"],
        json!([{"a b": {"json": "x y+z"}}, {"foo": {"json": "bar"}}, {"k1": {"json": "k1"}}])
    );
    let cursor = url_encode(first["next"].as_str().expect("a cursor for the next page"));
    let (_, body) = get(&client, &server.url(&format!("/cache?limit=3&cursor={cursor}")));
    assert_eq!(
        json_of(&body),
        json!({"entries": [{"k2": {"json": "k2"}}, {"k3": {"json": "k3"}}], "next": null})
    );

    // DELETE says whether something was there.
    assert_eq!(json_of(&delete(&client, &server.url("/cache?key=k1")).1), json!({"deleted": true}));
    assert_eq!(json_of(&delete(&client, &server.url("/cache?key=k1")).1), json!({"deleted": false}));
    assert_eq!(json_of(&get(&client, &server.url("/cache?key=k1")).1), json!({"k1": null}));

    // Mistakes answer as FastAPI would.
    assert_eq!(post(&client, &server.url("/cache?key=foo")).0, 422);
    assert_eq!(get(&client, &server.url("/cache?limit=0")).0, 422);
    assert_eq!(get(&client, &server.url("/elsewhere")).0, 404);
    assert_eq!(answer(client.put(&server.url("/cache?key=foo")).send_empty()).0, 405);

    // The metrics are the host's, and count only what the plugin answered.
    let (status, body) = get(&client, &server.url("/_easycaching/metrics"));
    let metrics = json_of(&body);
    assert_eq!(status, 200, "{body}");
    assert_eq!(metrics["requests"], 17, "{metrics}");
    assert_eq!(metrics["client_errors"], 4, "{metrics}");
    assert_eq!(metrics["server_errors"], 0, "{metrics}");
    assert!(metrics["latency_us"]["p50"].as_u64().is_some_and(|p50| p50 > 0), "{metrics}");

    let (status, rest) = server.terminate();
    assert!(status.success(), "{status}");
    assert!(rest.contains("stopped after 17 requests (4 answered 4xx, 0 answered 5xx)"), "{rest}");

    // What was acknowledged is in the database.
    let stored = easycaching(&db, &["cache", "get", "web", "foo"]);
    assert_eq!(json_of(&String::from_utf8_lossy(&stored.stdout)), json!({"json": "bar"}));
}

/// A handler written against `wasi:keyvalue` only (guest/rust/keyvalue-counter, nothing in it
/// names easycaching) counts in the caches it was granted, shared with the CLI and between
/// workers, and is refused every other.
#[test]
fn a_wasi_keyvalue_handler_counts_in_its_granted_caches_and_is_refused_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("counter.db");
    assert!(easycaching(&db, &["cache", "create", "pages"]).status.success());
    let grants = ["--workers", "2", "--allow", "cache:default=rwc", "--allow", "cache:pages=r"];
    let server = Served::start(&db, "keyvalue_counter", &grants);
    let client = client();

    // The bucket "" is the cache `default`; every request is a fresh instance, so the count
    // lives in the cache, not in the component.
    for hits in 1..=3 {
        assert_eq!(get(&client, &server.url("/home")), (200, hits.to_string()));
    }
    assert_eq!(get(&client, &server.url("/about")), (200, "1".to_owned()));
    // A read-only grant cannot count; a cache not granted at all cannot be opened.
    assert_eq!(get(&client, &server.url("/home?bucket=pages")), (500, "access-denied".to_owned()));
    assert_eq!(get(&client, &server.url("/home?bucket=secret")), (500, "access-denied".to_owned()));
    // What the CLI writes meanwhile, the handler counts on from.
    assert!(easycaching(&db, &["cache", "set", "default", "home", "41"]).status.success());
    assert_eq!(get(&client, &server.url("/home")), (200, "42".to_owned()));

    let (status, _) = server.terminate();
    assert!(status.success(), "{status}");
    let stored = easycaching(&db, &["cache", "get", "default", "home"]);
    assert_eq!(json_of(&String::from_utf8_lossy(&stored.stdout)), json!(42));
    let caches = easycaching(&db, &["ls"]);
    let listing = String::from_utf8_lossy(&caches.stdout);
    assert!(!listing.contains("secret"), "a refused bucket is not created: {listing}");
    let pages = easycaching(&db, &["cache", "len", "pages"]);
    assert_eq!(String::from_utf8_lossy(&pages.stdout).trim(), "0", "the read-only cache stays empty");
}

/// A plugin author's own test of a `wasi:http` handler: the harness serves it in the test's
/// process over the harness's database and grants, answers requests, and stops when asked,
/// counting what it served.
#[test]
fn the_harness_serves_a_handler_to_a_test_over_its_database_and_grants() {
    let harness = Harness::new().unwrap().allow("cache:web=rwc");
    harness.seed_cache("web", [("seeded", json!("yes"))]).unwrap();
    let served = harness.serve(guest("http_cache")).unwrap();

    let seeded = served.get("/cache?key=seeded").unwrap();
    assert_eq!(seeded.status, 200, "{}", seeded.text());
    assert_eq!(seeded.json::<Value>().unwrap(), json!({"seeded": "yes"}));
    assert!(seeded.header("content-type").is_some_and(|kind| kind.contains("json")), "{:?}", seeded.headers);
    let stored = served.post("/cache?key=foo&value=bar", "").unwrap();
    assert_eq!((stored.status, stored.text()), (200, "null".to_owned()));
    assert_eq!(
        harness.cache("web").unwrap().get_value::<Value>("foo").unwrap(),
        Some(json!({"json": "bar"}))
    );
    assert_eq!(served.post("/cache?key=foo", "").unwrap().status, 422);

    let summary = served.stop().unwrap();
    assert_eq!((summary.requests, summary.client_errors, summary.server_errors), (3, 1, 0));
}

/// The harness's limits hold for each request, a handler with no grant is refused its cache,
/// and a component that is not a handler is refused before anything is served.
#[test]
fn the_harness_serves_under_its_limits_and_grants_only() {
    let limits = PluginLimits { time: Some(Duration::from_millis(300)), ..PluginLimits::default() };
    let harness = Harness::new().unwrap().limits(limits);
    let served = harness.serve(guest("http_test_handler")).unwrap();
    let started = Instant::now();
    let spun = served.get("/spin").unwrap();
    assert_eq!(spun.status, 500, "{}", spun.text());
    assert!(spun.text().contains("time limit of 300ms"), "{}", spun.text());
    assert!(started.elapsed() < Duration::from_secs(10), "stopped after {:?}", started.elapsed());
    assert_eq!(served.get("/counter").unwrap().text(), "1", "the server goes on, with a fresh instance");
    drop(served); // stops it, without a summary

    let ungranted = Harness::new().unwrap().serve(guest("http_cache")).unwrap();
    let refused = ungranted.post("/cache?key=foo&value=bar", "").unwrap();
    assert_eq!(refused.status, 403, "{}", refused.text());
    assert!(refused.text().contains("cache:web"), "the refusal names the grant: {}", refused.text());
    assert_eq!(ungranted.stop().unwrap().requests, 1);

    let not_a_handler = Harness::new().unwrap().serve(guest("walkthrough")).unwrap_err();
    assert!(matches!(not_a_handler, Error::Load(_)), "{not_a_handler:?}");
    assert!(not_a_handler.to_string().contains("walkthrough.wasm: it is a command"), "{not_a_handler}");
}

/// An embedder stops a server with a `Shutdown` handle, from another thread: a first stop
/// waits for the request in flight, a second stops at once; and a stop asked before the server
/// started stops it as soon as it listens.
#[test]
fn a_server_embedded_with_serve_until_stops_when_its_handle_asks() {
    use easycaching_host::EasyCachingCtx;
    use easycaching_http::{Server, ServerConfig, Shutdown};

    let dir = tempfile::tempdir().unwrap();
    let manager = easycaching::CacheManager::open(dir.path().join("embedded.db")).unwrap();
    let config = || ServerConfig { listen: "127.0.0.1:0".parse().unwrap(), ..ServerConfig::default() };
    let server = || {
        Server::new(guest("http_test_handler"), EasyCachingCtx::builder(manager.clone()).build(), config())
    };

    let shutdown = Shutdown::new();
    let (bound, address) = channel();
    let serving = {
        let (server, shutdown) = (server().unwrap(), shutdown.clone());
        std::thread::spawn(move || server.serve_until(&shutdown, |address| bound.send(address).unwrap()))
    };
    let address = address.recv_timeout(START_OR_STOP_WITHIN).unwrap();
    // Its answer never comes: the second stop drops its connection.
    let sleeping =
        std::thread::spawn(move || client().get(format!("http://{address}/sleep?ms=30000")).call().is_ok());
    let deadline = Instant::now() + Duration::from_secs(10);
    while json_of(&get(&client(), &format!("http://{address}/_easycaching/metrics")).1)["in_flight"] != 1 {
        assert!(Instant::now() < deadline, "the request never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    shutdown.stop();
    std::thread::sleep(Duration::from_millis(200));
    assert!(!serving.is_finished(), "a first stop waits for the request in flight");
    let stopped_at = Instant::now();
    shutdown.stop();
    let outcome = serving.join().unwrap();
    assert!(
        matches!(outcome, Err(easycaching_http::Error::Interrupted { in_flight: 1 })),
        "a second stop stops at once: {outcome:?}"
    );
    assert!(stopped_at.elapsed() < Duration::from_secs(10), "stopped after {:?}", stopped_at.elapsed());
    assert!(!sleeping.join().unwrap(), "the request stopped at once has no answer");

    let early = Shutdown::new();
    early.stop();
    let summary = server().unwrap().serve_until(&early, |_| {}).unwrap();
    assert_eq!(summary.requests, 0, "a stop asked before the start stops it once it listens");
}

/// One request and the answer to it, as sent on the wire.
#[derive(Debug, PartialEq)]
struct Exchange {
    request: String,
    status: u16,
    content_type: String,
    body: String,
}

/// Serves the web example `plugin` on a fresh database, sends it the same requests every port of
/// the example must answer alike (each contract line, URL decoding, JSON escaping, values stored
/// by others, every error status) and returns what came back, in order.
fn web_example_transcript(plugin: &str) -> Vec<Exchange> {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("web.db");
    let server = Served::start(&db, plugin, &["--allow", "cache:web=rwc"]);
    let client = client();
    let mut transcript = Vec::new();
    let mut send = |method: &str, target: &str| -> String {
        let url = server.url(target);
        let response = match method {
            "GET" => client.get(&url).call(),
            "POST" => client.post(&url).send_empty(),
            "DELETE" => client.delete(&url).call(),
            "PUT" => client.put(&url).send_empty(),
            _ => unreachable!("{method}"),
        };
        let mut response =
            response.unwrap_or_else(|e| panic!("{plugin}: {method} {target} got no answer: {e}"));
        let content_type = response.headers().get("content-type").and_then(|value| value.to_str().ok());
        let content_type = content_type.unwrap_or_default().to_owned();
        let status = response.status().as_u16();
        let body = response.body_mut().read_to_string().expect("a text body");
        transcript.push(Exchange {
            request: format!("{method} {target}"),
            status,
            content_type,
            body: body.clone(),
        });
        body
    };

    send("POST", "/cache?key=foo&value=bar");
    send("GET", "/cache?key=foo");
    send("GET", "/cache?key=nothing");
    send("POST", "/cache?key=a%20b&value=x+y%2Bz");
    // A key that needs escaping in JSON, and non-ASCII text, which stays as it is.
    send("POST", "/cache?key=%E2%82%AC%22%5C%01%0A&value=caf%C3%A9%09");
    send("GET", "/cache?key=%E2%82%AC%22%5C%01%0A");
    // A value stored by someone else, with its own spacing: answered as the text stored.
    let stored = easycaching(&db, &["cache", "set", "web", "raw", r#"{ "a" : 1.0, "b": [1e2] }"#]);
    assert!(stored.status.success(), "{stored:?}");
    send("GET", "/cache?key=raw");
    for key in ["k1", "k2", "k3"] {
        send("POST", &format!("/cache?key={key}&value={key}"));
    }
    let first = json_of(&send("GET", "/cache?limit=3"));
    let cursor = url_encode(first["next"].as_str().expect("a cursor for the next page"));
    send("GET", &format!("/cache?limit=3&cursor={cursor}"));
    send("GET", "/cache");
    send("DELETE", "/cache?key=k1");
    send("DELETE", "/cache?key=k1");
    send("GET", "/cache?key=k1");
    // The last of a repeated parameter counts.
    send("POST", "/cache?key=k2&value=1&value=2");
    send("GET", "/cache?key=k2");
    for mistake in ["/cache?key=foo", "/cache?value=foo"] {
        send("POST", mistake);
    }
    send("DELETE", "/cache");
    for limit in ["0", "1001", "-1", "1.5", "x"] {
        send("GET", &format!("/cache?limit={limit}"));
    }
    send("GET", "/elsewhere");
    send("GET", "/cache/");
    send("PUT", "/cache?key=foo");
    send("GET", "/cache?key=%zz");
    send("GET", "/cache?key=%C3");
    send("GET", &format!("/cache?key={}", "k".repeat(5000)));

    let (status, _) = server.terminate();
    assert!(status.success(), "{plugin}: {status}");
    transcript
}

#[test]
fn the_python_web_example_answers_byte_for_byte_as_the_rust_one() {
    let rust = web_example_transcript("http_cache");
    let statuses: Vec<u16> = rust.iter().map(|exchange| exchange.status).collect();
    assert_eq!(statuses, [&[200; 18][..], &[422; 8], &[404, 404, 405, 400, 400, 413]].concat());
    assert!(rust.iter().all(|exchange| exchange.content_type == "application/json"), "{rust:#?}");

    let python = web_example_transcript("python-http-cache");
    for (rust, python) in rust.iter().zip(&python) {
        assert_eq!(python, rust, "the Python web example answers {} otherwise", rust.request);
    }
    assert_eq!(python.len(), rust.len());
}

#[test]
fn a_value_written_through_one_worker_is_read_at_once_through_every_other() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("workers.db");
    // Warm instances too: reuse must not let an instance answer from a stale view.
    for reuse in ["1", "50"] {
        let server = Served::start(
            &db,
            "http_cache",
            &["--workers", "5", "--requests-per-instance", reuse, "--allow", "cache:web=rwc"],
        );
        // Five writers, each on its own connection, each reading what the others just wrote
        // through theirs: every read must see the latest acknowledged write of every writer.
        let url = server.url.clone();
        let writers: Vec<_> = (0..5)
            .map(|writer| {
                let url = url.clone();
                std::thread::spawn(move || {
                    let (mine, theirs) = (client(), client());
                    for round in 0..20 {
                        let key = format!("w{writer}");
                        let stored = post(&mine, &format!("{url}/cache?key={key}&value={reuse}-{round}"));
                        assert_eq!(stored.0, 200, "{stored:?}");
                        // A different connection, so most likely a different worker and
                        // certainly a different instance: it sees this write at once.
                        let (_, body) = get(&theirs, &format!("{url}/cache?key={key}"));
                        assert_eq!(json_of(&body), json!({ key: {"json": format!("{reuse}-{round}")} }));
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.join().expect("every read saw the write before it");
        }
        let (_, body) = get(&client(), &server.url("/cache?limit=10"));
        let entries = json_of(&body)["entries"].clone();
        let expected: Vec<Value> =
            (0..5).map(|w| json!({ format!("w{w}"): {"json": format!("{reuse}-19")} })).collect();
        assert_eq!(entries, Value::Array(expected));
        let (status, _) = server.terminate();
        assert!(status.success(), "{status}");
    }
}

#[test]
fn a_plugin_that_fails_answers_500_and_the_server_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("failing.db");
    let server =
        Served::start(&db, "http_test_handler", &["--workers", "2", "--timeout", "300ms", "--memory", "64M"]);
    let client = client();

    let (status, body) = get(&client, &server.url("/trap"));
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("the plugin crashed"), "{body}");
    assert_eq!(get(&client, &server.url("/counter")), (200, "1".to_owned()));

    let started = Instant::now();
    let (status, body) = get(&client, &server.url("/spin"));
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("time limit of 300ms"), "{body}");
    assert!(started.elapsed() < Duration::from_secs(10), "stopped after {:?}", started.elapsed());

    let (status, body) = get(&client, &server.url("/grow"));
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("memory limit of 64 MiB"), "{body}");

    assert_eq!(get(&client, &server.url("/counter")), (200, "1".to_owned()));
    let metrics = json_of(&get(&client, &server.url("/_easycaching/metrics")).1);
    assert_eq!((metrics["requests"].as_u64(), metrics["server_errors"].as_u64()), (Some(5), Some(3)));
    let (status, _) = server.terminate();
    assert!(status.success(), "{status}");
}

#[test]
fn every_request_gets_a_fresh_instance_unless_reuse_is_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("instances.db");
    let client = client();
    let counts = |args: &[&str]| {
        let server = Served::start(&db, "http_test_handler", args);
        let counts: Vec<String> = (0..4).map(|_| get(&client, &server.url("/counter")).1).collect();
        let (status, _) = server.terminate();
        assert!(status.success(), "{status}");
        counts
    };
    // The handler counts the requests its instance has answered.
    assert_eq!(counts(&[]), ["1", "1", "1", "1"]);
    // One instance at a time, three requests each: the fourth request gets a fresh one.
    assert_eq!(counts(&["--instances", "1", "--requests-per-instance", "3"]), ["1", "2", "3", "1"]);
    // A trap throws the warm instance away.
    let server =
        Served::start(&db, "http_test_handler", &["--instances", "1", "--requests-per-instance", "9"]);
    assert_eq!(get(&client, &server.url("/counter")).1, "1");
    assert_eq!(get(&client, &server.url("/trap")).0, 500);
    assert_eq!(get(&client, &server.url("/counter")).1, "1");
    drop(server);
}

#[test]
fn sigterm_finishes_the_requests_in_flight_then_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shutdown.db");
    let server = Served::start(&db, "http_test_handler", &[]);
    // Polls the metrics, and stays connected (keep-alive) when the server stops: an idle
    // connection must not hold the shutdown up.
    let watcher = client();

    // A request that takes a while: it is in flight when SIGTERM comes.
    let slow_url = server.url("/sleep?ms=800");
    let slow = std::thread::spawn(move || get(&client(), &slow_url));
    let deadline = Instant::now() + Duration::from_secs(10);
    while json_of(&get(&watcher, &server.url("/_easycaching/metrics")).1)["in_flight"] != 1 {
        assert!(Instant::now() < deadline, "the slow request never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    let url = server.url.clone();
    let stopping = Instant::now();
    let (status, rest) = server.terminate();
    assert!(status.success(), "{status}");
    assert!(stopping.elapsed() < Duration::from_secs(10), "took {:?} to stop", stopping.elapsed());
    assert_eq!(slow.join().unwrap(), (200, "slept 800 ms".to_owned()));
    assert!(rest.contains("stopped after 1 request "), "{rest}");
    assert!(ureq::get(&format!("{url}/counter")).call().is_err(), "still answering after it stopped");
}

#[test]
fn sigterm_in_the_middle_of_writes_loses_none_it_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("writes.db");
    let server = Served::start(&db, "http_cache", &["--allow", "cache:web=rwc"]);
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    // Writers POST distinct keys until the server stops answering.
    let writers: Vec<_> = (0..4)
        .map(|writer| {
            let (url, acknowledged) = (server.url.clone(), acknowledged.clone());
            std::thread::spawn(move || {
                let client = client();
                let deadline = Instant::now() + Duration::from_secs(20);
                for n in 0.. {
                    let key = format!("w{writer}-{n}");
                    match client.post(&format!("{url}/cache?key={key}&value={n}")).send_empty() {
                        Ok(response) if response.status() == 200 => acknowledged.lock().unwrap().push(key),
                        Ok(response) => panic!("POST {key} answered {}", response.status()),
                        Err(_) => return,
                    }
                    assert!(Instant::now() < deadline, "the server was never stopped");
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while acknowledged.lock().unwrap().len() < 40 {
        assert!(Instant::now() < deadline, "the writers never got going");
        std::thread::sleep(Duration::from_millis(5));
    }
    let (status, _) = server.terminate();
    assert!(status.success(), "{status}");
    for writer in writers {
        writer.join().expect("no write was refused");
    }

    let stored = easycaching(&db, &["cache", "keys", "web"]);
    let stored: HashSet<&str> = std::str::from_utf8(&stored.stdout).unwrap().lines().collect();
    let acknowledged = acknowledged.lock().unwrap();
    let lost: Vec<&String> = acknowledged.iter().filter(|key| !stored.contains(key.as_str())).collect();
    assert!(lost.is_empty(), "{} of {} acknowledged writes lost: {lost:?}", lost.len(), acknowledged.len());
}

/// Reads `connection` until the server closes it (or resets it); how many bytes were read, and
/// the first `keep` of them. Panics when it is still open after 10 s.
fn read_until_closed(connection: &mut TcpStream, keep: usize) -> (usize, Vec<u8>) {
    connection.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let (mut read, mut kept, mut buffer) = (0, Vec::new(), vec![0; 1 << 16]);
    loop {
        match connection.read(&mut buffer) {
            Ok(0) => return (read, kept),
            Ok(n) => {
                read += n;
                kept.extend_from_slice(&buffer[..n.min(keep.saturating_sub(kept.len()))]);
            }
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => return (read, kept),
            Err(error) => panic!("the connection is still open after {read} bytes: {error}"),
        }
    }
}

#[test]
fn a_client_that_never_reads_its_response_is_dropped_at_the_time_limit() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("nonreader.db");
    // One instance: while the client that does not read holds it, nobody else is answered.
    let server = Served::start(&db, "http_test_handler", &["--instances", "1", "--timeout", "1s"]);
    let mut hog = server.connect();
    // Far more than the socket buffers hold: the plugin blocks writing it.
    hog.write_all(b"GET /big?bytes=268435456 HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    server.wait_for_in_flight(1);
    // Well into the hog's second, so that this request's own second outlasts it.
    std::thread::sleep(Duration::from_millis(500));

    let started = Instant::now();
    let patient = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    assert_eq!(get(&patient, &server.url("/counter")), (200, "1".to_owned()));
    assert!(started.elapsed() < Duration::from_secs(1), "answered after {:?}", started.elapsed());

    let (read, _) = read_until_closed(&mut hog, 0);
    assert!(read < 256 << 20, "the whole response was sent");
    let metrics = server.metrics();
    assert_eq!(metrics["requests"], 2, "{metrics}");
    assert_eq!(
        (metrics["server_errors"].as_u64(), metrics["cut_off"].as_u64()),
        (Some(1), Some(1)),
        "{metrics}"
    );
}

#[test]
fn a_plugin_asleep_past_the_time_limit_is_stopped_at_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("asleep.db");
    let server = Served::start(
        &db,
        "http_test_handler",
        &["--instances", "1", "--requests-per-instance", "9", "--timeout", "300ms"],
    );
    let client = client();
    assert_eq!(get(&client, &server.url("/counter")), (200, "1".to_owned()));
    let started = Instant::now();
    let (status, body) = get(&client, &server.url("/sleep?ms=5000"));
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("time limit of 300ms"), "{body}");
    assert!(started.elapsed() < Duration::from_millis(1200), "answered after {:?}", started.elapsed());
    // Its instance is free at once, and a fresh one answers: one that failed is not reused.
    server.wait_for_in_flight(0);
    assert!(started.elapsed() < Duration::from_millis(1500), "freed after {:?}", started.elapsed());
    assert_eq!(get(&client, &server.url("/counter")), (200, "1".to_owned()));
    let metrics = server.metrics();
    assert_eq!(
        (metrics["requests"].as_u64(), metrics["server_errors"].as_u64()),
        (Some(3), Some(1)),
        "{metrics}"
    );
}

#[test]
fn a_client_that_stops_sending_its_body_holds_the_plugin_only_until_the_time_limit() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("stalled.db");
    // One instance: while the plugin waits for the stalled body, nobody else is answered.
    let server = Served::start(&db, "http_test_handler", &["--instances", "1", "--timeout", "1s"]);
    let mut stalled = server.connect();
    stalled.write_all(b"POST /length HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789").unwrap();
    std::thread::sleep(Duration::from_millis(400));
    // Asked while the plugin waits, answered once the stalled request's time is up.
    let started = Instant::now();
    assert_eq!(get(&client(), &server.url("/counter")), (200, "1".to_owned()));
    assert!(started.elapsed() < Duration::from_secs(2), "answered after {:?}", started.elapsed());
    drop(stalled);
}

#[test]
fn a_plugin_that_fails_halfway_through_its_body_leaves_the_response_unfinished() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("half.db");
    let server = Served::start(&db, "http_test_handler", &[]);
    let mut connection = server.connect();
    connection.write_all(b"GET /half HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    // The connection is closed rather than kept alive for the next request...
    let (_, response) = read_until_closed(&mut connection, 1 << 16);
    let response = String::from_utf8_lossy(&response);
    // ...and the chunked body has no last chunk: the client can tell it is not whole. On a
    // busy machine the plugin may fail before hyper has written anything of the response,
    // which it then drops with the connection: nothing at all reaches the client.
    if !response.is_empty() {
        assert!(response.starts_with("HTTP/1.1 200"), "{response:?}");
        assert!(response.contains("transfer-encoding: chunked"), "{response:?}");
        assert!(!response.ends_with("0\r\n\r\n"), "{response:?}");
    }
    let metrics = server.metrics();
    assert_eq!(
        (metrics["server_errors"].as_u64(), metrics["cut_off"].as_u64()),
        (Some(1), Some(1)),
        "{metrics}"
    );
    // The server goes on.
    assert_eq!(get(&client(), &server.url("/counter")), (200, "1".to_owned()));
}

#[test]
fn a_plugin_that_fails_after_finishing_its_body_has_its_whole_response_sent() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("whole.db");
    let server = Served::start(&db, "http_test_handler", &[]);
    for _ in 0..5 {
        let mut connection = server.connect();
        connection
            .write_all(b"GET /whole-then-trap HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let (_, response) = read_until_closed(&mut connection, 1 << 16);
        let response = String::from_utf8_lossy(&response);
        assert!(response.starts_with("HTTP/1.1 200"), "{response:?}");
        assert!(response.ends_with("5\r\nWHOLE\r\n0\r\n\r\n"), "the response was cut: {response:?}");
    }
    assert_eq!(server.metrics()["cut_off"].as_u64(), Some(0));
}

#[test]
fn connections_that_never_finish_a_request_are_closed_and_cannot_crowd_out_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("slow.db");
    let server =
        Served::start(&db, "http_test_handler", &["--header-timeout", "1s", "--max-connections", "5"]);
    // A client already connected (its connection kept alive), then four that start a request's
    // head and never finish it: all five connections taken.
    let established = client();
    assert_eq!(get(&established, &server.url("/counter")), (200, "1".to_owned()));
    let mut stuck: Vec<TcpStream> = (0..4)
        .map(|_| {
            let mut connection = server.connect();
            connection.write_all(b"GET /counter HTTP/1.1\r\nHost: x\r\n").unwrap();
            connection
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100));

    // The established client is still served at once.
    let started = Instant::now();
    assert_eq!(get(&established, &server.url("/counter")), (200, "1".to_owned()));
    assert!(started.elapsed() < Duration::from_millis(500), "answered after {:?}", started.elapsed());
    // A new one waits to be accepted until the stuck ones are closed, at the header timeout.
    let started = Instant::now();
    assert_eq!(get(&client(), &server.url("/counter")), (200, "1".to_owned()));
    let waited = started.elapsed();
    assert!(
        waited > Duration::from_millis(500) && waited < Duration::from_secs(5),
        "answered after {waited:?}"
    );
    for connection in &mut stuck {
        read_until_closed(connection, 0);
    }
}
