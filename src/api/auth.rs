//! Optional client authentication: bearer tokens with a role each, read from the file given by
//! `--client-tokens-file` (`KVSTORE_CLIENT_TOKENS_FILE`), and the middleware that checks them.
//!
//! File format (one token per line; see the README):
//!
//! ```text
//! # comments and blank lines are ignored
//! read   3f8c0d5e9a1b7c2d4e6f8a0b
//! write  8e1f2a3b4c5d6e7f8091a2b3
//! admin  c0ffee00deadbeef12345678
//! ```
//!
//! Roles are ordered: `write` may do what `read` may, `admin` what `write` may. `GET /get`,
//! `GET /keys` and `GET /watch` need read, `PUT /set` and `DELETE /delete` write, `/admin/*`
//! admin. `/health` and the peer routes
//! `/raft/*` are not covered (peers prove themselves with the cluster secret). A request without
//! a valid token gets `401` with `WWW-Authenticate: Bearer`, one with a token whose role is too
//! low `403`, both in the API's JSON error shape, before its body is read.
//!
//! Only SHA-256 digests of the tokens are kept, and a presented token is compared by digest,
//! against every known digest, without an early exit: the time taken depends neither on how
//! much of a token matched nor on which token it is. Tokens are never logged, never part of an
//! error message, and never answered.
//!
//! Parsing ([`parse_tokens`]) and the permission rule ([`check_file_mode`]) are pure; reading
//! the file is `startup`'s job. This module never touches the request body.

use std::fmt;
use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::AUTHORIZATION;
use actix_web::middleware::Next;
use actix_web::{web, ResponseError};

use super::errors::ApiError;
use super::AppState;

/// Shortest token accepted: 16 characters (e.g. 64 bits as hex); `openssl rand -hex 32` makes a
/// good one.
pub const MIN_TOKEN_LEN: usize = 16;

/// Longest token accepted (it travels in a header; actix-web refuses longer request heads).
pub const MAX_TOKEN_LEN: usize = 1024;

/// Largest tokens file read (a few thousand tokens; anything bigger is a mistake).
pub const MAX_TOKENS_FILE_BYTES: u64 = 1024 * 1024;

/// What a token may do. Ordered: a higher role may do everything a lower one may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// `GET /get`, `GET /keys`, `GET /watch`.
    Read,
    /// And `PUT /set`, `DELETE /delete`.
    Write,
    /// And `/admin/*`.
    Admin,
}

impl Role {
    fn parse(s: &str) -> Option<Role> {
        match s {
            "read" => Some(Role::Read),
            "write" => Some(Role::Write),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    /// The role's name in the tokens file.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Write => "write",
            Role::Admin => "admin",
        }
    }
}

type Digest = [u8; 32];

fn digest(token: &[u8]) -> Digest {
    let d = ring::digest::digest(&ring::digest::SHA256, token);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Equal digests, compared without an early exit.
fn same_digest(a: &Digest, b: &Digest) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// The known tokens, as digests with their roles. Never holds a token itself.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientTokens {
    tokens: Vec<(Digest, Role)>,
}

impl fmt::Debug for ClientTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClientTokens({} tokens)", self.tokens.len())
    }
}

impl ClientTokens {
    /// How many tokens there are.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// True when there are none (never, once parsed).
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// How many tokens have each role (read, write, admin), for the start-up log line.
    pub fn counts(&self) -> [usize; 3] {
        let mut c = [0; 3];
        for (_, role) in &self.tokens {
            c[*role as usize] += 1;
        }
        c
    }

    /// The role of `token`, if it is known. Compares its digest with every known digest.
    pub fn role_of(&self, token: &[u8]) -> Option<Role> {
        let d = digest(token);
        let mut found = None;
        for (known, role) in &self.tokens {
            if same_digest(known, &d) {
                found = Some(*role);
            }
        }
        found
    }
}

/// Why a tokens file cannot be used. Never contains a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokensError {
    /// 1-based line number, when the problem is on one line.
    pub line: Option<usize>,
    pub reason: String,
}

impl fmt::Display for TokensError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(n) => write!(f, "line {n}: {}", self.reason),
            None => f.write_str(&self.reason),
        }
    }
}

impl std::error::Error for TokensError {}

