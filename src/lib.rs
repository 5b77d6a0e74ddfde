//! raft-kv-store: an HTTP key-value store that grows from one in-memory node into a Raft
//! cluster.
//!
//! Map of the crate (each module's header says what it owns and what it must never do):
//!
//! - [`config`]: flags and environment → a validated [`config::Config`].
//! - [`telemetry`]: tracing subscriber and panic hook.
//! - [`startup`]: start the actors and the HTTP server on a bound listener.
//! - [`api`]: routes, handlers, middleware and the one error → HTTP mapping.
//! - [`store`]: the pure [`store::KvState`] and the [`store::StoreActor`] that owns it.
//!
//! Requests flow `client → api handler → StoreActor` (messages, no locks). Raft slides in between
//! the handlers and the store in later milestones.

pub mod api;
pub mod config;
pub mod startup;
pub mod store;
pub mod telemetry;
