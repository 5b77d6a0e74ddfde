//! The recorded client workload of `kvstore check`: concurrent clients send set/get/delete to
//! random nodes of a running cluster and record each operation as they saw it ([`Op`]).
//!
//! I/O: HTTP through awc, one client per simulated client, on the caller's actix runtime. It
//! never interprets the history; [`super::linearizability`] does. A definite answer (200, or a
//! 404 for get/delete) is recorded as such. A definite failure is recorded as failed (left out
//! of the check): a refused connection (nothing was sent), or a 503 whose message does not say
//! the write "may or may not have been applied" (the API says so whenever the outcome is
//! unknown). Anything else (timeouts, lost connections, 500s, those 503s) is an unknown
//! outcome, which the checker allows to have happened or not.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

use super::history::{Op, OpInput, OpOutput};

/// What the clients do.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Base URLs of the nodes; each operation goes to a random one.
    pub nodes: Vec<String>,
    pub clients: usize,
    /// Keys are `{prefix}{0..keys}`: a fresh prefix per run, so every key starts absent.
    pub keys: usize,
    pub key_prefix: String,
    /// Most operations per second over all clients (0: as fast as answers come).
    pub rate: u64,
    pub request_timeout: Duration,
    pub seed: u64,
    /// A client token (`kvstore check --token`), sent as `Authorization: Bearer` on every
    /// request.
    pub token: Option<String>,
}

/// Counters the progress display reads while clients run (one thread: plain cells).
#[derive(Debug, Default)]
pub struct Counters {
    pub ops: Cell<u64>,
    pub unknown: Cell<u64>,
    pub failed: Cell<u64>,
}

fn bump(c: &Cell<u64>) {
    c.set(c.get() + 1);
}

impl Workload {
    /// The key numbered `i`.
    pub fn key(&self, i: usize) -> String {
        format!("{}{i}", self.key_prefix)
    }

    /// Run client `id` from `start` until `until`; returns its operations.
    pub async fn run_client(
        &self,
        id: u64,
        start: Instant,
        until: Instant,
        counters: Rc<Counters>,
    ) -> Vec<Op> {
        let client = super::http_client(self.request_timeout, self.token.as_deref());
        let mut rng = SmallRng::seed_from_u64(self.seed.wrapping_mul(1_000_003).wrapping_add(id));
        // Each client keeps its share of the rate.
        let gap = (self.rate > 0)
            .then(|| Duration::from_secs_f64(self.clients as f64 / self.rate as f64));
        let mut ops = Vec::new();
        let mut n = 0u64;
        let mut next_at = Instant::now();
        while Instant::now() < until {
            if let Some(gap) = gap {
                let now = Instant::now();
                if next_at > now {
                    actix_web::rt::time::sleep(next_at - now).await;
                }
                // A client that fell behind (a slow answer) does not catch up in a burst.
                next_at = next_at.max(Instant::now()) + gap;
            }
            n += 1;
            let base = &self.nodes[rng.gen_range(0..self.nodes.len())];
            let key = self.key(rng.gen_range(0..self.keys));
            let input = match rng.gen_range(0..10) {
                0..=3 => OpInput::Set {
                    key,
                    value: format!("c{id}-{n}"),
                },
                4..=7 => OpInput::Get { key },
                _ => OpInput::Delete { key },
            };
            let op = perform(&client, base, id, input, start).await;
            bump(&counters.ops);
            if op.output.unknown {
                bump(&counters.unknown);
            }
            if op.output.failed {
                bump(&counters.failed);
            }
            ops.push(op);
        }
        ops
    }
}

/// Send `req` with `?key=` (percent-encoded by awc).
async fn keyed(
    req: awc::ClientRequest,
    key: &str,
) -> Result<awc::ClientResponse, awc::error::SendRequestError> {
    match req.query(&[("key", key)]) {
        Ok(req) => req.send().await,
        Err(e) => Err(awc::error::SendRequestError::Custom(
            Box::new(e),
            Box::new("encoding the key"),
        )),
    }
}

/// What a write that was not acknowledged tells: failed for certain, or unknown.
async fn write_failure(res: Result<awc::ClientResponse, awc::error::SendRequestError>) -> OpOutput {
    use awc::error::{ConnectError, SendRequestError};
    match res {
        // Nothing was sent: no effect.
        Err(SendRequestError::Connect(ConnectError::Io(_)))
        | Err(SendRequestError::Connect(ConnectError::Timeout)) => OpOutput::failed(),
        Ok(mut r) if r.status() == 503 => {
            let body = r.body().await.map(|b| b.to_vec()).unwrap_or_default();
            let message = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v["message"].as_str().map(str::to_owned));
            match message {
                Some(m) if !m.contains("may or may not") => OpOutput::failed(),
                _ => OpOutput::unknown(),
            }
        }
        _ => OpOutput::unknown(),
    }
}

/// Send one operation to `base` and record it as client `client_id`'s.
pub async fn perform(
    client: &awc::Client,
    base: &str,
    client_id: u64,
    input: OpInput,
    start: Instant,
) -> Op {
    let call = start.elapsed().as_nanos() as i64;
    let output = match &input {
        OpInput::Set { key, value } => {
            let res = client
                .put(format!("{base}/set"))
                .send_json(&serde_json::json!({"key": key, "value": value}))
                .await;
            match res {
                Ok(r) if r.status() == 200 => OpOutput::stored(),
                other => write_failure(other).await,
            }
        }
        OpInput::Get { key } => match keyed(client.get(format!("{base}/get")), key).await {
            Ok(mut r) if r.status() == 200 => match r.body().await {
                Ok(b) => match serde_json::from_slice::<Value>(&b) {
                    Ok(v) => match v["value"].as_str() {
                        Some(s) => OpOutput::read(Some(s.to_owned())),
                        None => OpOutput::unknown(),
                    },
                    Err(_) => OpOutput::unknown(),
                },
                Err(_) => OpOutput::unknown(),
            },
            Ok(r) if r.status() == 404 => OpOutput::read(None),
            _ => OpOutput::unknown(),
        },
        OpInput::Delete { key } => {
            match keyed(client.delete(format!("{base}/delete")), key).await {
                Ok(r) if r.status() == 200 => OpOutput::deleted(true),
                Ok(r) if r.status() == 404 => OpOutput::deleted(false),
                other => write_failure(other).await,
            }
        }
    };
    let ret = if output.unknown || output.failed {
        i64::MAX
    } else {
        start.elapsed().as_nanos() as i64
    };
    Op {
        client_id,
        input,
        call,
        output,
        ret,
    }
}
