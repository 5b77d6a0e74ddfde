//! The cluster secret and the proof a peer RPC carries of it.
//!
//! With a secret, every Raft RPC carries `x-kvstore-auth: t=<unix ms>,sha=<hex>,mac=<hex>`:
//! `sha` is the SHA-256 of the body, `mac` is HMAC-SHA256 under the secret over a canonical
//! string of a version tag, the cluster id the sender claims, the receiver's host (the URL's
//! authority, as in `Host`), the method, the path with its query string, the sender's URL, the
//! time and `sha`. The receiver checks the header in constant time, with a bounded clock skew,
//! **before it reads the body** (so nobody without the secret can make it buffer a byte), then
//! hashes the body as it arrives and refuses it unless it matches `sha`. Every answer carries
//! `x-kvstore-auth: mac=<hex>` over the request's mac, the status and the digest of the
//! answer's body, which the sender checks before it believes the answer (so a forged "vote
//! granted" cannot make a leader).
//!
//! A replay inside the skew window delivers, to the node it was meant for, a message the
//! cluster already received: Raft is safe under duplicated and delayed messages (the fault
//! layer tests exactly that), so the window bounds how stale a replay can be, not whether it is
//! safe.
//!
//! [`PeerKeys`] holds one or more secrets: the first signs, every one is accepted, so a secret
//! can be rotated one node at a time (SECURITY.md). It never prints a secret, not even in
//! `Debug`.
//!
//! Pure: no I/O, no clock.

use std::fmt;

use ring::{digest, hmac};

/// The header carrying the proof, on requests and on answers.
pub const AUTH_HEADER: &str = "x-kvstore-auth";

/// Largest difference accepted between the sender's clock and the receiver's, in milliseconds.
pub const MAX_CLOCK_SKEW_MS: u64 = 120_000;

/// Shortest secret accepted, in bytes.
pub const MIN_SECRET_BYTES: usize = 16;

/// Most secrets accepted at once (the signing one and the ones still accepted in a rotation).
pub const MAX_SECRETS: usize = 4;

const REQUEST_TAG: &str = "kvstore-peer-request-v1";
const ANSWER_TAG: &str = "kvstore-peer-answer-v1";

/// The secrets of a cluster, ready to sign and check. The first signs; all are accepted.
#[derive(Clone)]
pub struct PeerKeys {
    keys: Vec<hmac::Key>,
}

impl fmt::Debug for PeerKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerKeys({} secret(s), redacted)", self.keys.len())
    }
}

/// Why a secret could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretError(pub String);

impl fmt::Display for SecretError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SecretError {}

/// Why a proof was refused. `Display` is what the 401 says: enough to fix a configuration
/// (a missing header, a clock off by minutes), never anything about the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    Missing,
    Malformed,
    Skew {
        signed_ms: u64,
        now_ms: u64,
    },
    BadMac,
    /// The body is not the one the proof was made for.
    BodyMismatch,
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthError::Missing => write!(
                f,
                "unauthorized: a Raft RPC to this node must be signed with the cluster secret \
                 ({AUTH_HEADER} header missing)"
            ),
            AuthError::Malformed => write!(f, "unauthorized: malformed {AUTH_HEADER} header"),
            AuthError::Skew { signed_ms, now_ms } => write!(
                f,
                "unauthorized: the request was signed at {signed_ms} ms (unix), this node's \
                 clock says {now_ms}: more than {} s apart (check the clocks)",
                MAX_CLOCK_SKEW_MS / 1000
            ),
            AuthError::BodyMismatch => write!(
                f,
                "unauthorized: the body does not match the digest it was signed with"
            ),
            AuthError::BadMac => write!(
                f,
                "unauthorized: the signature does not match (a different cluster secret, or \
                 the request was altered)"
            ),
        }
    }
}

impl std::error::Error for AuthError {}