/// Parse the text of a tokens file: one `ROLE TOKEN` per line (separated by spaces or tabs),
/// `#` starts a comment line, blank lines are ignored. Refuses an unknown role, a token shorter
/// than [`MIN_TOKEN_LEN`] or longer than [`MAX_TOKEN_LEN`], a token with anything but visible
/// ASCII, a line with more than two fields, a token given twice, and a file without tokens.
pub fn parse_tokens(text: &str) -> Result<ClientTokens, TokensError> {
    let mut tokens: Vec<(Digest, Role)> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let err = |reason: String| TokensError {
            line: Some(i + 1),
            reason,
        };
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_ascii_whitespace();
        let (Some(role), Some(token)) = (fields.next(), fields.next()) else {
            return Err(err(
                "expected `ROLE TOKEN` (ROLE is read, write or admin)".into()
            ));
        };
        if fields.next().is_some() {
            return Err(err(
                "expected `ROLE TOKEN`, found more fields (a token has no spaces)".into(),
            ));
        }
        let role = Role::parse(role).ok_or_else(|| {
            // The field may be a token (columns swapped): it is named only when it is short
            // enough to be a misspelt role, never echoed otherwise.
            let shown = if role.len() <= 8 {
                format!(" {role:?}")
            } else {
                String::new()
            };
            err(format!(
                "unknown role{shown} in the first column: the roles are read, write and admin \
                 (`ROLE TOKEN` per line)"
            ))
        })?;
        if token.len() < MIN_TOKEN_LEN {
            return Err(err(format!(
                "token too short: {} characters, at least {MIN_TOKEN_LEN} are needed \
                 (e.g. `openssl rand -hex 32`)",
                token.len()
            )));
        }
        if token.len() > MAX_TOKEN_LEN {
            return Err(err(format!(
                "token too long: {} bytes, at most {MAX_TOKEN_LEN}",
                token.len()
            )));
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(err("a token may hold only visible ASCII characters".into()));
        }
        let d = digest(token.as_bytes());
        if let Some(pos) = tokens.iter().position(|(known, _)| *known == d) {
            return Err(err(format!(
                "this token was already given (as token number {}); every token must be distinct",
                pos + 1
            )));
        }
        tokens.push((d, role));
    }
    if tokens.is_empty() {
        return Err(TokensError {
            line: None,
            reason: "no tokens in the file (one `ROLE TOKEN` per line)".into(),
        });
    }
    Ok(ClientTokens { tokens })
}

/// The rule for the file's permission bits (`st_mode`): like ssh with a private key, a tokens
/// file that its group or others may read, write or run is refused.
pub fn check_file_mode(mode: u32) -> Result<(), TokensError> {
    if mode & 0o077 != 0 {
        return Err(TokensError {
            line: None,
            reason: format!(
                "permissions {:04o} are too open: group and others must have no access \
                 (chmod 600)",
                mode & 0o7777
            ),
        });
    }
    Ok(())
}

/// What a request's `Authorization` header proves, against `tokens`.
fn authorize(tokens: &ClientTokens, header: Option<&[u8]>, needed: Role) -> Result<(), ApiError> {
    let Some(value) = header else {
        return Err(ApiError::ClientUnauthorized { invalid: false });
    };
    // `Bearer TOKEN`; the scheme is case-insensitive (RFC 7235).
    let token = match value.iter().position(|b| *b == b' ') {
        Some(sp) if value[..sp].eq_ignore_ascii_case(b"bearer") => value[sp + 1..].trim_ascii(),
        _ => return Err(ApiError::ClientUnauthorized { invalid: true }),
    };
    match tokens.role_of(token) {
        None => Err(ApiError::ClientUnauthorized { invalid: true }),
        Some(role) if role < needed => Err(ApiError::Forbidden(format!(
            "this token's role is {}; this request needs {}",
            role.as_str(),
            needed.as_str()
        ))),
        Some(_) => Ok(()),
    }
}

async fn require<B: MessageBody>(
    needed: Role,
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let tokens: Option<Arc<ClientTokens>> = req
        .app_data::<web::Data<AppState>>()
        .and_then(|s| s.client_tokens.clone());
    let verdict = match &tokens {
        None => Ok(()),
        Some(t) => authorize(
            t,
            req.headers().get(AUTHORIZATION).map(|v| v.as_bytes()),
            needed,
        ),
    };
    match verdict {
        Ok(()) => next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body),
        Err(e) => {
            let res = e.error_response();
            Ok(req.into_response(res).map_into_right_body())
        }
    }
}

/// Middleware of `GET /get`, `GET /keys`, `GET /watch` (and `/cluster`, `/metrics`): needs a
/// read token when tokens are configured.
pub async fn read<B: MessageBody>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    require(Role::Read, req, next).await
}

