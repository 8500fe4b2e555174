//! A `wasi:http` handler that misbehaves on purpose, one path per scenario, for the end-to-end
//! tests of `easycaching serve` (tests/http.rs):
//!
//! | path | does |
//! |---|---|
//! | `/trap` | panics, so the instance traps before it answers |
//! | `/spin` | loops forever (until `--timeout` stops it) |
//! | `/grow` | allocates until `--memory` stops it |
//! | `/sleep?ms=N` | sleeps N milliseconds, answers `slept N ms` |
//! | `/counter` | answers how many requests this instance has handled, itself included: `1` unless instances are reused |
//! | `/half` | answers 200, writes half a body (chunked), then panics |
//! | `/whole-then-trap` | answers 200 with a whole body (chunked), finished, then panics |
//! | `/length` | reads the whole request body, answers its length (blocks while the client does not send it) |
//! | `/big?bytes=N` | answers N bytes of `x`, written 4 KiB at a time (blocks while the client does not read) |
//!
//! It uses no cache, so it also runs on `wasmtime serve`: bench/http.sh compares the two servers
//! on `/counter`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

mod bindings {
    // The cache interfaces are generated too, and left unused: the component imports only
    // what it calls.
    wit_bindgen::generate!({
        world: "easycaching:cache/http-handler",
        path: "../../../wit",
        generate_all,
    });
}

use bindings::exports::wasi::http::incoming_handler::Guest;
use bindings::wasi::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

/// Requests this instance has handled.
static HANDLED: AtomicU64 = AtomicU64::new(0);

struct TestHandler;

impl Guest for TestHandler {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let handled = HANDLED.fetch_add(1, Ordering::Relaxed) + 1;
        let target = request.path_with_query().unwrap_or_default();
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let (status, body) = match path {
            "/trap" => panic!("this handler traps on purpose"),
            "/spin" => loop {
                std::hint::black_box(());
            },
            "/grow" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1; 16 << 20]);
                }
            }
            "/sleep" => sleep(query),
            "/big" => return big(query, response_out),
            "/half" => half(response_out),
            "/whole-then-trap" => whole_then_trap(response_out),
            "/counter" => (200, handled.to_string()),
            "/length" => length(request),
            _ => (404, format!("no scenario at {path}")),
        };
        respond(response_out, status, &body);
    }
}

bindings::export!(TestHandler with_types_in bindings);

/// `/sleep?ms=N`.
fn sleep(query: &str) -> (u16, String) {
    let Some(ms) = query.strip_prefix("ms=").and_then(|ms| ms.parse::<u64>().ok()) else {
        return (400, "/sleep needs ms=N".to_owned());
    };
    std::thread::sleep(Duration::from_millis(ms));
    (200, format!("slept {ms} ms"))
}

/// `/half`.
fn half(out: ResponseOutparam) -> ! {
    let response = OutgoingResponse::new(Fields::new());
    let body_out = response.body().expect("the body of a new response, taken once");
    ResponseOutparam::set(out, Ok(response));
    let stream = body_out.write().expect("the body's stream, taken once");
    stream.blocking_write_and_flush(b"HALF-").expect("the client reads");
    panic!("this handler traps halfway through its body on purpose");
}

/// `/whole-then-trap`.
fn whole_then_trap(out: ResponseOutparam) -> ! {
    let response = OutgoingResponse::new(Fields::new());
    let body_out = response.body().expect("the body of a new response, taken once");
    ResponseOutparam::set(out, Ok(response));
    let stream = body_out.write().expect("the body's stream, taken once");
    stream.blocking_write_and_flush(b"WHOLE").expect("the client reads");
    drop(stream);
    OutgoingBody::finish(body_out, None).expect("the body is finished");
    panic!("this handler traps after its whole response on purpose");
}

/// `/length`.
fn length(request: IncomingRequest) -> (u16, String) {
    let body = request.consume().expect("the request's body, taken once");
    let stream = body.stream().expect("the body's stream, taken once");
    let mut length = 0;
    // An error is the end of the body, or a failure to read it: either way, say what came.
    while let Ok(chunk) = stream.blocking_read(4096) {
        length += chunk.len();
    }
    (200, length.to_string())
}

/// `/big?bytes=N`.
fn big(query: &str, out: ResponseOutparam) {
    let Some(bytes) = query.strip_prefix("bytes=").and_then(|bytes| bytes.parse::<usize>().ok()) else {
        return respond(out, 400, "/big needs bytes=N");
    };
    let response = OutgoingResponse::new(Fields::new());
    let body_out = response.body().expect("the body of a new response, taken once");
    ResponseOutparam::set(out, Ok(response));
    let stream = body_out.write().expect("the body's stream, taken once");
    let chunk = vec![b'x'; 4096];
    let mut left = bytes;
    while left > 0 {
        let now = left.min(chunk.len());
        // blocking-write-and-flush takes at most 4096 bytes at a time.
        if stream.blocking_write_and_flush(&chunk[..now]).is_err() {
            return;
        }
        left -= now;
    }
    drop(stream);
    let _ = OutgoingBody::finish(body_out, None);
}

fn respond(out: ResponseOutparam, status: u16, body: &str) {
    let headers = Fields::new();
    headers.append("content-type", b"text/plain").expect("an allowed header");
    let response = OutgoingResponse::new(headers);
    response.set_status_code(status).expect("one of this file's valid status codes");
    let body_out = response.body().expect("the body of a new response, taken once");
    ResponseOutparam::set(out, Ok(response));
    if let Ok(stream) = body_out.write() {
        // Bodies here are short: one write of at most 4096 bytes.
        if stream.blocking_write_and_flush(body.as_bytes()).is_err() {
            return;
        }
    }
    let _ = OutgoingBody::finish(body_out, None);
}
