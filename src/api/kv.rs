//! The client API of the original project: `PUT /set`, `GET /get`, `DELETE /delete`.
//!
//! Handlers validate input, send one message to the store and map the reply to the original
//! JSON shapes. They own no state and must never touch the map directly.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use super::errors::ApiError;
use super::AppState;
use crate::store::{Command, CommandOutcome, Execute, Get};

/// Body of `PUT /set`: a JSON object with string fields `key` and `value` (other fields are
/// ignored). Unlike serde's derive, a JSON array is refused: only an object is a valid body.
#[derive(Debug)]
pub struct SetRequest {
    pub key: String,
    pub value: String,
}

impl<'de> Deserialize<'de> for SetRequest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> serde::de::Visitor<'de> for Fields {
            type Value = SetRequest;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(r#"an object like {"key":"name","value":"luffy"}"#)
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<SetRequest, A::Error> {
                use serde::de::Error;
                let (mut key, mut value) = (None, None);
                while let Some(field) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    let slot = match field.as_ref() {
                        "key" => &mut key,
                        "value" => &mut value,
                        _ => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                            continue;
                        }
                    };
                    if slot.is_some() {
                        return Err(A::Error::custom(format_args!("duplicate field `{field}`")));
                    }
                    *slot = Some(map.next_value::<String>()?);
                }
                Ok(SetRequest {
                    key: key.ok_or_else(|| A::Error::missing_field("key"))?,
                    value: value.ok_or_else(|| A::Error::missing_field("value"))?,
                })
            }
        }
        d.deserialize_map(Fields)
    }
}

/// Query of `GET /get` and `DELETE /delete`. `key` is optional here so that its absence gets
/// our own message rather than serde's.
#[derive(Debug, Deserialize)]
pub struct KeyQuery {
    pub key: Option<String>,
}

/// `{"ok":true,"message":"stored","key":"name"}` and `{"ok":true,"message":"deleted",...}`.
#[derive(Debug, Serialize)]
struct WriteReply<'a> {
    ok: bool,
    message: &'static str,
    key: &'a str,
}

/// `{"ok":true,"key":"name","value":"luffy"}`.
#[derive(Debug, Serialize)]
struct GetReply<'a> {
    ok: bool,
    key: &'a str,
    value: &'a str,
}

/// Size limits on what clients may store, in bytes of UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_key_bytes: usize,
    pub max_value_bytes: usize,
    pub max_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_key_bytes: 4 * 1024,
            max_value_bytes: 1024 * 1024,
            max_body_bytes: 4 * 1024 * 1024,
        }
    }
}

impl Limits {
    fn check_key(&self, key: &str) -> Result<(), ApiError> {
        if key.is_empty() {
            return Err(ApiError::EmptyKey);
        }
        if key.len() > self.max_key_bytes {
            return Err(ApiError::KeyTooLarge {
                len: key.len(),
                limit: self.max_key_bytes,
            });
        }
        Ok(())
    }

    fn check_value(&self, value: &str) -> Result<(), ApiError> {
        if value.len() > self.max_value_bytes {
            return Err(ApiError::ValueTooLarge {
                len: value.len(),
                limit: self.max_value_bytes,
            });
        }
        Ok(())
    }
}

fn required_key(q: KeyQuery) -> Result<String, ApiError> {
    q.key
        .ok_or_else(|| ApiError::InvalidQuery("missing query parameter `key`".into()))
}

fn store_unavailable(err: actix::MailboxError) -> ApiError {
    tracing::error!(error = %err, "store actor did not answer");
    ApiError::Internal("store unavailable".into())
}

/// `PUT /set` with `{"key":..,"value":..}`.
pub async fn set(
    state: web::Data<AppState>,
    body: web::Json<SetRequest>,
) -> Result<HttpResponse, ApiError> {
    let SetRequest { key, value } = body.into_inner();
    state.limits.check_key(&key)?;
    state.limits.check_value(&value)?;
    let cmd = Command::Set {
        key: key.clone(),
        value,
    };
    match state.store.send(Execute(cmd)).await {
        Ok(Ok(_)) => Ok(HttpResponse::Ok().json(WriteReply {
            ok: true,
            message: "stored",
            key: &key,
        })),
        Ok(Err(e)) => Err(ApiError::Internal(e.to_string())),
        Err(e) => Err(store_unavailable(e)),
    }
}

/// `GET /get?key=..`.
pub async fn get(
    state: web::Data<AppState>,
    query: web::Query<KeyQuery>,
) -> Result<HttpResponse, ApiError> {
    let key = required_key(query.into_inner())?;
    state.limits.check_key(&key)?;
    match state.store.send(Get { key: key.clone() }).await {
        Ok(Some(value)) => Ok(HttpResponse::Ok().json(GetReply {
            ok: true,
            key: &key,
            value: &value,
        })),
        Ok(None) => Err(ApiError::KeyNotFound),
        Err(e) => Err(store_unavailable(e)),
    }
}

/// `DELETE /delete?key=..`.
pub async fn delete(
    state: web::Data<AppState>,
    query: web::Query<KeyQuery>,
) -> Result<HttpResponse, ApiError> {
    let key = required_key(query.into_inner())?;
    state.limits.check_key(&key)?;
    let cmd = Command::Delete { key: key.clone() };
    match state.store.send(Execute(cmd)).await {
        Ok(Ok(CommandOutcome::NotFound)) => Err(ApiError::KeyNotFound),
        Ok(Ok(_)) => Ok(HttpResponse::Ok().json(WriteReply {
            ok: true,
            message: "deleted",
            key: &key,
        })),
        Ok(Err(e)) => Err(ApiError::Internal(e.to_string())),
        Err(e) => Err(store_unavailable(e)),
    }
}
