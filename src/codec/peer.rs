//! The peer codec: every Raft RPC body and answer ([`crate::raft::rpc`]) turned into bytes and
//! back by one function pair, [`encode`] and [`decode`], in one of two formats:
//!
//! - [`Format::Json`] (`application/json`): the shapes of the `rpc` types as they always were;
//!   every node speaks it, so it is what a sender uses until a peer said it knows binary.
//! - [`Format::Binary`] (`application/x-kvstore-raft`, codec version 1): postcard (varints,
//!   length-prefixed strings, serde's data model without field names) of the frozen mirror types
//!   below. A change of a wire type is a change of this format: new fields need a new codec
//!   version (the `x-kvstore-raft-codec` header), never a silent change of the mirror.
//!
//! The chunk of a snapshot travels as raw bytes with its fields in the query string
//! ([`crate::transport::http`]), already binary: it is not a message of this codec (its answer
//! is).
//!
//! Decoding hostile bytes is bounded: strings and byte strings are taken from the input after
//! their length prefix was checked against what is left (a forged length fails, it is never
//! allocated); the entries of an AppendEntries are refused past [`MAX_BATCH_ENTRIES`] and the
//! members of a configuration past [`MAX_MEMBERS`], and no more than that is ever reserved for
//! them whatever count the body claims; trailing
//! bytes are an error. No allocation exceeds a small multiple of the body, which the HTTP edge
//! bounds first. Nothing here panics on input. Pure: no I/O, no clock.
//!
//! Encoding borrows: an entry's key and value are written from the log's own allocation (the
//! value is an `Arc<str>` shared by the log, the WAL encoder and the map), never cloned first.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::de::{SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::raft::core::{MAX_BATCH_ENTRIES, MAX_MEMBERS};
use crate::raft::log::{Entry, EntryPayload};
use crate::raft::rpc::{
    AppendRequest, AppendResponse, ReadIndexRequest, ReadIndexResponse, SnapshotResponse,
    TimeoutNowRequest, TimeoutNowResponse, VoteRequest, VoteResponse,
};
use crate::raft::{Configuration, Member, Message};
use crate::store::{Command, Stamp};

/// Content type of a binary body.
pub const BINARY_CONTENT_TYPE: &str = "application/x-kvstore-raft";

/// Content type of a JSON body.
pub const JSON_CONTENT_TYPE: &str = "application/json";

/// Answer header by which a node says it understands binary bodies (on every `/raft/*` answer).
pub const CODEC_HEADER: &str = "x-kvstore-raft-codec";

/// The value of [`CODEC_HEADER`]: the binary format of this module.
pub const CODEC_VERSION: &str = "1";

/// Which codecs this node speaks with its peers (`--peer-codec`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PeerCodec {
    /// JSON to every peer until it says it understands binary, then binary; binary requests
    /// are understood and every `/raft/*` answer says so.
    #[default]
    Auto,
    /// JSON only, as a node before this codec: never sends binary, does not announce it, reads
    /// every body as JSON. For a cluster that must be downgraded, and for tests of old peers.
    Json,
}

impl std::str::FromStr for PeerCodec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(PeerCodec::Auto),
            "json" => Ok(PeerCodec::Json),
            other => Err(format!("peer codec {other:?}: expected auto or json")),
        }
    }
}

impl fmt::Display for PeerCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PeerCodec::Auto => "auto",
            PeerCodec::Json => "json",
        })
    }
}

/// How a body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Binary,
}

impl Format {
    /// The content type a body of this format is sent with.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => JSON_CONTENT_TYPE,
            Format::Binary => BINARY_CONTENT_TYPE,
        }
    }

    /// The format of a body sent with this content type: binary for
    /// [`BINARY_CONTENT_TYPE`] (parameters and case ignored), JSON for anything else, as before
    /// this codec existed (the routes never required a content type).
    pub fn of_content_type(content_type: Option<&[u8]>) -> Format {
        let Some(ct) = content_type else {
            return Format::Json;
        };
        let essence = ct.split(|b| *b == b';').next().unwrap_or_default();
        if essence
            .trim_ascii()
            .eq_ignore_ascii_case(BINARY_CONTENT_TYPE.as_bytes())
        {
            Format::Binary
        } else {
            Format::Json
        }
    }
}

