//! The HTTP surface of a node: routes, their shared state, middleware and error mapping.
//!
//! - [`kv`]: the client API (`PUT /set`, `GET /get`, `DELETE /delete`, `GET /keys`).
//! - [`health`]: `GET /health`.
//! - [`peer`]: the Raft RPC routes other nodes call (`POST /raft/vote`, `/raft/append`,
//!   `/raft/timeout-now`, `/raft/snapshot`, `/raft/read-index`).
//! - [`cluster`]: membership (`GET /cluster`, `/cluster/members`, `POST /cluster/leader`).
//! - [`forward`]: relays client requests from a follower to the leader.
//! - [`dashboard`]: `GET /dashboard` (the web page) and `GET /dashboard/state` (the cluster, gathered
//!   by this node for it).
//! - [`admin`]: `/admin/faults`, the fault layer's switch (only with `KVSTORE_FAULTS=1`).
//! - [`backup`]: `GET /admin/snapshot` (a backup as of a committed index) and
//!   `GET /admin/read-index`.
//! - [`auth`]: optional client tokens (`--client-tokens-file`) and the role each route needs.
//! - [`errors`]: [`ApiError`], the one place errors become HTTP.
//! - [`middleware`]: request ids, the request log line, panic recovery.
//! - [`metrics`]: `GET /metrics` (Prometheus text) and the middleware that counts requests.
//! - [`probes`]: `GET /livez` and `GET /readyz`.
//! - [`watch`]: `GET /watch`, the committed changes of a prefix as Server-Sent Events.
//!
//! [`configure`] registers routes and extractor settings; [`app`] adds the middleware. The server
//! and the tests use the same two functions, so what is tested is what runs. With a separate
//! peer listener (`AppState::peer_url`), the client listener's [`app`] has no `/raft/*` routes
//! (they answer 404 there) and [`peer_app`] serves only them. Handlers only send
//! messages to actors and map replies; they must never own or lock state.

pub mod admin;
pub mod auth;
pub mod backup;
pub mod cluster;
pub mod dashboard;
pub mod errors;
pub mod forward;
pub mod health;
pub mod keys;
pub mod kv;
pub mod metrics;
pub mod middleware;
pub mod peer;
pub mod probes;
pub mod watch;

use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpRequest};
use tracing_actix_web::TracingLogger;

pub use crate::config::Limits;
pub use errors::ApiError;

use crate::raft::actor::RaftActor;
use crate::store::actor::StoreActor;

/// What every handler can reach: addresses of the actors and fixed settings. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    /// This node's id (sent along with forwarded requests).
    pub node_id: String,
    /// The cluster this node belongs to; peer RPCs must carry it (see [`peer`]).
    pub cluster_id: String,
    pub store: Addr<StoreActor>,
    /// The change history and watchers of `GET /watch`.
    pub watch: Addr<crate::watch::actor::WatchActor>,
    pub raft: Addr<RaftActor>,
    pub limits: Limits,
    /// Longest a client request may wait for a leader, a commit or a read index.
    pub request_timeout: Duration,
    /// How long a write's `Idempotency-Key` is remembered (stamped into the write here).
    pub idempotency_window: Duration,
    /// The fault layer's switch, only with `KVSTORE_FAULTS=1` (`/admin/faults` refuses
    /// otherwise); the peer routes ask it the fate of their answers.
    pub faults: Option<Addr<crate::transport::faults::FaultsActor>>,
    /// The cluster secret: peer RPCs must be signed with it (see [`peer::guard`]).
    pub peer_keys: Option<std::sync::Arc<crate::security::peer_auth::PeerKeys>>,
    /// Peer RPCs are accepted from any source address without a secret (`--insecure-peers`).
    pub peers_open: bool,
    /// This node's peer URL when Raft RPCs have their own listener (`--peer-port`); the client
    /// listener then serves no `/raft/*` route.
    pub peer_url: Option<String>,
    /// Peer mutual TLS is on: `/raft/*` is served only on the peer listener, whose TLS handshake
    /// admits only clients with a certificate signed by the peer CA, so every request reaching
    /// a Raft route came from a peer.
    pub peer_mtls: bool,
    /// Peer codecs this node reads, answers in and announces (`--peer-codec`).
    pub peer_codec: crate::codec::peer::PeerCodec,
    /// What forwarding trusts to reach an `https://` leader (`--tls-ca`); `None`: plain HTTP.
    pub forward_tls: Option<Arc<rustls::ClientConfig>>,
    /// Client tokens (`--client-tokens-file`); `None`: the client API is open, as it always was.
    pub client_tokens: Option<std::sync::Arc<auth::ClientTokens>>,
    /// This node's metric registry (`GET /metrics`; the request middleware records into it).
    pub metrics: crate::metrics::Metrics,
    /// The backups (`GET /admin/snapshot`) under way on this node, shared by its workers.
    pub backups: backup::BackupSlots,
}

