//! The floor for the HTTP benchmark: the web example's `GET /cache?key=K` and
//! `POST /cache?key=K&value=V` answered natively from an in-memory map, with the same JSON.
//! What `easycaching serve` costs on top of this is wasm, isolation and durability.
//!
//! `http-floor ADDRESS WORKERS`, e.g. `http-floor 127.0.0.1:8221 5`.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use anyhow::{Context, Result};
use axum::Router;
use axum::extract::{Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::{Value, json};

type Entries = Arc<RwLock<HashMap<String, Value>>>;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let address = args.next().unwrap_or_else(|| "127.0.0.1:8221".to_owned());
    let workers: usize =
        args.next().map(|n| n.parse()).transpose().context("WORKERS is a number")?.unwrap_or(5);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()?
        .block_on(serve(&address))
}

async fn serve(address: &str) -> Result<()> {
    let entries = Entries::default();
    let app = Router::new().route("/cache", get(view).post(store)).with_state(entries);
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address}"))?;
    println!("http-floor: serving http://{}/", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

fn json_response(body: String) -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], body)
}

async fn view(
    State(entries): State<Entries>,
    Query(query): Query<HashMap<String, String>>,
) -> impl IntoResponse {
    let key = query.get("key").cloned().unwrap_or_default();
    let value = entries.read().map(|entries| entries.get(&key).cloned()).unwrap_or_default();
    json_response(json!({ key: value }).to_string())
}

async fn store(
    State(entries): State<Entries>,
    Query(query): Query<HashMap<String, String>>,
) -> impl IntoResponse {
    let key = query.get("key").cloned().unwrap_or_default();
    let value = query.get("value").cloned().unwrap_or_default();
    if let Ok(mut entries) = entries.write() {
        entries.insert(key, json!({ "json": value }));
    }
    json_response("null".to_owned())
}