/// Which message a body holds: the route (or the request sent) says which.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    VoteRequest,
    VoteResponse,
    AppendRequest,
    AppendResponse,
    SnapshotResponse,
    TimeoutNowRequest,
    TimeoutNowResponse,
    ReadIndexRequest,
    ReadIndexResponse,
}

impl Kind {
    /// The kind of `msg`; `None` for a snapshot chunk (not a message of this codec).
    pub fn of(msg: &Message) -> Option<Kind> {
        Some(match msg {
            Message::VoteRequest(_) => Kind::VoteRequest,
            Message::VoteResponse(_) => Kind::VoteResponse,
            Message::AppendRequest(_) => Kind::AppendRequest,
            Message::AppendResponse(_) => Kind::AppendResponse,
            Message::SnapshotResponse(_) => Kind::SnapshotResponse,
            Message::TimeoutNowRequest(_) => Kind::TimeoutNowRequest,
            Message::TimeoutNowResponse(_) => Kind::TimeoutNowResponse,
            Message::ReadIndexRequest(_) => Kind::ReadIndexRequest,
            Message::ReadIndexResponse(_) => Kind::ReadIndexResponse,
            Message::SnapshotRequest(_) => return None,
        })
    }
}

/// Why a body could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodecError {
    /// Not a message of this codec (a snapshot chunk travels as raw bytes).
    NotEncodable,
    /// The body is not valid JSON of the expected message.
    Json(String),
    /// The body is not a valid binary message.
    Binary(String),
    /// A valid message of another kind than the one expected.
    WrongKind { expected: Kind, found: Kind },
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodecError::NotEncodable => write!(f, "a snapshot chunk is not a codec message"),
            CodecError::Json(why) => write!(f, "{why}"),
            CodecError::Binary(why) => write!(f, "invalid binary peer message: {why}"),
            CodecError::WrongKind { expected, found } => {
                write!(f, "expected a {expected:?}, got a {found:?}")
            }
        }
    }
}

impl std::error::Error for CodecError {}

/// `msg` as a body in `format`.
pub fn encode(msg: &Message, format: Format) -> Result<Vec<u8>, CodecError> {
    match format {
        Format::Json => {
            let json = match msg {
                Message::VoteRequest(m) => serde_json::to_vec(m),
                Message::VoteResponse(m) => serde_json::to_vec(m),
                Message::AppendRequest(m) => serde_json::to_vec(m),
                Message::AppendResponse(m) => serde_json::to_vec(m),
                Message::SnapshotResponse(m) => serde_json::to_vec(m),
                Message::TimeoutNowRequest(m) => serde_json::to_vec(m),
                Message::TimeoutNowResponse(m) => serde_json::to_vec(m),
                Message::ReadIndexRequest(m) => serde_json::to_vec(m),
                Message::ReadIndexResponse(m) => serde_json::to_vec(m),
                Message::SnapshotRequest(_) => return Err(CodecError::NotEncodable),
            };
            json.map_err(|e| CodecError::Json(e.to_string()))
        }
        Format::Binary => {
            let wire = Wire::of(msg)?;
            postcard::to_stdvec(&wire).map_err(|e| CodecError::Binary(e.to_string()))
        }
    }
}

/// The message of kind `kind` in `bytes` (a body in `format`).
pub fn decode(bytes: &[u8], format: Format, kind: Kind) -> Result<Message, CodecError> {
    match format {
        Format::Json => {
            fn json<T: serde::de::DeserializeOwned>(b: &[u8]) -> Result<T, CodecError> {
                serde_json::from_slice(b).map_err(|e| CodecError::Json(e.to_string()))
            }
            Ok(match kind {
                Kind::VoteRequest => Message::VoteRequest(json(bytes)?),
                Kind::VoteResponse => Message::VoteResponse(json(bytes)?),
                Kind::AppendRequest => Message::AppendRequest(json(bytes)?),
                Kind::AppendResponse => Message::AppendResponse(json(bytes)?),
                Kind::SnapshotResponse => Message::SnapshotResponse(json(bytes)?),
                Kind::TimeoutNowRequest => Message::TimeoutNowRequest(json(bytes)?),
                Kind::TimeoutNowResponse => Message::TimeoutNowResponse(json(bytes)?),
                Kind::ReadIndexRequest => Message::ReadIndexRequest(json(bytes)?),
                Kind::ReadIndexResponse => Message::ReadIndexResponse(json(bytes)?),
            })
        }
        Format::Binary => {
            let (wire, rest) = postcard::take_from_bytes::<Wire<'_>>(bytes)
                .map_err(|e| CodecError::Binary(e.to_string()))?;
            if !rest.is_empty() {
                return Err(CodecError::Binary(format!(
                    "{} trailing bytes after the message",
                    rest.len()
                )));
            }
            let msg = wire.into_message()?;
            let found = Kind::of(&msg).ok_or(CodecError::NotEncodable)?;
            if found != kind {
                return Err(CodecError::WrongKind {
                    expected: kind,
                    found,
                });
            }
            Ok(msg)
        }
    }
}