/// What a request's proof covers, besides the body.
#[derive(Debug, Clone, Copy)]
pub struct RequestParts<'a> {
    /// The cluster id the sender claims (`x-kvstore-cluster`).
    pub cluster: &'a str,
    /// The receiver's host and port, as the request names it (`Host`).
    pub host: &'a str,
    pub method: &'a str,
    /// Path and query string, exactly as sent.
    pub path_and_query: &'a str,
    /// The sender's URL (`x-kvstore-from`), or empty.
    pub from: &'a str,
}

/// A request's proof, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    pub signed_ms: u64,
    /// The SHA-256 of the body, as signed.
    pub body_sha: Vec<u8>,
    pub mac: Vec<u8>,
}

/// The SHA-256 of `body` (what a proof's `body_sha` must equal).
pub fn body_digest(body: &[u8]) -> Vec<u8> {
    digest::digest(&digest::SHA256, body).as_ref().to_vec()
}

impl PeerKeys {
    /// Secrets from text: whitespace-separated, the first signs. Each at least
    /// [`MIN_SECRET_BYTES`], at most [`MAX_SECRETS`].
    pub fn from_text(text: &str) -> Result<PeerKeys, SecretError> {
        let secrets: Vec<&str> = text.split_whitespace().collect();
        if secrets.is_empty() {
            return Err(SecretError("the cluster secret is empty".into()));
        }
        if secrets.len() > MAX_SECRETS {
            return Err(SecretError(format!(
                "{} cluster secrets given; at most {MAX_SECRETS} (the one that signs, then the \
                 ones still accepted during a rotation)",
                secrets.len()
            )));
        }
        for (i, s) in secrets.iter().enumerate() {
            if s.len() < MIN_SECRET_BYTES {
                return Err(SecretError(format!(
                    "cluster secret #{} is {} bytes; at least {MIN_SECRET_BYTES} are needed \
                     (e.g. `openssl rand -hex 32`)",
                    i + 1,
                    s.len()
                )));
            }
        }
        Ok(PeerKeys {
            keys: secrets
                .iter()
                .map(|s| hmac::Key::new(hmac::HMAC_SHA256, s.as_bytes()))
                .collect(),
        })
    }

    /// How many secrets are accepted.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Never true (a `PeerKeys` holds at least one secret).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The header value proving `parts` + `body` at `now_ms`, and the mac (to check the answer).
    pub fn sign_request(
        &self,
        parts: RequestParts<'_>,
        now_ms: u64,
        body: &[u8],
    ) -> (String, Vec<u8>) {
        let sha = hex(&body_digest(body));
        let msg = request_string(parts, now_ms, &sha);
        let mac = hmac::sign(&self.keys[0], msg.as_bytes()).as_ref().to_vec();
        (format!("t={now_ms},sha={sha},mac={}", hex(&mac)), mac)
    }

    /// Check a request's header value against `parts` + `body` at `now_ms`; the proof (its mac
    /// binds the answer) when it holds. What the HTTP guard does in three steps
    /// ([`PeerKeys::precheck`], [`PeerKeys::verify`], then the body against `body_sha`).
    pub fn verify_request(
        &self,
        header: Option<&[u8]>,
        parts: RequestParts<'_>,
        now_ms: u64,
        body: &[u8],
    ) -> Result<Proof, AuthError> {
        let proof = self.verify(Self::precheck(header, now_ms)?, parts)?;
        if body_digest(body) != proof.body_sha {
            return Err(AuthError::BodyMismatch);
        }
        Ok(proof)
    }

    /// What can be checked without the secret: the header is there, well formed, and signed
    /// within the clock-skew window of `now_ms`.
    pub fn precheck(header: Option<&[u8]>, now_ms: u64) -> Result<Proof, AuthError> {
        let proof = parse_request_header(header.ok_or(AuthError::Missing)?)?;
        if proof.signed_ms.abs_diff(now_ms) > MAX_CLOCK_SKEW_MS {
            return Err(AuthError::Skew {
                signed_ms: proof.signed_ms,
                now_ms,
            });
        }
        Ok(proof)
    }