/// Registers every route, the JSON/query error mapping and the 404/405 answers.
pub fn configure(cfg: &mut web::ServiceConfig, state: AppState) {
    let separate_peer_listener = state.peer_url.is_some();
    let limits = state.limits;
    let json = web::JsonConfig::default()
        .limit(state.limits.max_body_bytes)
        // curl -d sends a form content type; the original accepted any, so do we.
        .content_type_required(false)
        .error_handler(errors::json_error);
    let query = web::QueryConfig::default().error_handler(errors::query_error);
    let relayed = forward::max_relayed_bytes(&state.limits);
    // Made here, on each worker's thread: one forwarding client per thread, reused.
    let forwarder =
        forward::Forwarder::with_tls(state.forward_tls.as_ref()).with_answer_limit(relayed);
    let member_tls = state.forward_tls.clone();
    cfg.app_data(web::Data::new(state))
        .app_data(web::Data::new(forwarder))
        .app_data(json)
        .app_data(query)
        .service(
            web::resource("/set")
                .wrap(from_fn(auth::write))
                .route(web::put().to(kv::set))
                .default_service(web::to(|| not_allowed("PUT"))),
        )
        .service(
            web::resource("/get")
                .wrap(from_fn(auth::read))
                .route(web::get().to(kv::get))
                .default_service(web::to(|| not_allowed("GET"))),
        )
        .service(
            web::resource("/watch")
                .wrap(from_fn(auth::read))
                .route(web::get().to(watch::watch))
                .default_service(web::to(|| not_allowed("GET"))),
        )
        .service(
            web::resource("/delete")
                .wrap(from_fn(auth::write))
                .route(web::delete().to(kv::delete))
                .default_service(web::to(|| not_allowed("DELETE"))),
        )
        .service(
            web::resource("/keys")
                .wrap(from_fn(auth::read))
                .route(web::get().to(keys::keys))
                .default_service(web::to(|| not_allowed("GET"))),
        )
        .service(
            web::resource("/health")
                .route(web::get().to(health::health))
                .default_service(web::to(|| not_allowed("GET"))),
        )
        .service(
            web::resource("/cluster")
                .wrap(from_fn(auth::read))
                .route(web::get().to(cluster::show))
                .default_service(web::to(|| not_allowed("GET"))),
        )
        .service(
            web::resource("/cluster/members")
                .wrap(from_fn(auth::admin))
                .app_data(cluster::json_config())
                .route(web::post().to(cluster::add))
                .default_service(web::to(|| not_allowed("POST"))),
        )
        .service(
            web::resource("/cluster/members/{id}/promote")
                .wrap(from_fn(auth::admin))
                .route(web::post().to(cluster::promote))
                .default_service(web::to(|| not_allowed("POST"))),
        )
        .service(
            web::resource("/cluster/members/{id}")
                .wrap(from_fn(auth::admin))
                .route(web::delete().to(cluster::remove))
                .default_service(web::to(|| not_allowed("DELETE"))),
        )
        .service(
            web::resource("/cluster/leader")
                .wrap(from_fn(auth::admin))
                .app_data(web::PayloadConfig::new(cluster::MAX_CLUSTER_BODY_BYTES))
                .route(web::post().to(cluster::transfer))
                .default_service(web::to(|| not_allowed("POST"))),
        )
        .service(
            web::resource("/admin/faults")
                .wrap(from_fn(auth::admin))
                .route(web::get().to(admin::show))
                .route(web::post().to(admin::replace))
                .route(web::delete().to(admin::clear))
                .default_service(web::to(|| not_allowed("GET, POST, DELETE"))),
        )
        // Metrics and probes: every node answers for itself (never forwarded).
        .service(
            web::resource("/metrics")
                .wrap(from_fn(auth::read))
                .route(web::get().to(metrics::metrics))
                .default_service(web::to(|| not_allowed("GET"))),
        )
        .service(
            web::resource("/livez")
                .route(web::get().to(probes::livez))
                .route(web::head().to(probes::livez))
                .default_service(web::to(|| not_allowed("GET, HEAD"))),
        )
        .service(
            web::resource("/readyz")
                .route(web::get().to(probes::readyz))
                .route(web::head().to(probes::readyz))
                .default_service(web::to(|| not_allowed("GET, HEAD"))),
        )
        .service(
            web::resource("/admin/snapshot")
                .wrap(from_fn(auth::admin))
                .route(web::get().to(backup::snapshot))
                .default_service(web::to(|| not_allowed("GET"))),
        )
        .service(
            web::resource("/admin/read-index")
                .wrap(from_fn(auth::admin))
                .route(web::get().to(backup::show_read_index))
                .default_service(web::to(|| not_allowed("GET"))),
        );
    dashboard::routes(cfg, member_tls.as_ref());
    if !separate_peer_listener {
        raft_routes(cfg, &limits);
    }
    cfg.default_service(web::to(not_found));
}