// ---- The binary format, version 1. Variants and fields are in wire order: never reorder,
// ---- never insert; a change needs a new codec version.

/// Every binary body: the variant's index (a varint) and its fields.
#[derive(Serialize, Deserialize)]
enum Wire<'a> {
    #[serde(borrow)]
    VoteRequest(WireVoteRequest<'a>),
    VoteResponse(WireVoteResponse),
    #[serde(borrow)]
    AppendRequest(WireAppendRequest<'a>),
    #[serde(borrow)]
    AppendResponse(WireAppendResponse<'a>),
    SnapshotResponse(WireSnapshotResponse),
    #[serde(borrow)]
    TimeoutNowRequest(WireTimeoutNowRequest<'a>),
    TimeoutNowResponse(WireTimeoutNowResponse),
    // Appended after version 1's first seven (which keep their indexes): a node without these
    // has no `/raft/read-index` route either, so it never gets one to decode.
    ReadIndexRequest(WireReadIndexRequest),
    ReadIndexResponse(WireReadIndexResponse),
}

#[derive(Serialize, Deserialize)]
struct WireVoteRequest<'a> {
    term: u64,
    #[serde(borrow)]
    candidate_id: Cow<'a, str>,
    last_log_index: u64,
    last_log_term: u64,
    pre_vote: bool,
    transfer: bool,
}

#[derive(Serialize, Deserialize)]
struct WireVoteResponse {
    term: u64,
    granted: bool,
    pre_vote: bool,
}

#[derive(Serialize, Deserialize)]
struct WireAppendRequest<'a> {
    term: u64,
    #[serde(borrow)]
    leader_id: Cow<'a, str>,
    #[serde(borrow)]
    leader_url: Cow<'a, str>,
    prev_log_index: u64,
    prev_log_term: u64,
    entries: Entries<'a>,
    leader_commit: u64,
    seq: u64,
}

#[derive(Serialize, Deserialize)]
struct WireAppendResponse<'a> {
    term: u64,
    success: bool,
    match_index: u64,
    seq: u64,
    reject_index: u64,
    conflict_term: Option<u64>,
    conflict_index: u64,
    #[serde(borrow)]
    node_id: Option<Cow<'a, str>>,
}

#[derive(Serialize, Deserialize)]
struct WireSnapshotResponse {
    term: u64,
    seq: u64,
    match_index: Option<u64>,
    next_offset: u64,
    busy: bool,
}

#[derive(Serialize, Deserialize)]
struct WireTimeoutNowRequest<'a> {
    term: u64,
    #[serde(borrow)]
    leader_id: Cow<'a, str>,
}

#[derive(Serialize, Deserialize)]
struct WireTimeoutNowResponse {
    term: u64,
    accepted: bool,
}

#[derive(Serialize, Deserialize)]
struct WireReadIndexRequest {
    term: u64,
}

#[derive(Serialize, Deserialize)]
struct WireReadIndexResponse {
    term: u64,
    index: u64,
}

/// One log entry.
#[derive(Serialize, Deserialize)]
struct WireEntry<'a> {
    index: u64,
    term: u64,
    #[serde(borrow)]
    payload: WirePayload<'a>,
}

#[derive(Serialize, Deserialize)]
enum WirePayload<'a> {
    Noop,
    #[serde(borrow)]
    Command(WireCommand<'a>),
    #[serde(borrow)]
    Config(WireConfig<'a>),
}

#[derive(Serialize, Deserialize)]
enum WireCommand<'a> {
    Set {
        #[serde(borrow)]
        key: Cow<'a, str>,
        /// Borrowed from the body on decode: copied once, into the shared allocation.
        #[serde(borrow)]
        value: Cow<'a, str>,
        if_mod_index: Option<u64>,
        #[serde(borrow)]
        if_value: Option<Cow<'a, str>>,
        #[serde(borrow)]
        stamp: Option<WireStamp<'a>>,
    },
    Delete {
        #[serde(borrow)]
        key: Cow<'a, str>,
        if_mod_index: Option<u64>,
        #[serde(borrow)]
        stamp: Option<WireStamp<'a>>,
    },
}

