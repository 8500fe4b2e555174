//! A `wasi:http` handler served on a loopback port for a test: [`Harness::serve`](crate::Harness::serve).

use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use easycaching_http::{MetricsSummary, Server, Shutdown};
use serde::de::DeserializeOwned;

use crate::{Error, Result};

/// The longest a request, or the server's start, may take before the test is told so.
const WITHIN: Duration = Duration::from_secs(60);

/// A handler serving on `127.0.0.1`, with the harness's database and grants, until
/// [`Served::stop`] (or until it is dropped). Every request runs in a fresh instance, as under
/// `easycaching serve`.
pub struct Served {
    address: SocketAddr,
    shutdown: Shutdown,
    serving: Option<JoinHandle<easycaching_http::Result<MetricsSummary>>>,
    client: ureq::Agent,
}

/// One response: its status, headers and whole body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code, e.g. 200.
    pub status: u16,
    /// The headers, names in lower case, in the order sent.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON into `T`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|error| {
            Error::Internal(format!(
                "the response body is not the JSON asked for ({error}): {:?}",
                self.text()
            ))
        })
    }

    /// The first header of that name (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }
}

impl Served {
    /// Starts `server` on a thread of its own and waits until it accepts connections.
    pub(crate) fn start(server: Server) -> Result<Served> {
        let shutdown = Shutdown::new();
        let (bound, address) = mpsc::channel();
        let serving = {
            let shutdown = shutdown.clone();
            std::thread::Builder::new()
                .name("easycaching-harness-serve".to_owned())
                .spawn(move || {
                    server.serve_until(&shutdown, |address| {
                        let _ = bound.send(address);
                    })
                })
                .map_err(|error| Error::Internal(format!("cannot start the server's thread: {error}")))?
        };
        let address = match address.recv_timeout(WITHIN) {
            Ok(address) => address,
            // The server returned before listening: its error says why.
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(match serving.join() {
                    Ok(Err(error)) => Error::Internal(format!("the server did not start: {error}")),
                    Ok(Ok(_)) => Error::Internal("the server stopped before it listened".to_owned()),
                    Err(_) => Error::Internal("the server panicked before it listened".to_owned()),
                });
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                shutdown.stop();
                return Err(Error::Internal(format!("the server did not listen within {WITHIN:?}")));
            }
        };
        let client = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(WITHIN))
            .build()
            .into();
        Ok(Served { address, shutdown, serving: Some(serving), client })
    }

    /// The address it listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The URL of `path_and_query` (which starts with `/`) on this server.
    pub fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{path_and_query}", self.address)
    }

    /// `GET path_and_query`.
    pub fn get(&self, path_and_query: &str) -> Result<Response> {
        self.answer(self.client.get(self.url(path_and_query)).call())
    }

    /// `DELETE path_and_query`.
    pub fn delete(&self, path_and_query: &str) -> Result<Response> {
        self.answer(self.client.delete(self.url(path_and_query)).call())
    }

    /// `POST path_and_query` with `body`.
    pub fn post(&self, path_and_query: &str, body: impl AsRef<[u8]>) -> Result<Response> {
        self.answer(self.client.post(self.url(path_and_query)).send(body.as_ref()))
    }

    /// `PUT path_and_query` with `body`.
    pub fn put(&self, path_and_query: &str, body: impl AsRef<[u8]>) -> Result<Response> {
        self.answer(self.client.put(self.url(path_and_query)).send(body.as_ref()))
    }

    /// Stops accepting, waits for the requests in flight, and returns what was served: the
    /// requests, how many answered 4xx and 5xx (a plugin that trapped or ran out of a limit
    /// answers 500), and their latencies.
    pub fn stop(mut self) -> Result<MetricsSummary> {
        self.stopped()
    }

    fn stopped(&mut self) -> Result<MetricsSummary> {
        self.shutdown.stop();
        let Some(serving) = self.serving.take() else {
            return Err(Error::Internal("the server was stopped already".to_owned()));
        };
        match serving.join() {
            Ok(summary) => {
                summary.map_err(|error| Error::Internal(format!("the server did not stop cleanly: {error}")))
            }
            Err(_) => Err(Error::Internal("the server panicked".to_owned())),
        }
    }

    fn answer(
        &self,
        response: std::result::Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Response> {
        let mut response = response.map_err(|error| {
            Error::Internal(format!("no answer from the server on {}: {error}", self.address))
        })?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| {
                (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned())
            })
            .collect();
        let body = response
            .body_mut()
            .with_config()
            .limit(u64::MAX)
            .read_to_vec()
            .map_err(|error| Error::Internal(format!("cannot read the response body: {error}")))?;
        Ok(Response { status, headers, body })
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if self.serving.is_some() {
            let _ = self.stopped();
        }
    }
}

impl std::fmt::Debug for Served {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Served").field("address", &self.address).finish_non_exhaustive()
    }
}
