//! The recorded client workloads of `kvstore check`: concurrent clients send requests to
//! random nodes of a running cluster and record each operation as they saw it ([`Op`]).
//!
//! Two workloads ([`WorkloadKind`]): `mixed` (set/get/delete of a few keys, the default) and
//! `cas` (counters incremented by read → compare-and-set with `ifModIndex` → read again on a
//! 409; the final value of each counter must equal its acknowledged increments,
//! [`counter_summary`]).
//!
//! I/O: HTTP through awc, one client per simulated client, on the caller's actix runtime. It
//! never interprets the history; [`super::linearizability`] does. A definite answer (200, a 404
//! for get/delete, a 409 "precondition failed") is recorded as such. A definite failure is
//! recorded as failed (left out of the check): a refused connection (nothing was sent), or a
//! 503 whose message does not say the write "may or may not have been applied" (the API says
//! so whenever the outcome is unknown). Anything else (timeouts, lost connections, 500s, those
//! 503s) is an unknown outcome, which the checker allows to have happened or not.
//!
//! Reads use the default consistency (`linearizable`); when the cluster accepts
//! `consistency=lease` ([`probe_features`]: a 400 says it does not), a quarter of them ask for
//! it explicitly. Both must be linearizable.
//!
//! Every write carries an `Idempotency-Key` unique to the operation. When the cluster honours
//! them ([`probe_features`]), a write whose outcome is unknown is sent again with the same key,
//! to random nodes, until a definite answer or its deadline: the server answers the first
//! outcome and applies nothing twice, so it stays one operation (called at the first attempt,
//! returned at the definite answer), counted in `retries`.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

use super::history::{Op, OpInput, OpOutput};

/// Which operations the clients send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum WorkloadKind {
    /// set/get/delete of the keys, 4:4:2.
    #[default]
    Mixed,
    /// Counters (one per key) incremented by compare-and-set: read (value, modIndex), set
    /// value + 1 with `ifModIndex`, read again on a 409.
    Cas,
}

impl WorkloadKind {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Mixed => "mixed",
            WorkloadKind::Cas => "cas",
        }
    }
}

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
    pub kind: WorkloadKind,
    /// The cluster replays a write sent again with the same `Idempotency-Key`
    /// ([`probe_features`]): writes of unknown outcome are retried with it.
    pub idempotent: bool,
    /// The cluster accepts `consistency=lease` on reads: a quarter of the reads use it.
    pub lease_reads: bool,
    /// How long after its first attempt a write of unknown outcome is still retried.
    pub retry_for: Duration,
}

/// Counters the progress display reads while clients run (one thread: plain cells).
#[derive(Debug, Default)]
pub struct Counters {
    pub ops: Cell<u64>,
    pub unknown: Cell<u64>,
    pub failed: Cell<u64>,
    /// Reads sent with `consistency=lease`.
    pub lease: Cell<u64>,
}

fn bump(c: &Cell<u64>) {
    c.set(c.get() + 1);
}

/// One client's state while it runs.
struct ClientRun {
    client: awc::Client,
    rng: SmallRng,
    id: u64,
    start: Instant,
    ops: Vec<Op>,
    /// Operations sent so far (numbers the idempotency keys and values).
    n: u64,
    counters: Rc<Counters>,
    gap: Option<Duration>,
    next_at: Instant,
}

impl ClientRun {
    /// Wait for this client's next slot under the rate limit.
    async fn pace(&mut self) {
        if let Some(gap) = self.gap {
            let now = Instant::now();
            if self.next_at > now {
                actix_web::rt::time::sleep(self.next_at - now).await;
            }
            // A client that fell behind (a slow answer) does not catch up in a burst.
            self.next_at = self.next_at.max(Instant::now()) + gap;
        }
    }

