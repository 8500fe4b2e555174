//! A page-hit counter written against the standard `wasi:keyvalue@0.2.0-draft` interfaces and
//! `wasi:http` only, as one written for wasmCloud or wasmtime's `wasmtime-wasi-keyvalue` would
//! be: nothing in it names easycaching. `easycaching serve` runs it unchanged, its buckets being
//! caches, under the grants the server was given:
//!
//! ```sh
//! easycaching serve keyvalue_counter.wasm --allow 'cache:default=rwc'
//! curl localhost:8220/home        # 1
//! curl localhost:8220/home        # 2
//! easycaching cache get default home   # 2
//! ```
//!
//! `GET /NAME` adds one to the counter `NAME` of the bucket `""` (the default bucket, the cache
//! `default` on easycaching) and answers its new count; `?bucket=B` counts in bucket `B`
//! instead. A failure answers 500 with the `wasi:keyvalue` error's case (and `other`'s message).

mod bindings {
    wit_bindgen::generate!({
        world: "easycaching:cache/keyvalue-http-handler",
        path: "../../../wit",
        generate_all,
    });
}

use bindings::exports::wasi::http::incoming_handler::Guest;
use bindings::wasi::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};
// The WIT folder holds both drafts of `wasi:keyvalue`, so wit-bindgen names each package's
// module with its version; a component with only its own copy of the interfaces, as one for
// wasmCloud has, writes `bindings::wasi::keyvalue`.
use bindings::wasi::keyvalue0_2_0_draft::{atomics, store};

struct Counter;

impl Guest for Counter {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let target = request.path_with_query().unwrap_or_default();
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let name = path.trim_start_matches('/');
        let bucket = query.split('&').find_map(|pair| pair.strip_prefix("bucket=")).unwrap_or("");
        let (status, body) = if name.is_empty() {
            (400, "GET /NAME counts NAME's hits".to_owned())
        } else {
            match count(bucket, name) {
                Ok(hits) => (200, hits.to_string()),
                Err(error) => (500, describe(&error)),
            }
        };
        respond(response_out, status, &body);
    }
}

bindings::export!(Counter with_types_in bindings);

/// Adds one to `name` in `bucket`; its new count.
fn count(bucket: &str, name: &str) -> Result<u64, store::Error> {
    let bucket = store::open(bucket)?;
    atomics::increment(&bucket, name, 1)
}

fn describe(error: &store::Error) -> String {
    match error {
        store::Error::NoSuchStore => "no-such-store".to_owned(),
        store::Error::AccessDenied => "access-denied".to_owned(),
        store::Error::Other(message) => format!("other: {message}"),
    }
}

fn respond(out: ResponseOutparam, status: u16, body: &str) {
    let headers = Fields::new();
    headers.append("content-type", b"text/plain").expect("an allowed header");
    let response = OutgoingResponse::new(headers);
    response.set_status_code(status).expect("a valid status code");
    let body_out = response.body().expect("the body of a new response, taken once");
    ResponseOutparam::set(out, Ok(response));
    if let Ok(stream) = body_out.write() {
        // One short write: a count or an error's message, under 4096 bytes.
        let text = &body.as_bytes()[..body.len().min(4096)];
        if stream.blocking_write_and_flush(text).is_err() {
            return;
        }
    }
    let _ = OutgoingBody::finish(body_out, None);
}
