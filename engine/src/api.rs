//! The editor's JSON-over-HTTP API, which `weir up` serves under `/api` (documented in
//! `docs/api.md`). Responses carry the model's resources (`Flow`, `FlowNode`, `Module`) as their
//! Kubernetes-style JSON, every read and write goes through the [`Store`] (so, in a cluster,
//! through the apiserver and its RBAC), and secret settings never leave the engine. `/api/mcp`
//! (`mcp.rs`) serves the Model Context Protocol, its tools calling these routes as the caller.

pub mod access;
mod check;
mod document;
pub(crate) mod error;
mod events;
mod extract;
mod feed;
mod flows;
mod history;
mod kubernetes;
mod layout;
mod mcp;
mod messages;
mod modify;
mod modules;
mod ports;
mod recorder;
mod rename;
mod runs;
mod save;
mod secret_settings;
mod send;
mod session;
mod settings;
mod solutions;
mod state;
mod transfer;

use std::sync::Arc;

use axum::{
    Router,
    extract::DefaultBodyLimit,
    middleware,
    routing::{get, post, put},
};
use tokio_util::sync::CancellationToken;
use weir_api::FailureKind;
use weir_runtime::{Runtime, trust::Bearer};
use weir_store::Store;

use crate::scope::Scope;
use access::{Access, Authenticator};
use error::ApiError;
use state::Api;

/// How the API is served: who may use it, and over which namespaces.
#[derive(Debug, Clone)]
pub struct Serving {
    /// Who may do what.
    pub access: Access,
    /// Where flows and modules live.
    pub scope: Scope,
    /// What the engine presents to the modules whose messages it watches, in a cluster.
    pub bearer: Option<Arc<Bearer>>,
    /// How many runs of each flow the engine keeps for `GET /api/flows/{flow}/runs`.
    pub runs_kept: usize,
    /// Where the http module's webhooks are reached from outside, ending in `/hooks/`, when
    /// known: the editor shows each webhook node's URL under it.
    pub webhooks: Option<String>,
}

/// The API's routes, to nest under `/api`. `runtime` is the in-process runtime whose messages
/// the event stream shows; the feed behind the event stream runs until `stop` is cancelled,
/// which also ends open event streams so a graceful shutdown is not held up by them.
pub fn router(
    store: Arc<dyn Store>,
    runtime: Option<Runtime>,
    serving: Serving,
    stop: &CancellationToken,
) -> Router {
    let Serving { access, scope, bearer, runs_kept, webhooks } = serving;
    let feed =
        feed::Feed::start(Arc::clone(&store), runtime.as_ref(), &scope, bearer, runs_kept, stop);
    let authenticator = Authenticator { access: access.clone(), store, home: scope.home.clone() };
    let api = Api {
        access,
        scope,
        runtime,
        feed,
        stop: stop.clone(),
        webhooks,
        schemas: Arc::default(),
        own_cluster: Arc::default(),
    };
    // Signing in and out are the only routes for callers the API does not know yet.
    let signing = Router::new().route("/session", post(session::post).delete(session::delete));
    let routes = Router::new()
        .route("/session", get(session::get))
        .route("/modules", get(modules::list))
        .route("/modules/{module}/components/{component}/ports", post(ports::resolve_for))
        .route("/kubernetes/offer", get(kubernetes::offer))
        .route("/kubernetes/schema", get(kubernetes::schema))
        .route("/flows", get(flows::list))
        .route("/flows/{flow}", get(flows::get).put(save::put).delete(flows::delete))
        .route("/flows/{flow}/layout", put(layout::put))
        .route("/flows/{flow}/rename", post(rename::post))
        .route("/flows/{flow}/export", get(transfer::export))
        .route("/flows/{flow}/messages", get(messages::list_for_flow))
        .route("/flows/{flow}/runs", get(runs::list))
        .route("/runs/{run}", get(runs::get))
        .route("/runs/{run}/replay", post(runs::replay))
        .route("/import", post(transfer::import))
        .route("/solutions", get(solutions::list))
        .route("/solutions/{name}/install", post(solutions::install))
        .route("/validate", post(save::validate))
        .route("/send", post(send::post))
        .route("/events", get(events::stream))
        .route("/nodes/{node}/messages", get(messages::list))
        .fallback(|| async { ApiError::not_found("no such API route") })
        .method_not_allowed_fallback(|| async {
            ApiError::Failed {
                status: axum::http::StatusCode::METHOD_NOT_ALLOWED,
                kind: FailureKind::BadRequest,
                message: "this route does not take that method".to_owned(),
            }
        })
        .layer(middleware::from_fn_with_state(authenticator.clone(), access::authenticate))
        .merge(signing)
        .layer(DefaultBodyLimit::max(extract::MAX_BODY_BYTES))
        .with_state(api);
    // The MCP endpoint's tools call the routes above, as the caller.
    let mcp = mcp::routes(routes.clone(), authenticator);
    routes.merge(mcp)
}