#[derive(Serialize, Deserialize)]
struct WireStamp<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    now_ms: u64,
    expires_ms: u64,
}

#[derive(Serialize, Deserialize)]
struct WireConfig<'a> {
    #[serde(borrow)]
    voters: Members<'a>,
    #[serde(borrow)]
    learners: Members<'a>,
}

#[derive(Serialize, Deserialize)]
struct WireMember<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    url: Cow<'a, str>,
}

/// A sequence of at most `MAX` elements: a claimed longer count is refused when the format
/// tells it up front, the element after the `MAX`th otherwise; never more than `MAX` reserved.
struct BoundedSeq<T, const MAX: usize>(Vec<T>);

impl<'de, T: Deserialize<'de>, const MAX: usize> Deserialize<'de> for BoundedSeq<T, MAX> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T, const MAX: usize>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>, const MAX: usize> Visitor<'de> for V<T, MAX> {
            type Value = BoundedSeq<T, MAX>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "a sequence of at most {MAX} elements")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                use serde::de::Error;
                let hint = seq.size_hint().unwrap_or(0);
                if hint > MAX {
                    return Err(A::Error::custom(format_args!(
                        "{hint} elements where at most {MAX} are allowed"
                    )));
                }
                let mut out = Vec::with_capacity(hint);
                while let Some(x) = seq.next_element()? {
                    if out.len() == MAX {
                        return Err(A::Error::custom(format_args!("more than {MAX} elements")));
                    }
                    out.push(x);
                }
                Ok(BoundedSeq(out))
            }
        }
        d.deserialize_seq(V::<T, MAX>(PhantomData))
    }
}

/// The entries of an AppendEntries: borrowed from the log's batch when encoding, at most
/// [`MAX_BATCH_ENTRIES`] when decoding.
enum Entries<'a> {
    Borrowed(&'a [Entry]),
    Decoded(Vec<WireEntry<'a>>),
}

impl Serialize for Entries<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Entries::Borrowed(es) => s.collect_seq(es.iter().map(WireEntry::of)),
            Entries::Decoded(ws) => s.collect_seq(ws),
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Entries<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        BoundedSeq::<WireEntry<'a>, MAX_BATCH_ENTRIES>::deserialize(d)
            .map(|b| Entries::Decoded(b.0))
    }
}

/// The members of a configuration: borrowed when encoding, at most [`MAX_MEMBERS`] decoded.
enum Members<'a> {
    Borrowed(&'a [Member]),
    Decoded(Vec<WireMember<'a>>),
}

impl Serialize for Members<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Members::Borrowed(ms) => s.collect_seq(ms.iter().map(|m| WireMember {
                id: Cow::Borrowed(&m.id),
                url: Cow::Borrowed(&m.url),
            })),
            Members::Decoded(ws) => s.collect_seq(ws),
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Members<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        BoundedSeq::<WireMember<'a>, MAX_MEMBERS>::deserialize(d).map(|b| Members::Decoded(b.0))
    }
}

impl Members<'_> {
    fn into_members(self) -> Vec<Member> {
        match self {
            Members::Borrowed(ms) => ms.to_vec(),
            Members::Decoded(ws) => ws
                .into_iter()
                .map(|w| Member::new(w.id.into_owned(), w.url.into_owned()))
                .collect(),
        }
    }
}

impl<'a> WireStamp<'a> {
    fn of(s: &'a Stamp) -> Self {
        WireStamp {
            id: Cow::Borrowed(&s.id),
            now_ms: s.now_ms,
            expires_ms: s.expires_ms,
        }
    }
    fn into_stamp(self) -> Stamp {
        Stamp {
            id: self.id.into_owned(),
            now_ms: self.now_ms,
            expires_ms: self.expires_ms,
        }
    }
}