/// Middleware of `PUT /set` and `DELETE /delete`: needs a write token when tokens are
/// configured.
pub async fn write<B: MessageBody>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    require(Role::Write, req, next).await
}

/// Middleware of `/admin/*`: needs an admin token when tokens are configured.
pub async fn admin<B: MessageBody>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    require(Role::Admin, req, next).await
}

#[cfg(test)]
mod tests {
    use super::*;

    const R: &str = "r-0123456789abcdef";
    const W: &str = "w-0123456789abcdef";
    const A: &str = "a-0123456789abcdef";

    fn file() -> String {
        format!("# tokens\n\nread {R}\n  write\t{W}  \nadmin {A}\n")
    }

    #[test]
    fn a_valid_file_gives_each_token_its_role() {
        let t = parse_tokens(&file()).unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!(t.counts(), [1, 1, 1]);
        assert_eq!(t.role_of(R.as_bytes()), Some(Role::Read));
        assert_eq!(t.role_of(W.as_bytes()), Some(Role::Write));
        assert_eq!(t.role_of(A.as_bytes()), Some(Role::Admin));
        assert_eq!(t.role_of(b"r-0123456789abcdeX"), None);
        assert_eq!(t.role_of(b""), None);
        assert!(!format!("{t:?}").contains(R), "Debug never shows a token");
    }

    #[test]
    fn bad_files_are_refused_with_the_line_and_without_the_token() {
        let cases = [
            (format!("reader {R}"), "line 1: unknown role"),
            // Columns swapped: the token is never echoed, not even its first characters.
            (
                format!("{R} read"),
                "line 1: unknown role in the first column",
            ),
            ("read short".to_owned(), "line 1: token too short"),
            ("read\n".to_owned(), "line 1: expected `ROLE TOKEN`"),
            (format!("read {R} extra"), "more fields"),
            (
                format!("read {R}\nwrite {R}"),
                "line 2: this token was already given",
            ),
            ("# only a comment\n\n".to_owned(), "no tokens"),
            (String::new(), "no tokens"),
            (
                format!("read {}", "x".repeat(MAX_TOKEN_LEN + 1)),
                "too long",
            ),
            ("read 0123456789abcdef\u{e9}".to_owned(), "visible ASCII"),
        ];
        for (text, want) in cases {
            let e = parse_tokens(&text).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e:?} lacks {want:?}");
            assert!(!e.contains(R), "{e:?} shows the token");
            assert!(!e.contains(&R[..8]), "{e:?} shows part of the token");
        }
    }

    #[test]
    fn files_readable_by_others_are_refused() {
        assert!(check_file_mode(0o100600).is_ok());
        assert!(check_file_mode(0o100400).is_ok());
        for mode in [0o100644, 0o100640, 0o100604, 0o100660, 0o100700 | 0o001] {
            let e = check_file_mode(mode).unwrap_err().to_string();
            assert!(e.contains("too open") && e.contains("chmod 600"), "{e}");
        }
    }

    #[test]
    fn roles_imply_the_lower_ones() {
        let t = parse_tokens(&file()).unwrap();
        let h = |tok: &str| format!("Bearer {tok}");
        for (tok, ok_up_to) in [(R, Role::Read), (W, Role::Write), (A, Role::Admin)] {
            for needed in [Role::Read, Role::Write, Role::Admin] {
                let got = authorize(&t, Some(h(tok).as_bytes()), needed);
                if needed <= ok_up_to {
                    assert_eq!(got, Ok(()), "{tok} for {needed:?}");
                } else {
                    assert!(matches!(got, Err(ApiError::Forbidden(_))), "{got:?}");
                }
            }
        }
    }

    #[test]
    fn missing_malformed_and_unknown_tokens_are_unauthorized() {
        let t = parse_tokens(&file()).unwrap();
        let missing = ApiError::ClientUnauthorized { invalid: false };
        let invalid = ApiError::ClientUnauthorized { invalid: true };
        assert_eq!(authorize(&t, None, Role::Read), Err(missing));
        let bearer_r = format!("bearer {R}");
        let basic = format!("Basic {R}");
        let bare = R.to_owned();
        for bad in ["Bearer nope-nope-nope-nope", &basic, &bare, "Bearer", ""] {
            assert_eq!(
                authorize(&t, Some(bad.as_bytes()), Role::Read),
                Err(invalid.clone()),
                "{bad:?}"
            );
        }
        assert_eq!(authorize(&t, Some(bearer_r.as_bytes()), Role::Read), Ok(()));
    }
}
