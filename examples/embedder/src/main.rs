//! A service of one's own that runs a plugin per request: `embedder PLUGIN_DIR [ADDRESS]`.

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    routing::{get, post},
};
use plugin_host::{Host, LocalPluginStore, Ran, Settings, Target};
use serde_json::{Value, json};

type Answer = Result<Json<Value>, (StatusCode, String)>;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Worker processes are this program started again: they serve the host here, then exit.
    plugin_host::run_if_worker();
    let mut args = std::env::args().skip(1);
    let plugins = args.next().ok_or("usage: embedder PLUGIN_DIR [ADDRESS]")?;
    serve(plugins, args.next().unwrap_or_else(|| "127.0.0.1:3000".into()))
}

#[tokio::main]
async fn serve(plugins: String, address: String) -> Result<(), Box<dyn std::error::Error>> {
    let settings = Settings {
        // Worker processes: a plugin that crashes WasmEdge costs a worker, never this service.
        #[cfg(feature = "workers")]
        isolation: plugin_host::Isolation::Workers(plugin_host::WorkerSettings::default()),
        // `CHECK_ABI=off` loads plugins the ABI check refuses: only to see that the test suite's
        // crashing plugins cost a worker process, not this service.
        check_abi: std::env::var("CHECK_ABI").as_deref() != Ok("off"),
        ..Settings::default()
    };
    let store = LocalPluginStore::new(plugins, settings.limits.max_plugin_bytes)?;
    let host = Host::new(store, settings)?;
    let app = Router::new().route("/run/{plugin}/{input}", get(run)).route("/upper", post(upper)).with_state(host);
    let listener = tokio::net::TcpListener::bind(address).await?;
    println!("listening on {}", listener.local_addr()?);
    Ok(axum::serve(listener, app).await?)
}

/// `GET /run/hello/21`: runs the v1 plugin `hello` with 21.
async fn run(State(host): State<Host>, Path((plugin, input)): Path<(String, i32)>) -> Answer {
    let target = Target::new(&plugin).map_err(|error| (StatusCode::BAD_REQUEST, error.to_string()))?;
    let ran = host.run(&target, input).await.map_err(failed)?;
    Ok(answer(&ran, json!(ran.output)))
}

/// `POST /upper` with text: calls the v2 function `upper` of the plugin `text`.
async fn upper(State(host): State<Host>, text: String) -> Answer {
    let ran = host.call(&Target::new("text").unwrap(), "upper", text.into_bytes()).await.map_err(failed)?;
    Ok(answer(&ran, json!(String::from_utf8_lossy(&ran.output))))
}

/// The output, and what produced it: the plugin's name, version and SHA-256.
fn answer<T>(ran: &Ran<T>, output: Value) -> Json<Value> {
    let (plugin, version) = (ran.plugin.name.as_str(), ran.plugin.version.as_ref().map(ToString::to_string));
    Json(json!({ "output": output, "plugin": plugin, "version": version, "sha256": &*ran.sha256 }))
}

/// A failure as `code: message`, never with paths or engine internals (`client_message`).
fn failed(error: plugin_host::Error) -> (StatusCode, String) {
    let status = match error.kind() {
        kind if kind.is_transient() => StatusCode::SERVICE_UNAVAILABLE,
        kind if !kind.plugin_found() => StatusCode::NOT_FOUND,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    (status, format!("{}: {}", error.kind().code(), error.client_message()))
}
