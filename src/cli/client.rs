//! The endpoint-following HTTP client of `kvstore get|set|...`: one awc client (TLS with
//! `--cacert`, `Authorization: Bearer` with `--token`, `--timeout` on every request), and a
//! request loop over `--endpoints`.
//!
//! A request goes to the endpoints in order. Unreachable, timed out or answered 502/503/504 (no
//! leader, no quorum, overloaded, a proxy's gateway error): the next one, and a leader that an
//! answer names (a 307's `Location`, an `x-kvstore-leader` header) is tried before the rest.
//! Any other answer is the answer. A write (anything but GET/HEAD) is sent to another node only
//! when it surely was not applied: its connection failed, or a 503 says nothing was done. A
//! write that timed out, broke off after it was sent, or got a 503 saying it "may or may not"
//! have been applied, or a gateway error, ends the command (exit 3, saying so): sending it again
//! could apply it twice, or answer "not found" for a delete that was done. `set` and `delete`
//! send an `Idempotency-Key` ([`Client::send_write`]), named in that error: re-running the
//! command with `--idempotency-key` and that key answers the first outcome if the write was
//! applied, and applies it otherwise. When every endpoint failed, the error says what each one did (exit 3). The nodes
//! forward writes and linearizable reads to their leader themselves, so any live endpoint
//! usually answers. Answers are read up to [`MAX_ANSWER_BYTES`]; a request is never sent
//! twice to the same endpoint.

use std::time::Duration;

use actix_web::http::{header, Method};
use serde_json::Value;

use super::output::{print_json, server_message, CliError, Output};
use super::Global;
use crate::config::parse_base_url;

/// Largest answer read into memory (a value is at most the server's `--max-value-bytes`, 1 MiB
/// by default, and JSON escaping can grow it up to six times).
pub const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;

/// Most leader hints followed for one request.
const MAX_HINTS: usize = 3;

/// The client of one command run.
pub struct Client {
    endpoints: Vec<String>,
    http: awc::Client,
    timeout: Duration,
}

/// An answer that is not "try another node": the endpoint that gave it and the response, whose
/// body is still unread.
pub struct Reply {
    pub endpoint: String,
    pub res: awc::ClientResponse,
}

impl Reply {
    pub fn status(&self) -> u16 {
        self.res.status().as_u16()
    }

    /// The body, read up to [`MAX_ANSWER_BYTES`].
    pub async fn bytes(&mut self) -> Result<Vec<u8>, CliError> {
        let endpoint = self.endpoint.clone();
        self.res
            .body()
            .limit(MAX_ANSWER_BYTES)
            .await
            .map(|b| b.to_vec())
            .map_err(|e| CliError::Unavailable(format!("{endpoint}: reading the answer: {e}")))
    }

    /// The JSON answer of a success; otherwise the error it means (with `--output json`, the
    /// server's error body is printed to stdout too).
    pub async fn json(mut self, output: Output) -> Result<Value, CliError> {
        let status = self.status();
        let body = self.bytes().await?;
        if (200..300).contains(&status) {
            return serde_json::from_slice(&body).map_err(|e| {
                CliError::Failed(format!(
                    "{}: the answer is not JSON ({e}): {}",
                    self.endpoint,
                    server_message(status, &body)
                ))
            });
        }
        if output == Output::Json {
            if let Ok(v) = serde_json::from_slice::<Value>(&body) {
                print_json(&v);
            }
        }
        Err(CliError::from_status(
            status,
            &server_message(status, &body),
        ))
    }
}