    fn record(&mut self, op: Op) -> &Op {
        bump(&self.counters.ops);
        if op.output.unknown {
            bump(&self.counters.unknown);
        }
        if op.output.failed {
            bump(&self.counters.failed);
        }
        self.ops.push(op);
        &self.ops[self.ops.len() - 1]
    }
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
        let mut c = ClientRun {
            client: super::http_client(self.request_timeout, self.token.as_deref()),
            rng: SmallRng::seed_from_u64(self.seed.wrapping_mul(1_000_003).wrapping_add(id)),
            id,
            start,
            ops: Vec::new(),
            n: 0,
            counters,
            // Each client keeps its share of the rate.
            gap: (self.rate > 0)
                .then(|| Duration::from_secs_f64(self.clients as f64 / self.rate as f64)),
            next_at: Instant::now(),
        };
        while Instant::now() < until {
            match self.kind {
                WorkloadKind::Mixed => self.mixed_op(&mut c).await,
                WorkloadKind::Cas => self.increment(&mut c).await,
            }
        }
        c.ops
    }

    /// One random set/get/delete.
    async fn mixed_op(&self, c: &mut ClientRun) {
        c.pace().await;
        c.n += 1;
        let key = self.key(c.rng.gen_range(0..self.keys));
        let input = match c.rng.gen_range(0..10) {
            0..=3 => OpInput::set(key, format!("c{}-{}", c.id, c.n)),
            4..=7 => OpInput::Get { key },
            _ => OpInput::delete(key),
        };
        let op = self.perform_op(c, input).await;
        c.record(op);
    }

    /// One try at incrementing a random counter: read it, then compare-and-set value + 1 at
    /// the modIndex read (both recorded). A 409 or a failure just ends the try.
    async fn increment(&self, c: &mut ClientRun) {
        c.pace().await;
        c.n += 1;
        let key = self.key(c.rng.gen_range(0..self.keys));
        let read = self.perform_op(c, OpInput::Get { key: key.clone() }).await;
        let out = c.record(read).output.clone();
        if out.unknown || out.failed {
            // Let a node that is down or electing breathe.
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
            return;
        }
        let (value, mod_index) = match (&out.value, out.index) {
            (None, _) => (0, 0),
            (Some(v), Some(m)) => match v.parse::<u64>() {
                Ok(v) => (v, m),
                Err(_) => return,
            },
            // No modIndex: the server has no revisions (probed before; cannot happen).
            (Some(_), None) => return,
        };
        c.n += 1;
        let input = OpInput::Set {
            key,
            value: (value + 1).to_string(),
            if_mod_index: Some(mod_index),
            if_value: None,
        };
        let op = self.perform_op(c, input).await;
        c.record(op);
    }

    /// Send `input` to a random node; a write carries an `Idempotency-Key` unique to it and,
    /// when the cluster honours them, is sent again with it while its outcome is unknown.
    async fn perform_op(&self, c: &mut ClientRun, input: OpInput) -> Op {
        let call = c.start.elapsed().as_nanos() as i64;
        let idem = input
            .is_write()
            .then(|| format!("{}w{}-{}", self.key_prefix, c.id, c.n));
        let base = &self.nodes[c.rng.gen_range(0..self.nodes.len())];
        let lease = !input.is_write() && self.lease_reads && c.rng.gen_bool(0.25);
        let consistency = lease.then_some("lease");
        if lease {
            bump(&c.counters.lease);
        }
        let (mut output, mut settled) =
            attempt(&c.client, base, &input, idem.as_deref(), consistency).await;
        let mut retries = 0;
        if output.unknown && !settled && self.idempotent && idem.is_some() {
            let deadline = Instant::now() + self.retry_for;
            let mut backoff = Duration::from_millis(50);
            while !settled && Instant::now() + backoff < deadline {
                actix_web::rt::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_millis(500));
                retries += 1;
                let base = &self.nodes[c.rng.gen_range(0..self.nodes.len())];
                let (again, stop) = attempt(&c.client, base, &input, idem.as_deref(), None).await;
                settled = stop;
                // This attempt failing for certain says nothing of the first one: go on.
                if !again.unknown && !again.failed {
                    output = again;
                    break;
                }
            }
        }
        output.retries = retries;
        let ret = if output.unknown || output.failed {
            i64::MAX
        } else {
            c.start.elapsed().as_nanos() as i64
        };
        Op {
            client_id: c.id,
            input,
            call,
            output,
            ret,
        }
    }
}

/// What the cluster supports, found by [`probe_features`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Features {
    /// Writes answer their `index` (and reads their `modIndex`): compare-and-set exists.
    pub revisions: bool,
    /// A write sent again with the same `Idempotency-Key` is answered as a replay.
    pub idempotency: bool,
    /// A read with `consistency=lease` is accepted (not a 400).
    pub lease: bool,
}