/// The peer listener's routes (`--peer-port`): `/raft/*` only; anything else is 404.
pub fn configure_peer(cfg: &mut web::ServiceConfig, state: AppState) {
    let limits = state.limits;
    let query = web::QueryConfig::default().error_handler(errors::query_error);
    cfg.app_data(web::Data::new(state)).app_data(query);
    raft_routes(cfg, &limits);
    cfg.default_service(web::to(not_found));
}

/// The Raft routes, each behind [`peer::guard`], with body limits tied to what a legitimate
/// RPC can carry (see [`peer`]).
fn raft_routes(cfg: &mut web::ServiceConfig, limits: &Limits) {
    cfg.service(
        web::resource("/raft/vote")
            .wrap(actix_web::middleware::from_fn(peer::guard))
            .app_data(peer::vote_json_config())
            .route(web::post().to(peer::vote))
            .default_service(web::to(|| not_allowed("POST"))),
    )
    .service(
        web::resource("/raft/append")
            .wrap(actix_web::middleware::from_fn(peer::guard))
            .app_data(peer::json_config(limits))
            .route(web::post().to(peer::append))
            .default_service(web::to(|| not_allowed("POST"))),
    )
    .service(
        web::resource("/raft/timeout-now")
            .wrap(actix_web::middleware::from_fn(peer::guard))
            .app_data(peer::vote_json_config())
            .route(web::post().to(peer::timeout_now))
            .default_service(web::to(|| not_allowed("POST"))),
    )
    .service(
        web::resource("/raft/read-index")
            .wrap(actix_web::middleware::from_fn(peer::guard))
            .app_data(peer::vote_json_config())
            .route(web::post().to(peer::read_index))
            .default_service(web::to(|| not_allowed("POST"))),
    )
    .service(
        web::resource("/raft/snapshot")
            .wrap(actix_web::middleware::from_fn(peer::guard))
            .route(web::post().to(peer::snapshot))
            .default_service(web::to(|| not_allowed("POST"))),
    );
}

/// The full application: [`configure`] wrapped in the request-id, logging and panic middleware.
pub fn app(
    state: AppState,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    with_middleware(|cfg| configure(cfg, state))
}

/// The peer listener's application: [`configure_peer`] wrapped in the same middleware as [`app`].
pub fn peer_app(
    state: AppState,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    with_middleware(|cfg| configure_peer(cfg, state))
}

/// Routes from `routes` wrapped in the middleware every listener has: request id, then the
/// tracing span and log line, then the request metrics ([`metrics::track`]), then panics caught
/// as 500s.
fn with_middleware(
    routes: impl FnOnce(&mut web::ServiceConfig),
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .wrap(middleware::CatchPanic)
        .wrap(from_fn(metrics::track))
        .wrap(TracingLogger::<middleware::RequestSpan>::new())
        .wrap(actix_web::middleware::from_fn(middleware::request_id))
        .configure(routes)
}

async fn not_allowed(allowed: &'static str) -> Result<&'static str, ApiError> {
    Err(ApiError::MethodNotAllowed { allowed })
}

async fn not_found(req: HttpRequest) -> Result<&'static str, ApiError> {
    Err(ApiError::RouteNotFound {
        path: req.path().to_owned(),
    })
}
