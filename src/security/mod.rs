//! Who may speak to a node, decided before anything it sends is parsed.
//!
//! - [`peer_auth`]: the cluster secret: an HMAC-SHA256 over every peer RPC (and over its
//!   answer), made and checked without I/O or a clock (the caller passes the time).
//!
//! Pure code: no sockets, no files, no clock. The HTTP guard that applies it is
//! `api::peer::guard`; the signing side is `transport::http`.

pub mod peer_auth;