impl<'a> WireEntry<'a> {
    fn of(e: &'a Entry) -> Self {
        let payload = match &e.payload {
            EntryPayload::Noop => WirePayload::Noop,
            EntryPayload::Command { command } => WirePayload::Command(match command {
                Command::Set {
                    key,
                    value,
                    if_mod_index,
                    if_value,
                    stamp,
                } => WireCommand::Set {
                    key: Cow::Borrowed(key),
                    value: Cow::Borrowed(value),
                    if_mod_index: *if_mod_index,
                    if_value: if_value.as_deref().map(Cow::Borrowed),
                    stamp: stamp.as_ref().map(WireStamp::of),
                },
                Command::Delete {
                    key,
                    if_mod_index,
                    stamp,
                } => WireCommand::Delete {
                    key: Cow::Borrowed(key),
                    if_mod_index: *if_mod_index,
                    stamp: stamp.as_ref().map(WireStamp::of),
                },
            }),
            EntryPayload::Config { configuration } => WirePayload::Config(WireConfig {
                voters: Members::Borrowed(configuration.voters()),
                learners: Members::Borrowed(configuration.learners()),
            }),
        };
        WireEntry {
            index: e.index,
            term: e.term,
            payload,
        }
    }

    fn into_entry(self) -> Result<Entry, CodecError> {
        let payload = match self.payload {
            WirePayload::Noop => EntryPayload::Noop,
            WirePayload::Command(WireCommand::Set {
                key,
                value,
                if_mod_index,
                if_value,
                stamp,
            }) => EntryPayload::Command {
                command: Command::Set {
                    key: key.into_owned(),
                    value: Arc::from(&*value),
                    if_mod_index,
                    if_value: if_value.map(Cow::into_owned),
                    stamp: stamp.map(WireStamp::into_stamp),
                },
            },
            WirePayload::Command(WireCommand::Delete {
                key,
                if_mod_index,
                stamp,
            }) => EntryPayload::Command {
                command: Command::Delete {
                    key: key.into_owned(),
                    if_mod_index,
                    stamp: stamp.map(WireStamp::into_stamp),
                },
            },
            WirePayload::Config(WireConfig { voters, learners }) => {
                let configuration =
                    Configuration::with_learners(voters.into_members(), learners.into_members())
                        .map_err(|e| {
                            CodecError::Binary(format!("configuration entry {}: {e}", self.index))
                        })?;
                EntryPayload::Config { configuration }
            }
        };
        Ok(Entry {
            index: self.index,
            term: self.term,
            payload,
        })
    }
}

impl<'a> Wire<'a> {
    /// The mirror of `msg`, borrowing its strings and entries. The structs are destructured
    /// field by field: a field added to an `rpc` type fails to compile here until the binary
    /// format (and its version) says what becomes of it.
    fn of(msg: &'a Message) -> Result<Self, CodecError> {
        Ok(match msg {
            Message::VoteRequest(VoteRequest {
                term,
                candidate_id,
                last_log_index,
                last_log_term,
                pre_vote,
                transfer,
            }) => Wire::VoteRequest(WireVoteRequest {
                term: *term,
                candidate_id: Cow::Borrowed(candidate_id),
                last_log_index: *last_log_index,
                last_log_term: *last_log_term,
                pre_vote: *pre_vote,
                transfer: *transfer,
            }),
            Message::VoteResponse(VoteResponse {
                term,
                granted,
                pre_vote,
            }) => Wire::VoteResponse(WireVoteResponse {
                term: *term,
                granted: *granted,
                pre_vote: *pre_vote,
            }),
            Message::AppendRequest(AppendRequest {
                term,
                leader_id,
                leader_url,
                prev_log_index,
                prev_log_term,
                entries,
                leader_commit,
                seq,
            }) => Wire::AppendRequest(WireAppendRequest {
                term: *term,
                leader_id: Cow::Borrowed(leader_id),
                leader_url: Cow::Borrowed(leader_url),
                prev_log_index: *prev_log_index,
                prev_log_term: *prev_log_term,
                entries: Entries::Borrowed(entries),
                leader_commit: *leader_commit,
                seq: *seq,
            }),
            Message::AppendResponse(AppendResponse {
                term,
                success,
                match_index,
                seq,
                reject_index,
                conflict_term,
                conflict_index,
                node_id,
                // Not on the wire: binary v1 implies it from `seq` (below).
                lease_hold: _,
            }) => Wire::AppendResponse(WireAppendResponse {
                term: *term,
                success: *success,
                match_index: *match_index,
                seq: *seq,
                reject_index: *reject_index,
                conflict_term: *conflict_term,
                conflict_index: *conflict_index,
                node_id: node_id.as_deref().map(Cow::Borrowed),
            }),
            Message::SnapshotResponse(SnapshotResponse {
                term,
                seq,
                match_index,
                next_offset,
                busy,
            }) => Wire::SnapshotResponse(WireSnapshotResponse {
                term: *term,
                seq: *seq,
                match_index: *match_index,
                next_offset: *next_offset,
                busy: *busy,
            }),
            Message::TimeoutNowRequest(TimeoutNowRequest { term, leader_id }) => {
                Wire::TimeoutNowRequest(WireTimeoutNowRequest {
                    term: *term,
                    leader_id: Cow::Borrowed(leader_id),
                })
            }
            Message::TimeoutNowResponse(TimeoutNowResponse { term, accepted }) => {
                Wire::TimeoutNowResponse(WireTimeoutNowResponse {
                    term: *term,
                    accepted: *accepted,
                })
            }
            Message::ReadIndexRequest(ReadIndexRequest { term }) => {
                Wire::ReadIndexRequest(WireReadIndexRequest { term: *term })
            }
            Message::ReadIndexResponse(ReadIndexResponse { term, index }) => {
                Wire::ReadIndexResponse(WireReadIndexResponse {
                    term: *term,
                    index: *index,
                })
            }
            Message::SnapshotRequest(_) => return Err(CodecError::NotEncodable),
        })
    }