/// Ask the cluster what it supports: the same set, with the same `Idempotency-Key`, twice (on
/// `key`, outside the checked keys); the first answer must carry `index`, the second
/// `x-kvstore-idempotent-replay: true`. Tries the nodes in turn for up to `within`.
pub async fn probe_features(
    client: &awc::Client,
    nodes: &[String],
    key: &str,
    within: Duration,
) -> Result<Features, String> {
    let deadline = Instant::now() + within;
    let body = serde_json::json!({"key": key, "value": "probe"});
    let idem = format!("{key}-idem");
    let mut last = String::from("no node answered");
    for attempt in 0usize.. {
        if Instant::now() > deadline {
            break;
        }
        let base = &nodes[attempt % nodes.len()];
        let mut answers = Vec::new();
        for _ in 0..2 {
            match client
                .put(format!("{base}/set"))
                .insert_header(("Idempotency-Key", idem.as_str()))
                .send_json(&body)
                .await
            {
                Ok(mut r) if r.status() == 200 => {
                    let replay = r
                        .headers()
                        .get("x-kvstore-idempotent-replay")
                        .is_some_and(|v| v.as_bytes() == b"true");
                    let b = r.body().await.map(|b| b.to_vec()).unwrap_or_default();
                    let index = serde_json::from_slice::<Value>(&b)
                        .ok()
                        .and_then(|v| v["index"].as_u64());
                    answers.push((index, replay));
                }
                Ok(r) => {
                    last = format!("{base}/set answered {}", r.status());
                    break;
                }
                Err(e) => {
                    last = format!("{base}/set: {e}");
                    break;
                }
            }
        }
        if let [(index, _), (_, replay)] = answers[..] {
            let lease = with_query(
                client.get(format!("{base}/get")),
                &[("key", key.to_owned()), ("consistency", "lease".to_owned())],
            )
            .await;
            match lease {
                Ok(r) if r.status() != 400 => {}
                Ok(_) => {
                    return Ok(Features {
                        revisions: index.is_some(),
                        idempotency: replay,
                        lease: false,
                    })
                }
                Err(e) => {
                    last = format!("{base}/get: {e}");
                    continue;
                }
            }
            return Ok(Features {
                revisions: index.is_some(),
                idempotency: replay,
                lease: true,
            });
        }
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    }
    Err(format!("could not probe the cluster's features: {last}"))
}

