//! Request-scoped middleware: request ids, the per-request log line, and panic recovery.
//!
//! Order on the way in (outermost first): [`request_id`] → `TracingLogger<`[`RequestSpan`]`>` →
//! [`CatchPanic`] → routes. So every log line of a request, including a panic's, carries its
//! request id, and a panicking handler still gets a JSON 500 and a logged status and latency.
//! This module never looks at request bodies and never changes a successful response beyond
//! adding the `x-request-id` header.

use std::future::{ready, Ready};
use std::panic::AssertUnwindSafe;
use std::rc::Rc;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{forward_ready, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, ResponseError};
use futures_util::future::LocalBoxFuture;
use futures_util::FutureExt;
use tracing::Span;
use tracing_actix_web::RootSpanBuilder;

use super::errors::ApiError;

/// The header that carries the request id, in both directions.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest incoming `x-request-id` that is kept; a longer one is replaced by a fresh uuid.
const MAX_INCOMING_ID_LEN: usize = 128;

/// The id of the current request, in the request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

/// When the request entered the server, in the request's extensions.
#[derive(Debug, Clone, Copy)]
struct RequestStart(Instant);

/// Keeps a client's `x-request-id` (printable ASCII, at most 128 bytes) or makes a uuid v4,
/// stores it in the request's extensions and echoes it in the response header.
pub async fn request_id(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let id = req
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty() && s.len() <= MAX_INCOMING_ID_LEN)
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let header = HeaderValue::from_str(&id).ok();
    req.extensions_mut().insert(RequestId(id));
    req.extensions_mut().insert(RequestStart(Instant::now()));
    let mut res = next.call(req).await?;
    if let Some(v) = header {
        res.headers_mut().insert(X_REQUEST_ID, v);
    }
    Ok(res)
}

/// Builds the root span of each request (`request{request_id method path}`) and logs one line
/// when it ends, with status and latency.
pub struct RequestSpan;

impl RootSpanBuilder for RequestSpan {
    fn on_request_start(req: &ServiceRequest) -> Span {
        let ext = req.extensions();
        let id = ext.get::<RequestId>().map(|r| r.0.as_str()).unwrap_or("-");
        tracing::info_span!(
            "request",
            request_id = %id,
            method = %req.method(),
            path = %req.path(),
        )
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        let _entered = span.enter();
        match outcome {
            Ok(res) => {
                let status = res.status().as_u16();
                let latency_ms = res
                    .request()
                    .extensions()
                    .get::<RequestStart>()
                    .map(|s| s.0.elapsed().as_secs_f64() * 1000.0)
                    .unwrap_or(0.0);
                match res.response().error() {
                    Some(err) if status >= 500 => {
                        tracing::error!(status, latency_ms, error = %err, "request failed")
                    }
                    Some(err) => {
                        tracing::info!(status, latency_ms, error = %err, "request completed")
                    }
                    // Peer RPCs that succeed: a follower gets dozens a second even when idle.
                    None if res.request().path().starts_with("/raft/") => {
                        tracing::debug!(status, latency_ms, "request completed")
                    }
                    None => tracing::info!(status, latency_ms, "request completed"),
                }
            }
            Err(err) => {
                let status = err.as_response_error().status_code().as_u16();
                let latency_ms = err
                    .as_error::<HandlerPanic>()
                    .and_then(|p| p.started)
                    .map(|s| s.elapsed().as_secs_f64() * 1000.0)
                    .unwrap_or(0.0);
                tracing::error!(status, latency_ms, error = %err, "request failed")
            }
        }
    }
}

/// Catches a panic in any inner service or handler so that the node keeps serving. The request
/// is answered `500 {"ok":false,"message":"internal server error"}` (see [`HandlerPanic`]).
///
/// The request cannot be kept to build a response from (the router needs it unshared), so a
/// panic becomes an error that actix-web renders; that error carries what the log and the
/// `x-request-id` header need.
pub struct CatchPanic;

impl<S, B> Transform<S, ServiceRequest> for CatchPanic
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Transform = CatchPanicService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(CatchPanicService {
            service: Rc::new(service),
        }))
    }
}

/// The service made by [`CatchPanic`].
pub struct CatchPanicService<S> {
    service: Rc<S>,
}

impl<S, B> Service<ServiceRequest> for CatchPanicService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let (request_id, started) = {
            let ext = req.extensions();
            (
                ext.get::<RequestId>().map(|r| r.0.clone()),
                ext.get::<RequestStart>().map(|s| s.0),
            )
        };
        let service = Rc::clone(&self.service);
        // A handler may panic while its future is built or while it is polled: guard both.
        let built = std::panic::catch_unwind(AssertUnwindSafe(move || service.call(req)));
        async move {
            let outcome = match built {
                Ok(fut) => AssertUnwindSafe(fut).catch_unwind().await,
                Err(payload) => Err(payload),
            };
            outcome.map_err(|payload| {
                tracing::error!(
                    panic = %crate::telemetry::panic_message(payload.as_ref()),
                    "handler panicked; answering 500"
                );
                Error::from(HandlerPanic {
                    request_id,
                    started,
                })
            })?
        }
        .boxed_local()
    }
}

/// A handler panicked. Rendered as `500 {"ok":false,"message":"internal server error"}` with
/// the request's `x-request-id`.
#[derive(Debug)]
pub struct HandlerPanic {
    request_id: Option<String>,
    started: Option<Instant>,
}

impl std::fmt::Display for HandlerPanic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("handler panicked")
    }
}

impl ResponseError for HandlerPanic {
    fn status_code(&self) -> actix_web::http::StatusCode {
        actix_web::http::StatusCode::INTERNAL_SERVER_ERROR
    }

    fn error_response(&self) -> actix_web::HttpResponse {
        let mut res = ApiError::Internal("internal server error".into()).error_response();
        if let Some(v) = self
            .request_id
            .as_deref()
            .and_then(|id| HeaderValue::from_str(id).ok())
        {
            res.headers_mut().insert(X_REQUEST_ID, v);
        }
        res
    }
}
