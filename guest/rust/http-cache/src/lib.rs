//! The web example: the original easycaching's FastAPI endpoints, as a `wasi:http` handler that
//! `easycaching serve` runs on as many workers as you like, all sharing one cache.
//!
//! The original (`uvicorn basic:app --workers 5`):
//!
//! ```python
//! @app.get('/cache')
//! async def view_cache(key: str):
//!     return {key: await app.cache[key]}
//!
//! @app.post('/cache')
//! async def set_cache(key: str, value: str):
//!     return await app.cache.set(key, {'json': value})
//! ```
//!
//! Here, in the cache `web` (grant it with `--allow 'cache:web=rwc'`):
//!
//! | request | answer |
//! |---|---|
//! | `GET /cache?key=K` | `200 {"K": value}`, `{"K": null}` when nothing is stored under K |
//! | `POST /cache?key=K&value=V` | stores `{"json": "V"}` under K; `200 null` |
//! | `DELETE /cache?key=K` | `200 {"deleted": true}`, or `false` when nothing was there |
//! | `GET /cache[?cursor=C][&limit=N]` | `200 {"entries": [{"K": value}, ...], "next": C or null}`: one page in key order, N entries (default 100, at most 1000); pass `next` back as `cursor` for the next page |
//!
//! Query values are URL-decoded (`+` is a space). A missing `key` (or `value` on POST) answers
//! `422 {"detail": ...}`, another path `404`, another method `405`, as FastAPI does; a cache
//! error answers `403` (access denied), `413` (key or value too large) or `500`, with the WIT
//! error case and message in `detail`. Every body is JSON. The Python and JavaScript versions of
//! this example answer exactly the same.

use easycaching_guest::Cache;
use serde_json::json;

mod bindings {
    wit_bindgen::generate!({
        world: "easycaching:cache/http-handler",
        path: "../../../wit",
        // The easycaching interfaces come from the guest SDK, so its `Cache` works here;
        // wasi:http and its dependencies are generated in this crate.
        with: {
            "easycaching:cache/types@0.1.0": easycaching_guest::bindings::easycaching::cache::types,
            "easycaching:cache/caches@0.1.0": easycaching_guest::bindings::easycaching::cache::caches,
            "easycaching:cache/queues@0.1.0": easycaching_guest::bindings::easycaching::cache::queues,
            "easycaching:cache/manager@0.1.0": easycaching_guest::bindings::easycaching::cache::manager,
        },
        generate_all,
    });
}

use bindings::exports::wasi::http::incoming_handler::Guest;
use bindings::wasi::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

/// The cache every endpoint works on.
const CACHE: &str = "web";
/// Entries in a page of the listing unless `limit` says otherwise.
const DEFAULT_PAGE: u32 = 100;
/// The most entries in a page of the listing (the host's own page limit).
const MAX_PAGE: u32 = 1000;
/// The most bytes one `blocking-write-and-flush` call may write.
const WRITE_CHUNK: usize = 4096;

struct HttpCache;

impl Guest for HttpCache {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let answer = answer(&request);
        respond(response_out, answer);
    }
}

bindings::export!(HttpCache with_types_in bindings);

/// A status code and a JSON body.
struct Answer {
    status: u16,
    body: String,
}

impl Answer {
    fn ok(body: String) -> Answer {
        Answer { status: 200, body }
    }

    /// An error in FastAPI's shape: `{"detail": message}`.
    fn detail(status: u16, message: &str) -> Answer {
        Answer { status, body: json!({ "detail": message }).to_string() }
    }
}

impl From<easycaching_guest::Error> for Answer {
    fn from(error: easycaching_guest::Error) -> Answer {
        let status = match error.case() {
            "access-denied" => 403,
            "too-large" => 413,
            _ => 500,
        };
        Answer::detail(status, &format!("{}: {}", error.case(), error.message()))
    }
}

fn answer(request: &IncomingRequest) -> Answer {
    let target = request.path_with_query().unwrap_or_default();
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    if path != "/cache" {
        return Answer::detail(404, "Not Found");
    }
    let Some(params) = Params::parse(query) else {
        return Answer::detail(400, "the query string is not valid URL-encoded UTF-8");
    };
    let result = match request.method() {
        Method::Get => match params.get("key") {
            Some(key) => view(key),
            None => list(&params),
        },
        Method::Post => match (params.get("key"), params.get("value")) {
            (Some(key), Some(value)) => store(key, value),
            _ => return Answer::detail(422, "POST /cache needs the query parameters key and value"),
        },
        Method::Delete => match params.get("key") {
            Some(key) => delete(key),
            None => return Answer::detail(422, "DELETE /cache needs the query parameter key"),
        },
        _ => return Answer::detail(405, "Method Not Allowed"),
    };
    result.unwrap_or_else(Answer::from)
}