impl Client {
    /// The client of `global`'s options: endpoints checked (a bad one is a usage error), the CA
    /// bundle loaded.
    pub fn new(global: &Global) -> Result<Client, CliError> {
        let endpoints = parse_endpoints(&global.endpoints)?;
        let tls = match &global.cacert {
            Some(path) => Some(
                crate::tls::client_config(path, None)
                    .map_err(|e| CliError::Usage(format!("--cacert: {e}")))?,
            ),
            None => None,
        };
        let timeout = global.timeout();
        let token = global.token.as_deref().filter(|t| !t.is_empty());
        let connect = timeout.min(Duration::from_secs(5));
        let http = crate::tls::awc_client_with_token(tls.as_ref(), connect, timeout, token);
        Ok(Client {
            endpoints,
            http,
            timeout,
        })
    }

    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The awc client itself (for requests to one node, e.g. a member's `/health`).
    pub fn http(&self) -> &awc::Client {
        &self.http
    }

    /// `method path_query` with an optional JSON body, through the endpoints (see the module
    /// header).
    pub async fn send(
        &self,
        method: Method,
        path_query: &str,
        body: Option<&Value>,
    ) -> Result<Reply, CliError> {
        self.send_keyed(method, path_query, body, None).await
    }

    /// A write with `Idempotency-Key: id`; an unknown outcome says how to retry it safely.
    pub async fn send_write(
        &self,
        method: Method,
        path_query: &str,
        body: Option<&Value>,
        id: &str,
    ) -> Result<Reply, CliError> {
        self.send_keyed(method, path_query, body, Some(id))
            .await
            .map_err(|e| match e {
                CliError::Unavailable(m) if m.contains("not sent again") => CliError::Unavailable(
                    format!("{m}; re-run with --idempotency-key {id} to retry it safely"),
                ),
                other => other,
            })
    }

    async fn send_keyed(
        &self,
        method: Method,
        path_query: &str,
        body: Option<&Value>,
        id: Option<&str>,
    ) -> Result<Reply, CliError> {
        let body = body.map(|b| b.to_string());
        let mut queue: std::collections::VecDeque<String> =
            self.endpoints.iter().cloned().collect();
        let mut tried: Vec<String> = Vec::new();
        let mut failures: Vec<String> = Vec::new();
        let mut hints = 0;
        let idempotent = matches!(method, Method::GET | Method::HEAD);
        while let Some(endpoint) = queue.pop_front() {
            if tried.contains(&endpoint) {
                continue;
            }
            tried.push(endpoint.clone());
            let mut req = self
                .http
                .request(method.clone(), format!("{endpoint}{path_query}"));
            if let Some(id) = id {
                req = req.insert_header(("idempotency-key", id));
            }
            let sent = match &body {
                Some(b) => {
                    req.insert_header((header::CONTENT_TYPE, "application/json"))
                        .send_body(b.clone())
                        .await
                }
                None => req.send().await,
            };
            let mut res = match sent {
                Ok(res) => res,
                Err(e) => {
                    let reached = !matches!(
                        e,
                        awc::error::SendRequestError::Connect(_)
                            | awc::error::SendRequestError::Url(_)
                    );
                    if !idempotent && reached {
                        return Err(CliError::Unavailable(format!(
                            "{endpoint}: {}; the request may or may not have been applied \
                             (not sent again)",
                            describe(&e)
                        )));
                    }
                    failures.push(format!("{endpoint}: {}", describe(&e)));
                    continue;
                }
            };
            let status = res.status().as_u16();
            let hint = leader_hint(&res);
            match status {
                307 | 308 | 502..=504 => {
                    if let Some(url) = hint.filter(|u| !tried.contains(u)) {
                        if hints < MAX_HINTS {
                            hints += 1;
                            queue.push_front(url);
                        }
                    }
                    if status >= 500 {
                        let b = res.body().limit(64 * 1024).await.unwrap_or_default();
                        let message = server_message(status, &b);
                        // Only a 503 from a node says whether the write was done; a gateway
                        // error (502, 504) does not.
                        let maybe_applied = status != 503 || message.contains("may or may not");
                        if !idempotent && maybe_applied {
                            return Err(CliError::Unavailable(format!(
                                "{endpoint}: {message} (not sent again)"
                            )));
                        }
                        failures.push(format!("{endpoint}: {message}"));
                    } else {
                        failures.push(format!("{endpoint}: redirected ({status})"));
                    }
                }
                _ => return Ok(Reply { endpoint, res }),
            }
        }
        Err(CliError::Unavailable(format!(
            "no endpoint answered: {}",
            failures.join("; ")
        )))
    }
}

/// The base URL an answer points to: a redirect's `Location`, or the leader a forwarded answer
/// names.
fn leader_hint(res: &awc::ClientResponse) -> Option<String> {
    let named = res
        .headers()
        .get(header::LOCATION)
        .or_else(|| res.headers().get("x-kvstore-leader"))?;
    let raw = named.to_str().ok()?;
    // A Location carries a path; keep scheme://host:port.
    let uri: awc::http::Uri = raw.parse().ok()?;
    let base = format!("{}://{}", uri.scheme_str()?, uri.authority()?);
    parse_base_url(&base).ok()
}

/// A send error in a few words.
fn describe(e: &awc::error::SendRequestError) -> String {
    use awc::error::SendRequestError as E;
    match e {
        E::Timeout => "timed out".into(),
        E::Connect(c) => format!("cannot connect ({c})"),
        other => other.to_string(),
    }
}

/// `--endpoints`, each `http(s)://host[:port]` (normalized); none is a usage error.
pub fn parse_endpoints(raw: &[String]) -> Result<Vec<String>, CliError> {
    let mut out = Vec::new();
    for e in raw.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
        let url = parse_base_url(e.trim_end_matches('/'))
            .map_err(|why| CliError::Usage(format!("--endpoints: {e:?}: {why}")))?;
        if !out.contains(&url) {
            out.push(url);
        }
    }
    if out.is_empty() {
        return Err(CliError::Usage("--endpoints: no endpoint given".into()));
    }
    Ok(out)
}

/// `s` percent-encoded for a path segment or a query value: every byte but the unreserved
/// ones (RFC 3986) as `%XX`.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_normalized_deduplicated_and_checked() {
        let got = parse_endpoints(&[
            "http://127.0.0.1:8080/".into(),
            " http://127.0.0.1:8080".into(),
            "https://example.com".into(),
            "".into(),
        ])
        .unwrap();
        assert_eq!(got, ["http://127.0.0.1:8080", "https://example.com:443"]);
        let e = parse_endpoints(&["127.0.0.1:8080".into()]).unwrap_err();
        assert_eq!(e.code(), 2, "{e}");
        assert_eq!(parse_endpoints(&[]).unwrap_err().code(), 2);
    }

    #[test]
    fn keys_and_ids_are_percent_encoded() {
        assert_eq!(encode("a b/c&d=é"), "a%20b%2Fc%26d%3D%C3%A9");
        assert_eq!(encode("n1-x_y.z~"), "n1-x_y.z~");
    }
}