    fn into_message(self) -> Result<Message, CodecError> {
        Ok(match self {
            Wire::VoteRequest(w) => Message::VoteRequest(VoteRequest {
                term: w.term,
                candidate_id: w.candidate_id.into_owned(),
                last_log_index: w.last_log_index,
                last_log_term: w.last_log_term,
                pre_vote: w.pre_vote,
                transfer: w.transfer,
            }),
            Wire::VoteResponse(w) => Message::VoteResponse(VoteResponse {
                term: w.term,
                granted: w.granted,
                pre_vote: w.pre_vote,
            }),
            Wire::AppendRequest(w) => {
                let entries = match w.entries {
                    Entries::Borrowed(es) => es.to_vec(),
                    Entries::Decoded(ws) => ws
                        .into_iter()
                        .map(WireEntry::into_entry)
                        .collect::<Result<_, _>>()?,
                };
                Message::AppendRequest(AppendRequest {
                    term: w.term,
                    leader_id: w.leader_id.into_owned(),
                    leader_url: w.leader_url.into_owned(),
                    prev_log_index: w.prev_log_index,
                    prev_log_term: w.prev_log_term,
                    entries,
                    leader_commit: w.leader_commit,
                    seq: w.seq,
                })
            }
            Wire::AppendResponse(w) => Message::AppendResponse(AppendResponse {
                term: w.term,
                success: w.success,
                match_index: w.match_index,
                seq: w.seq,
                reject_index: w.reject_index,
                conflict_term: w.conflict_term,
                conflict_index: w.conflict_index,
                node_id: w.node_id.map(Cow::into_owned),
                // Every node that speaks binary holds for the leaders whose requests it
                // accepts, and answers a request it did not accept with `seq` 0.
                lease_hold: w.seq != 0,
            }),
            Wire::SnapshotResponse(w) => Message::SnapshotResponse(SnapshotResponse {
                term: w.term,
                seq: w.seq,
                match_index: w.match_index,
                next_offset: w.next_offset,
                busy: w.busy,
            }),
            Wire::TimeoutNowRequest(w) => Message::TimeoutNowRequest(TimeoutNowRequest {
                term: w.term,
                leader_id: w.leader_id.into_owned(),
            }),
            Wire::TimeoutNowResponse(w) => Message::TimeoutNowResponse(TimeoutNowResponse {
                term: w.term,
                accepted: w.accepted,
            }),
            Wire::ReadIndexRequest(w) => {
                Message::ReadIndexRequest(ReadIndexRequest { term: w.term })
            }
            Wire::ReadIndexResponse(w) => Message::ReadIndexResponse(ReadIndexResponse {
                term: w.term,
                index: w.index,
            }),
        })
    }
}

#[cfg(test)]
mod tests;