/// Send `req` with these query parameters (percent-encoded by awc).
async fn with_query(
    req: awc::ClientRequest,
    query: &[(&str, String)],
) -> Result<awc::ClientResponse, awc::error::SendRequestError> {
    match req.query(&query) {
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

/// The JSON body of an answer (`Null` if unreadable).
async fn json_body(r: &mut awc::ClientResponse) -> Value {
    match r.body().await {
        Ok(b) => serde_json::from_slice(&b).unwrap_or(Value::Null),
        Err(_) => Value::Null,
    }
}

/// A write's definite answer: `ok` for a 200 (with its `index` if given), a 409 with the
/// reported `modIndex`, or what the failure tells.
async fn write_answer(
    res: Result<awc::ClientResponse, awc::error::SendRequestError>,
    ok: OpOutput,
) -> (OpOutput, bool) {
    match res {
        Ok(mut r) if r.status() == 200 => {
            let index = json_body(&mut r).await["index"].as_u64();
            (OpOutput { index, ..ok }, true)
        }
        Ok(mut r) if r.status() == 409 => match json_body(&mut r).await["modIndex"].as_u64() {
            Some(m) => (OpOutput::conflict(m), true),
            None => (OpOutput::unknown(), false),
        },
        // The key was reused with another request: a bug; retrying cannot help.
        Ok(r) if r.status() == 422 => (OpOutput::unknown(), true),
        other => (write_failure(other).await, false),
    }
}

/// Send `input` once to `base` (a write with `Idempotency-Key: idem` if given, a read with
/// `consistency` if given). Returns what it saw, and whether sending it again cannot help (a
/// definite answer or a refusal of the key).
async fn attempt(
    client: &awc::Client,
    base: &str,
    input: &OpInput,
    idem: Option<&str>,
    consistency: Option<&str>,
) -> (OpOutput, bool) {
    let with_key = |req: awc::ClientRequest| match idem {
        Some(k) => req.insert_header(("Idempotency-Key", k)),
        None => req,
    };
    match input {
        OpInput::Set {
            key,
            value,
            if_mod_index,
            if_value,
        } => {
            let mut body = serde_json::json!({"key": key, "value": value});
            if let Some(n) = if_mod_index {
                body["ifModIndex"] = (*n).into();
            }
            if let Some(v) = if_value {
                body["ifValue"] = v.as_str().into();
            }
            let res = with_key(client.put(format!("{base}/set")))
                .send_json(&body)
                .await;
            write_answer(res, OpOutput::stored()).await
        }
        OpInput::Get { key } => {
            let mut query = vec![("key", key.clone())];
            if let Some(c) = consistency {
                query.push(("consistency", c.to_owned()));
            }
            let res = with_query(client.get(format!("{base}/get")), &query).await;
            let output = match res {
                Ok(mut r) if r.status() == 200 => {
                    let v = json_body(&mut r).await;
                    match v["value"].as_str() {
                        Some(s) => OpOutput {
                            index: v["modIndex"].as_u64(),
                            ..OpOutput::read(Some(s.to_owned()))
                        },
                        None => OpOutput::unknown(),
                    }
                }
                Ok(r) if r.status() == 404 => OpOutput::read(None),
                _ => OpOutput::unknown(),
            };
            (output, true)
        }
        OpInput::Delete { key, if_mod_index } => {
            let mut query = vec![("key", key.clone())];
            if let Some(n) = if_mod_index {
                query.push(("ifModIndex", n.to_string()));
            }
            let res = with_query(with_key(client.delete(format!("{base}/delete"))), &query).await;
            match res {
                Ok(r) if r.status() == 404 => (OpOutput::deleted(false), true),
                other => write_answer(other, OpOutput::deleted(true)).await,
            }
        }
    }
}

/// Send one operation to `base` once (no idempotency key, no retry) and record it as client
/// `client_id`'s.
pub async fn perform(
    client: &awc::Client,
    base: &str,
    client_id: u64,
    input: OpInput,
    start: Instant,
) -> Op {
    let call = start.elapsed().as_nanos() as i64;
    let (output, _) = attempt(client, base, &input, None, None).await;
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

/// The counters of a `cas` run, added up from its history.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CounterSummary {
    /// Compare-and-set increments acknowledged (200).
    pub acked: u64,
    /// Increments whose outcome stayed unknown (they may or may not have counted).
    pub unknown: u64,
    /// Sum of the counters' final values (a counter never read counts 0 and is in `unread`).
    pub value: u64,
    /// Counters whose final value is outside [acked, acked + unknown]: (key, value, acked,
    /// unknown).
    pub wrong: Vec<(String, u64, u64, u64)>,
    /// Counters with no successful final read.
    pub unread: Vec<String>,
}

/// Add up a `cas` history: per counter key, its acknowledged and unknown increments, and its
/// final value (the last successful read by `final_client`, whose reads come after every
/// increment). Pure.
pub fn counter_summary(ops: &[Op], keys: &[String], final_client: u64) -> CounterSummary {
    let mut per: BTreeMap<&str, (u64, u64, Option<u64>)> =
        keys.iter().map(|k| (k.as_str(), (0, 0, None))).collect();
    for op in ops {
        let Some(entry) = per.get_mut(op.input.key()) else {
            continue;
        };
        match &op.input {
            OpInput::Set { .. } if op.output.unknown => entry.1 += 1,
            OpInput::Set { .. } if !op.output.failed && op.output.precondition_failed.is_none() => {
                entry.0 += 1
            }
            OpInput::Get { .. } if op.client_id == final_client && op.succeeded() => {
                entry.2 = Some(
                    op.output
                        .value
                        .as_deref()
                        .map_or(Some(0), |v| v.parse().ok())
                        .unwrap_or(u64::MAX),
                );
            }
            _ => {}
        }
    }
    let mut s = CounterSummary::default();
    for (key, (acked, unknown, value)) in per {
        s.acked += acked;
        s.unknown += unknown;
        match value {
            None => s.unread.push(key.to_owned()),
            Some(v) => {
                s.value = s.value.saturating_add(v);
                if v < acked || v > acked + unknown {
                    s.wrong.push((key.to_owned(), v, acked, unknown));
                }
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(client: u64, input: OpInput, output: OpOutput) -> Op {
        Op {
            client_id: client,
            input,
            call: 0,
            output,
            ret: 1,
        }
    }

    fn cas(key: &str, v: u64, at: u64) -> OpInput {
        OpInput::Set {
            key: key.into(),
            value: v.to_string(),
            if_mod_index: Some(at),
            if_value: None,
        }
    }

    #[test]
    fn counters_add_up_acknowledged_unknown_and_refused_increments() {
        let keys = vec!["a".to_owned(), "b".to_owned(), "c".to_owned()];
        let get = |k: &str| OpInput::Get { key: k.into() };
        let ops = vec![
            op(0, cas("a", 1, 0), OpOutput::stored_at(3)),
            op(1, cas("a", 1, 0), OpOutput::conflict(3)),
            op(1, cas("a", 2, 3), OpOutput::stored_at(5)),
            op(0, cas("a", 3, 5), OpOutput::unknown()),
            op(0, cas("a", 3, 5), OpOutput::failed()),
            op(0, get("a"), OpOutput::read_at("2", 5)),
            op(9, get("a"), OpOutput::read_at("3", 7)),
            op(0, cas("b", 1, 0), OpOutput::stored_at(4)),
            op(9, get("b"), OpOutput::read(None)),
        ];
        let s = counter_summary(&ops, &keys, 9);
        assert_eq!((s.acked, s.unknown, s.value), (3, 1, 3));
        assert_eq!(
            s.wrong,
            vec![("b".to_owned(), 0, 1, 0)],
            "an acked increment was lost"
        );
        assert_eq!(s.unread, vec!["c".to_owned()]);
    }
}