    /// Check a prechecked proof's mac against `parts` in constant time, before any of the body
    /// is read; the body must then hash to `proof.body_sha`.
    pub fn verify(&self, proof: Proof, parts: RequestParts<'_>) -> Result<Proof, AuthError> {
        let msg = request_string(parts, proof.signed_ms, &hex(&proof.body_sha));
        if self
            .keys
            .iter()
            .any(|k| hmac::verify(k, msg.as_bytes(), &proof.mac).is_ok())
        {
            Ok(proof)
        } else {
            Err(AuthError::BadMac)
        }
    }

    /// The header value for an answer with `status` and `body` to the request whose mac is
    /// `request_mac`.
    pub fn sign_answer(&self, request_mac: &[u8], status: u16, body: &[u8]) -> String {
        let msg = answer_string(request_mac, status, body);
        format!(
            "mac={}",
            hex(hmac::sign(&self.keys[0], msg.as_bytes()).as_ref())
        )
    }

    /// Check an answer's header value.
    pub fn verify_answer(
        &self,
        header: Option<&[u8]>,
        request_mac: &[u8],
        status: u16,
        body: &[u8],
    ) -> Result<(), AuthError> {
        let header = std::str::from_utf8(header.ok_or(AuthError::Missing)?)
            .map_err(|_| AuthError::Malformed)?;
        let mac = header
            .strip_prefix("mac=")
            .and_then(unhex)
            .ok_or(AuthError::Malformed)?;
        let msg = answer_string(request_mac, status, body);
        if self
            .keys
            .iter()
            .any(|k| hmac::verify(k, msg.as_bytes(), &mac).is_ok())
        {
            Ok(())
        } else {
            Err(AuthError::BadMac)
        }
    }
}

fn request_string(parts: RequestParts<'_>, t: u64, body_sha_hex: &str) -> String {
    // Fields are separated by newlines; none may contain one (headers cannot, the path is
    // percent-encoded), so the string is unambiguous.
    format!(
        "{REQUEST_TAG}\n{}\n{}\n{}\n{}\n{}\n{t}\n{body_sha_hex}",
        parts.cluster, parts.host, parts.method, parts.path_and_query, parts.from,
    )
}

fn answer_string(request_mac: &[u8], status: u16, body: &[u8]) -> String {
    format!(
        "{ANSWER_TAG}\n{}\n{status}\n{}",
        hex(request_mac),
        hex(digest::digest(&digest::SHA256, body).as_ref())
    )
}