/// `GET /cache?key=K`: `{K: value}`, with `null` when nothing is stored.
fn view(key: &str) -> Result<Answer, easycaching_guest::Error> {
    let value = Cache::create(CACHE)?.get_json(key)?;
    // The host hands back the JSON text it checked when it was stored, so it goes into the
    // answer as it is, without being parsed again.
    let key = serde_json::Value::from(key).to_string();
    Ok(Answer::ok(format!("{{{key}:{}}}", value.as_deref().unwrap_or("null"))))
}

/// `POST /cache?key=K&value=V`: stores `{"json": V}`; answers `null`, as the original's
/// `cache.set` returns nothing.
fn store(key: &str, value: &str) -> Result<Answer, easycaching_guest::Error> {
    Cache::create(CACHE)?.set(key, &json!({ "json": value }))?;
    Ok(Answer::ok("null".to_owned()))
}

/// `DELETE /cache?key=K`: `{"deleted": whether something was there}`.
fn delete(key: &str) -> Result<Answer, easycaching_guest::Error> {
    let deleted = Cache::create(CACHE)?.delete(key)?;
    Ok(Answer::ok(json!({ "deleted": deleted }).to_string()))
}

/// `GET /cache[?cursor=C][&limit=N]`: one page of entries as `{key: value}` objects.
fn list(params: &Params) -> Result<Answer, easycaching_guest::Error> {
    let limit = match params.get("limit").map(str::parse::<u32>) {
        None => DEFAULT_PAGE,
        Some(Ok(limit @ 1..=MAX_PAGE)) => limit,
        Some(_) => {
            return Ok(Answer::detail(422, &format!("limit must be a whole number from 1 to {MAX_PAGE}")));
        }
    };
    let page = Cache::create(CACHE)?.entries_page(params.get("cursor"), limit)?;
    let entries: Vec<String> = page
        .entries
        .iter()
        .map(|entry| format!("{{{}:{}}}", serde_json::Value::from(entry.key.as_str()), entry.value))
        .collect();
    let next = serde_json::Value::from(page.next).to_string();
    Ok(Answer::ok(format!("{{\"entries\":[{}],\"next\":{next}}}", entries.join(","))))
}

/// The decoded query parameters, in order.
struct Params(Vec<(String, String)>);

impl Params {
    /// `None` when a name or value does not decode to UTF-8.
    fn parse(query: &str) -> Option<Params> {
        query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                Some((url_decode(name)?, url_decode(value)?))
            })
            .collect::<Option<Vec<_>>>()
            .map(Params)
    }

    /// The value of `name`; the last one when it is given more than once, as in Starlette.
    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().rev().find(|(n, _)| n == name).map(|(_, value)| value.as_str())
    }
}

/// Decodes `application/x-www-form-urlencoded` text: `+` is a space, `%XX` a byte.
fn url_decode(text: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let [first, tail @ ..] = rest {
        match first {
            b'+' => bytes.push(b' '),
            b'%' => {
                let hex = tail.get(..2).filter(|hex| hex.iter().all(u8::is_ascii_hexdigit))?;
                let hex = std::str::from_utf8(hex).ok()?;
                bytes.push(u8::from_str_radix(hex, 16).ok()?);
                rest = &tail[2..];
                continue;
            }
            byte => bytes.push(*byte),
        }
        rest = tail;
    }
    String::from_utf8(bytes).ok()
}

/// Sends `answer` as a JSON response.
fn respond(out: ResponseOutparam, answer: Answer) {
    let headers = Fields::new();
    headers.append("content-type", b"application/json").expect("an allowed header");
    headers.append("content-length", answer.body.len().to_string().as_bytes()).expect("an allowed header");
    let response = OutgoingResponse::new(headers);
    response.set_status_code(answer.status).expect("one of this file's valid status codes");
    let body = response.body().expect("the body of a new response, taken once");
    ResponseOutparam::set(out, Ok(response));
    // A failed write means the client went away; there is nobody left to tell.
    if let Ok(stream) = body.write() {
        for chunk in answer.body.as_bytes().chunks(WRITE_CHUNK) {
            if stream.blocking_write_and_flush(chunk).is_err() {
                return;
            }
        }
    }
    let _ = OutgoingBody::finish(body, None);
}
