//! Building and running a node: start the actors, bind the listener, serve HTTP.
//!
//! [`Node::bind`] binds first (port 0 picks a free port, which tests use) and reports the real
//! address before serving, so nothing races for ports. This module wires parts together; it
//! holds no request logic.

use std::io;
use std::net::{SocketAddr, TcpListener};

use actix::Actor;
use actix_web::dev::{Server, ServerHandle};
use actix_web::HttpServer;

use crate::api::{self, AppState, NodeInfo};
use crate::config::Config;
use crate::store::StoreActor;

/// Could not start serving.
#[derive(Debug)]
pub struct StartError {
    pub addr: String,
    pub source: io::Error,
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot listen on {}: {}", self.addr, self.source)
    }
}

impl std::error::Error for StartError {}

/// A bound, running node. Await [`Node::server`] (or hold it) to keep it serving.
pub struct Node {
    /// The address actually bound (the real port when 0 was asked).
    pub addr: SocketAddr,
    /// The HTTP server future; it resolves when the server stops.
    pub server: Server,
}

impl Node {
    /// Bind `config.host:config.port`, start the store actor on the current actix system and
    /// build the HTTP server. Must run inside an actix system.
    pub fn bind(config: &Config) -> Result<Node, StartError> {
        let want = format!("{}:{}", config.host, config.port);
        let err = |source| StartError {
            addr: want.clone(),
            source,
        };
        let listener = TcpListener::bind(&want).map_err(err)?;
        let addr = listener.local_addr().map_err(err)?;
        let host = if addr.ip().is_unspecified() {
            "127.0.0.1".to_owned()
        } else {
            addr.ip().to_string()
        };
        let state = AppState {
            node: NodeInfo {
                id: config.node_id.clone(),
                url: format!("http://{host}:{}", addr.port()),
            },
            store: StoreActor::new().start(),
            limits: config.limits,
        };
        let server = HttpServer::new(move || api::app(state.clone()))
            .workers(config.workers)
            .shutdown_timeout(config.shutdown_timeout.as_secs())
            .listen(listener)
            .map_err(err)?
            .run();
        Ok(Node { addr, server })
    }

    /// A handle that can stop the server.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }
}