fn parse_request_header(raw: &[u8]) -> Result<Proof, AuthError> {
    let s = std::str::from_utf8(raw).map_err(|_| AuthError::Malformed)?;
    let mut fields = s.split(',');
    let (Some(t), Some(sha), Some(mac), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(AuthError::Malformed);
    };
    let signed_ms = t
        .strip_prefix("t=")
        .filter(|d| !d.is_empty() && d.len() <= 16 && d.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|d| d.parse().ok())
        .ok_or(AuthError::Malformed)?;
    let body_sha = sha
        .strip_prefix("sha=")
        .and_then(unhex)
        .ok_or(AuthError::Malformed)?;
    let mac = mac
        .strip_prefix("mac=")
        .and_then(unhex)
        .ok_or(AuthError::Malformed)?;
    Ok(Proof {
        signed_ms,
        body_sha,
        mac,
    })
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// A 32-byte mac from 64 hex digits; anything else is `None`.
fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() != 64 {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    s.as_bytes()
        .chunks(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "0123456789abcdef-secret-a";
    const B: &str = "fedcba9876543210-secret-b";

    fn parts(path: &str) -> RequestParts<'_> {
        RequestParts {
            cluster: "c1",
            host: "127.0.0.1:8081",
            method: "POST",
            path_and_query: path,
            from: "http://127.0.0.1:1",
        }
    }

    #[test]
    fn a_signed_request_verifies_and_binds_every_part() {
        let keys = PeerKeys::from_text(A).unwrap();
        let body = br#"{"term":3}"#;
        let (header, mac) = keys.sign_request(parts("/raft/append"), 1_000_000, body);
        let proof = keys
            .verify_request(
                Some(header.as_bytes()),
                parts("/raft/append"),
                1_000_500,
                body,
            )
            .unwrap();
        assert_eq!(proof.mac, mac);
        // Any change of what is covered breaks it.
        let h = Some(header.as_bytes());
        assert_eq!(
            keys.verify_request(h, parts("/raft/vote"), 1_000_000, body),
            Err(AuthError::BadMac)
        );
        assert_eq!(
            keys.verify_request(h, parts("/raft/append"), 1_000_000, br#"{"term":4}"#),
            Err(AuthError::BodyMismatch)
        );
        let other_node = RequestParts {
            host: "127.0.0.1:8082",
            ..parts("/raft/append")
        };
        assert_eq!(
            keys.verify_request(h, other_node, 1_000_000, body),
            Err(AuthError::BadMac),
            "a request signed for one node is refused by another"
        );
        let other_cluster = RequestParts {
            cluster: "c2",
            ..parts("/raft/append")
        };
        assert_eq!(
            keys.verify_request(h, other_cluster, 1_000_000, body),
            Err(AuthError::BadMac)
        );
        let other_sender = RequestParts {
            from: "http://10.0.0.9:1",
            ..parts("/raft/append")
        };
        assert_eq!(
            keys.verify_request(h, other_sender, 1_000_000, body),
            Err(AuthError::BadMac)
        );
        // Another secret does not verify.
        let other = PeerKeys::from_text(B).unwrap();
        assert_eq!(
            other.verify_request(h, parts("/raft/append"), 1_000_000, body),
            Err(AuthError::BadMac)
        );
    }

    #[test]
    fn the_clock_skew_window_is_bounded_both_ways() {
        let keys = PeerKeys::from_text(A).unwrap();
        let (header, _) = keys.sign_request(parts("/p"), 10_000_000, b"");
        let h = Some(header.as_bytes());
        for now in [
            10_000_000 - MAX_CLOCK_SKEW_MS,
            10_000_000 + MAX_CLOCK_SKEW_MS,
        ] {
            assert!(keys.verify_request(h, parts("/p"), now, b"").is_ok());
        }
        for now in [
            10_000_000 - MAX_CLOCK_SKEW_MS - 1,
            10_000_000 + MAX_CLOCK_SKEW_MS + 1,
        ] {
            assert!(matches!(
                keys.verify_request(h, parts("/p"), now, b""),
                Err(AuthError::Skew { .. })
            ));
        }
    }

    #[test]
    fn malformed_and_missing_headers_are_refused_without_panicking() {
        let keys = PeerKeys::from_text(A).unwrap();
        assert_eq!(
            keys.verify_request(None, parts("/p"), 0, b""),
            Err(AuthError::Missing)
        );
        let zeros = "0".repeat(64);
        for bad in [
            "".to_owned(),
            "t=1".to_owned(),
            "mac=00".to_owned(),
            format!("t=1,mac={zeros}"),
            format!("t=1,sha={zeros},mac={zeros},x=1"),
            format!("t=,sha={zeros},mac={zeros}"),
            format!("t=-1,sha={zeros},mac={zeros}"),
            format!("t=99999999999999999999,sha={zeros},mac={zeros}"),
            format!("t=1,sha={zeros},mac={}", "0".repeat(63)),
            format!("t=1,sha={},mac={zeros}", "0".repeat(65)),
            format!("t=1,sha={zeros},mac={}", "g".repeat(64)),
            format!("t=1,sha={zeros},mac={}é", "0".repeat(62)),
        ] {
            assert_eq!(
                keys.verify_request(Some(bad.as_bytes()), parts("/p"), 1, b""),
                Err(AuthError::Malformed),
                "{bad:?}"
            );
        }
        assert_eq!(
            keys.verify_request(Some(&[0xff, 0xfe]), parts("/p"), 1, b""),
            Err(AuthError::Malformed)
        );
        let forged = format!("t=1,sha={zeros},mac={zeros}");
        assert_eq!(
            keys.verify_request(Some(forged.as_bytes()), parts("/p"), 1, b""),
            Err(AuthError::BadMac)
        );
    }

    #[test]
    fn answers_are_bound_to_their_request_status_and_body() {
        let keys = PeerKeys::from_text(A).unwrap();
        let (_, mac) = keys.sign_request(parts("/raft/vote"), 5, b"{}");
        let header = keys.sign_answer(&mac, 200, br#"{"granted":true}"#);
        let h = Some(header.as_bytes());
        assert!(keys
            .verify_answer(h, &mac, 200, br#"{"granted":true}"#)
            .is_ok());
        assert!(keys
            .verify_answer(h, &mac, 200, br#"{"granted":false}"#)
            .is_err());
        assert!(keys
            .verify_answer(h, &mac, 500, br#"{"granted":true}"#)
            .is_err());
        let (_, other_mac) = keys.sign_request(parts("/raft/vote"), 6, b"{}");
        assert!(keys
            .verify_answer(h, &other_mac, 200, br#"{"granted":true}"#)
            .is_err());
        assert_eq!(
            keys.verify_answer(None, &mac, 200, b""),
            Err(AuthError::Missing)
        );
    }

    #[test]
    fn rotation_signs_with_the_first_secret_and_accepts_every_one() {
        let old = PeerKeys::from_text(A).unwrap();
        let both = PeerKeys::from_text(&format!("{B}\n{A}\n")).unwrap();
        let new = PeerKeys::from_text(B).unwrap();
        let (from_old, _) = old.sign_request(parts("/p"), 1, b"x");
        let (from_both, _) = both.sign_request(parts("/p"), 1, b"x");
        assert!(both
            .verify_request(Some(from_old.as_bytes()), parts("/p"), 1, b"x")
            .is_ok());
        assert!(new
            .verify_request(Some(from_both.as_bytes()), parts("/p"), 1, b"x")
            .is_ok());
        assert!(old
            .verify_request(Some(from_both.as_bytes()), parts("/p"), 1, b"x")
            .is_err());
    }

    #[test]
    fn weak_or_empty_secrets_are_refused_and_debug_never_shows_one() {
        assert!(PeerKeys::from_text("").is_err());
        assert!(PeerKeys::from_text("  \n ").is_err());
        assert!(PeerKeys::from_text("short").is_err());
        assert!(PeerKeys::from_text(&format!("{A} tooshort")).is_err());
        let many = [A; MAX_SECRETS + 1].join(" ");
        assert!(PeerKeys::from_text(&many).is_err());
        let keys = PeerKeys::from_text(A).unwrap();
        assert!(!format!("{keys:?}").contains("secret-a"));
        assert_eq!(keys.len(), 1);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 2000, ..Default::default() })]

        /// Fuzz target for the proof decoder: any header bytes, any body, any clock: never a
        /// panic, never accepted without the secret.
        #[test]
        fn no_header_of_random_bytes_is_ever_accepted(
            header in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
            now in proptest::prelude::any::<u64>(),
        ) {
            let keys = PeerKeys::from_text(A).unwrap();
            proptest::prop_assert!(keys.verify_request(Some(&header), parts("/p"), now, &body).is_err());
            proptest::prop_assert!(keys.verify_answer(Some(&header), &[0; 32], 200, &body).is_err());
        }

        /// A well-formed header with a random mac and time is refused too.
        #[test]
        fn a_well_formed_header_with_a_guessed_mac_is_refused(
            mac in proptest::collection::vec(proptest::prelude::any::<u8>(), 32),
            t in 0u64..10_000_000,
        ) {
            let keys = PeerKeys::from_text(A).unwrap();
            let header = format!("t={t},sha={},mac={}", hex(&body_digest(b"")), hex(&mac));
            proptest::prop_assert_eq!(
                keys.verify_request(Some(header.as_bytes()), parts("/p"), t, b""),
                Err(AuthError::BadMac)
            );
        }
    }
}
