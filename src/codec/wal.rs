//! The write-ahead log's byte format: records encoded and decoded, every byte under a checksum,
//! and the rule that tells a torn tail (what a crash leaves) from damage. Pure: bytes in, bytes
//! or records out; [`crate::storage::wal`] owns the files, this module never touches one.
//!
//! A segment is an 8-byte header (magic + format version 2) followed by records (little endian):
//!
//! ```text
//! len u32 | kind u8 | header_crc u32 | payload (len bytes) | crc u32
//! ```
//!
//! `header_crc` is the CRC-32 of `len` and `kind`, and `crc` the CRC-32 of `len`, `kind` and the
//! payload, so every byte of a record is covered, its length first: a damaged length is seen as
//! damage, never mistaken for the end of the log.

use std::sync::Arc;

use crate::raft::core::MAX_MEMBERS;
use crate::raft::log::{Entry, EntryPayload};
use crate::raft::{Configuration, HardState, LogIndex, Member};
use crate::store::command::{MAX_IDEMPOTENCY_KEY_BYTES, MAX_KEY_BYTES, MAX_VALUE_BYTES};
use crate::store::{Command, Stamp};

pub(crate) const MAGIC: &[u8; 8] = b"KVWAL\x00\x00\x02";

/// The magic of format 1 (records without a header checksum), refused with a clear message.
pub(crate) const MAGIC_V1: &[u8; 8] = b"KVWAL\x00\x00\x01";

pub(crate) const HEADER_LEN: u64 = 8;

/// `len u32 | kind u8 | header_crc u32`.
pub(crate) const RECORD_HEADER_LEN: usize = 9;

pub(crate) const RECORD_TRAILER_LEN: usize = 4;

pub(crate) const KIND_HARD_STATE: u8 = 1;

pub(crate) const KIND_ENTRY: u8 = 2;

pub(crate) const KIND_RESET: u8 = 3;

/// The last record of a segment that rolled over: the log continues in segment `next`.
pub(crate) const KIND_CONTINUES: u8 = 4;

/// Largest record accepted on replay; a larger length field is corruption. The largest record a
/// node writes is an entry setting the largest key and value any node accepts with an `ifValue`
/// (a second value) and an idempotency stamp: index and term (16 bytes), a tag (1), three
/// lengths (12), the key, the value and the ifValue, flags (1), an ifModIndex (8), the stamp
/// (a length, at most [`MAX_IDEMPOTENCY_KEY_BYTES`], two numbers: 148); a hard state holds a
/// node id (at most 128 bytes); the rest are a few numbers. Rounded up, with room to spare.
pub const MAX_RECORD_BYTES: u32 =
    (MAX_KEY_BYTES + 2 * MAX_VALUE_BYTES + MAX_IDEMPOTENCY_KEY_BYTES + 256) as u32;

/// Entry tags (the byte after index and term). 1 and 2 are the original commands, written
/// unchanged when a command has no precondition and no stamp; 4 and 5 carry them.
const TAG_NOOP: u8 = 0;
const TAG_SET: u8 = 1;
const TAG_DELETE: u8 = 2;
const TAG_CONFIG: u8 = 3;
const TAG_SET_EXT: u8 = 4;
const TAG_DELETE_EXT: u8 = 5;

/// Flags of tags 4 and 5: which optional fields follow, in this order.
const HAS_IF_MOD_INDEX: u8 = 1;
const HAS_IF_VALUE: u8 = 2;
const HAS_STAMP: u8 = 4;

fn put_extras(
    buf: &mut Vec<u8>,
    if_mod_index: Option<u64>,
    if_value: Option<&str>,
    stamp: Option<&Stamp>,
) {
    let flags = if_mod_index.map_or(0, |_| HAS_IF_MOD_INDEX)
        | if_value.map_or(0, |_| HAS_IF_VALUE)
        | stamp.map_or(0, |_| HAS_STAMP);
    buf.push(flags);
    if let Some(m) = if_mod_index {
        buf.extend_from_slice(&m.to_le_bytes());
    }
    if let Some(v) = if_value {
        put_str(buf, v);
    }
    if let Some(st) = stamp {
        put_str(buf, &st.id);
        buf.extend_from_slice(&st.now_ms.to_le_bytes());
        buf.extend_from_slice(&st.expires_ms.to_le_bytes());
    }
}

/// Zeros left by a power loss start on a block boundary; 512 bytes is the smallest block.
pub(crate) const ZERO_TAIL_ALIGN: usize = 512;

/// One thing written to the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    HardState(HardState),
    Entry(Entry),
    /// A snapshot from the leader replaced the whole log: every entry written before is gone,
    /// and the log continues after `index` (whose term is `term`), which the snapshot holds.
    Reset {
        index: LogIndex,
        term: u64,
    },
}

impl From<Entry> for Record {
    fn from(e: Entry) -> Self {
        Record::Entry(e)
    }
}

/// Whether hard state `new` may be written after `old` (terms never go back; within a term a
/// vote is never forgotten).
pub(crate) fn supersedes(new: &HardState, old: &HardState) -> bool {
    new.term > old.term
        || (new.term == old.term && (old.voted_for.is_none() || new.voted_for == old.voted_for))
}

/// Encode one whole record (header, payload, trailer) onto `buf`.
pub fn encode_record(rec: &Record, buf: &mut Vec<u8>) {
    let start = buf.len();
    buf.extend_from_slice(&[0; RECORD_HEADER_LEN]);
    let kind = encode_payload(rec, buf);
    seal(buf, start, kind);
}

/// Encode the end-of-segment marker: this segment continues in segment `next`.
pub(crate) fn encode_continues(next: u64, buf: &mut Vec<u8>) {
    let start = buf.len();
    buf.extend_from_slice(&[0; RECORD_HEADER_LEN]);
    buf.extend_from_slice(&next.to_le_bytes());
    seal(buf, start, KIND_CONTINUES);
}

/// Fill in the header of the record starting at `start` (its payload follows) and append the
/// trailing checksum.
pub(crate) fn seal(buf: &mut Vec<u8>, start: usize, kind: u8) {
    let len = (buf.len() - start - RECORD_HEADER_LEN) as u32;
    buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
    buf[start + 4] = kind;
    let hcrc = crc32fast::hash(&buf[start..start + 5]);
    buf[start + 5..start + 9].copy_from_slice(&hcrc.to_le_bytes());
    let crc = record_crc(&buf[start..]);
    buf.extend_from_slice(&crc.to_le_bytes());
}

pub(crate) fn put_str(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(&(s.len() as u32).to_le_bytes());
    buf.extend_from_slice(s.as_bytes());
}

pub(crate) fn encode_payload(rec: &Record, buf: &mut Vec<u8>) -> u8 {
    match rec {
        Record::HardState(hs) => {
            buf.extend_from_slice(&hs.term.to_le_bytes());
            match &hs.voted_for {
                Some(v) => {
                    buf.push(1);
                    put_str(buf, v);
                }
                None => buf.push(0),
            }
            KIND_HARD_STATE
        }
        Record::Entry(e) => {
            buf.extend_from_slice(&e.index.to_le_bytes());
            buf.extend_from_slice(&e.term.to_le_bytes());
            match &e.payload {
                EntryPayload::Noop => buf.push(TAG_NOOP),
                EntryPayload::Command {
                    command:
                        Command::Set {
                            key,
                            value,
                            if_mod_index,
                            if_value,
                            stamp,
                        },
                } => {
                    let plain = if_mod_index.is_none() && if_value.is_none() && stamp.is_none();
                    buf.push(if plain { TAG_SET } else { TAG_SET_EXT });
                    put_str(buf, key);
                    put_str(buf, value);
                    if !plain {
                        put_extras(buf, *if_mod_index, if_value.as_deref(), stamp.as_ref());
                    }
                }
                EntryPayload::Command {
                    command:
                        Command::Delete {
                            key,
                            if_mod_index,
                            stamp,
                        },
                } => {
                    let plain = if_mod_index.is_none() && stamp.is_none();
                    buf.push(if plain { TAG_DELETE } else { TAG_DELETE_EXT });
                    put_str(buf, key);
                    if !plain {
                        put_extras(buf, *if_mod_index, None, stamp.as_ref());
                    }
                }
                EntryPayload::Config { configuration } => {
                    buf.push(TAG_CONFIG);
                    for members in [configuration.voters(), configuration.learners()] {
                        buf.extend_from_slice(&(members.len() as u32).to_le_bytes());
                        for m in members {
                            put_str(buf, &m.id);
                            put_str(buf, &m.url);
                        }
                    }
                }
            }
            KIND_ENTRY
        }
        Record::Reset { index, term } => {
            buf.extend_from_slice(&index.to_le_bytes());
            buf.extend_from_slice(&term.to_le_bytes());
            KIND_RESET
        }
    }
}

/// Reads fields out of a payload; every error is a short description.
pub(crate) struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        if self.0.len() < n {
            return Err("record payload too short".into());
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u64(&mut self) -> Result<u64, String> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes(b.try_into().map_err(|_| "bad u64")?))
    }
    /// A count (u32) of members, each an id and a URL; at most [`MAX_MEMBERS`].
    fn members(&mut self) -> Result<Vec<Member>, String> {
        let b = self.take(4)?;
        let n = u32::from_le_bytes(b.try_into().map_err(|_| "bad count")?) as usize;
        if n > MAX_MEMBERS {
            return Err(format!(
                "a configuration of {n} members (at most {MAX_MEMBERS})"
            ));
        }
        (0..n)
            .map(|_| Ok(Member::new(self.string()?, self.string()?)))
            .collect()
    }
    fn string(&mut self) -> Result<String, String> {
        self.bounded(usize::MAX, "a string")
    }
    /// A string of at most `max` bytes; `what` names it in errors.
    fn bounded(&mut self, max: usize, what: &str) -> Result<String, String> {
        let b = self.take(4)?;
        let n = u32::from_le_bytes(b.try_into().map_err(|_| "bad length")?) as usize;
        if n > max {
            return Err(format!(
                "{what} of {n} bytes, more than any node accepts ({max})"
            ));
        }
        let s = self.take(n)?;
        String::from_utf8(s.to_vec()).map_err(|_| format!("{what} is not UTF-8"))
    }
    fn key(&mut self) -> Result<String, String> {
        self.bounded(MAX_KEY_BYTES, "a key")
    }
    fn value(&mut self) -> Result<String, String> {
        self.bounded(MAX_VALUE_BYTES, "a value")
    }
    /// A value, copied once into the allocation the entry and the map will share.
    fn shared_value(&mut self) -> Result<Arc<str>, String> {
        let b = self.take(4)?;
        let n = u32::from_le_bytes(b.try_into().map_err(|_| "bad length")?) as usize;
        if n > MAX_VALUE_BYTES {
            return Err(format!(
                "a value of {n} bytes, more than any node accepts ({MAX_VALUE_BYTES})"
            ));
        }
        let s = self.take(n)?;
        std::str::from_utf8(s)
            .map(Arc::from)
            .map_err(|_| "a value is not UTF-8".to_owned())
    }
    /// The flags and optional fields of tags 4 and 5 (`set`: whether an ifValue may be there).
    #[allow(clippy::type_complexity)]
    fn extras(
        &mut self,
        set: bool,
    ) -> Result<(Option<u64>, Option<String>, Option<Stamp>), String> {
        let flags = self.u8()?;
        let known = HAS_IF_MOD_INDEX | HAS_STAMP | if set { HAS_IF_VALUE } else { 0 };
        if flags & !known != 0 || flags == 0 {
            return Err(format!("bad command flags {flags:#04x}"));
        }
        let if_mod_index = (flags & HAS_IF_MOD_INDEX != 0)
            .then(|| self.u64())
            .transpose()?;
        let if_value = (flags & HAS_IF_VALUE != 0)
            .then(|| self.value())
            .transpose()?;
        let stamp = (flags & HAS_STAMP != 0)
            .then(|| -> Result<Stamp, String> {
                let id = self.bounded(MAX_IDEMPOTENCY_KEY_BYTES, "an idempotency key")?;
                Ok(Stamp {
                    id,
                    now_ms: self.u64()?,
                    expires_ms: self.u64()?,
                })
            })
            .transpose()?;
        Ok((if_mod_index, if_value, stamp))
    }
}

pub(crate) fn decode(kind: u8, payload: &[u8]) -> Result<Record, String> {
    let mut c = Cursor(payload);
    let rec = match kind {
        KIND_HARD_STATE => {
            let term = c.u64()?;
            let voted_for = match c.u8()? {
                0 => None,
                1 => Some(c.string()?),
                t => return Err(format!("bad vote tag {t}")),
            };
            Record::HardState(HardState { term, voted_for })
        }
        KIND_ENTRY => {
            let index = c.u64()?;
            let term = c.u64()?;
            let payload = match c.u8()? {
                TAG_NOOP => EntryPayload::Noop,
                TAG_SET => EntryPayload::Command {
                    command: Command::set(c.key()?, c.shared_value()?),
                },
                TAG_DELETE => EntryPayload::Command {
                    command: Command::delete(c.key()?),
                },
                TAG_SET_EXT => {
                    let (key, value) = (c.key()?, c.shared_value()?);
                    let (if_mod_index, if_value, stamp) = c.extras(true)?;
                    EntryPayload::Command {
                        command: Command::Set {
                            key,
                            value,
                            if_mod_index,
                            if_value,
                            stamp,
                        },
                    }
                }
                TAG_DELETE_EXT => {
                    let key = c.key()?;
                    let (if_mod_index, _, stamp) = c.extras(false)?;
                    EntryPayload::Command {
                        command: Command::Delete {
                            key,
                            if_mod_index,
                            stamp,
                        },
                    }
                }
                TAG_CONFIG => {
                    let voters = c.members()?;
                    let learners = c.members()?;
                    let configuration = Configuration::with_learners(voters, learners)
                        .map_err(|e| format!("bad configuration entry: {e}"))?;
                    EntryPayload::Config { configuration }
                }
                t => return Err(format!("bad entry tag {t}")),
            };
            Record::Entry(Entry {
                index,
                term,
                payload,
            })
        }
        KIND_RESET => Record::Reset {
            index: c.u64()?,
            term: c.u64()?,
        },
        k => return Err(format!("unknown record kind {k}")),
    };
    if !c.0.is_empty() {
        return Err("trailing bytes in record".into());
    }
    Ok(rec)
}

/// One record read from a segment, or why none could be.
pub(crate) enum RecordRead<'a> {
    /// A record that checks out: kind, payload and its total length on disk.
    Ok {
        kind: u8,
        payload: &'a [u8],
        len: usize,
    },
    /// Fewer bytes than a record header remain.
    ShortHeader,
    /// The header's checksum fails.
    BadHeader,
    /// The header checks out but the record runs past the end of the data.
    PastEnd,
    /// The header checks out, the record fits, its checksum fails.
    BadRecord,
}

pub(crate) fn read_record(data: &[u8], pos: usize) -> RecordRead<'_> {
    let rest = &data[pos..];
    if rest.len() < RECORD_HEADER_LEN {
        return RecordRead::ShortHeader;
    }
    let word = |at: usize| u32::from_le_bytes([rest[at], rest[at + 1], rest[at + 2], rest[at + 3]]);
    let len = word(0);
    if crc32fast::hash(&rest[..5]) != word(5) || len > MAX_RECORD_BYTES {
        return RecordRead::BadHeader;
    }
    let total = RECORD_HEADER_LEN + len as usize + RECORD_TRAILER_LEN;
    if total > rest.len() {
        return RecordRead::PastEnd;
    }
    let payload = &rest[RECORD_HEADER_LEN..RECORD_HEADER_LEN + len as usize];
    let mut h = crc32fast::Hasher::new();
    h.update(&rest[..5]);
    h.update(payload);
    if h.finalize() != word(total - RECORD_TRAILER_LEN) {
        return RecordRead::BadRecord;
    }
    RecordRead::Ok {
        kind: rest[4],
        payload,
        len: total,
    }
}

/// Whether the bytes from `pos` (where no valid record could be read) to the end of the last
/// segment are what a crash leaves (see the module docs); if not, why not. Only zeros from
/// `pos` to the end are the caller's to see first: unused (preallocated) space, not a torn
/// record (`storage::wal`).
pub(crate) fn torn_tail(
    data: &[u8],
    pos: usize,
    read: &RecordRead<'_>,
) -> Result<(), &'static str> {
    let (limit, why) = match read {
        RecordRead::ShortHeader | RecordRead::PastEnd => return Ok(()),
        RecordRead::Ok { .. } => return Err("a valid record"),
        // Torn only if the header itself was never fully written.
        RecordRead::BadHeader => (pos + RECORD_HEADER_LEN, "record header checksum mismatch"),
        // Torn only if the zeros start inside this record.
        RecordRead::BadRecord => (
            read_record_end(data, pos).unwrap_or(data.len()),
            "record checksum mismatch",
        ),
    };
    // A power loss leaves zeros from a block boundary to the end of the file.
    let zeros_from = data.len() - data.iter().rev().take_while(|b| **b == 0).count();
    let boundary = zeros_from.max(pos).next_multiple_of(ZERO_TAIL_ALIGN);
    if boundary >= data.len() || boundary >= limit {
        return Err(why);
    }
    // When the zeros start inside the trailing checksum, everything it covers was written:
    // the bytes of it written before the boundary must be right, or this is damage.
    if matches!(read, RecordRead::BadRecord) {
        let trailer = limit - RECORD_TRAILER_LEN;
        if boundary > trailer {
            let expected = record_crc(&data[pos..trailer]).to_le_bytes();
            let written = boundary - trailer;
            if data[trailer..boundary] != expected[..written] {
                return Err(why);
            }
        }
    }
    Ok(())
}

/// The trailing checksum of a record whose header and payload are `bytes`.
pub(crate) fn record_crc(bytes: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&bytes[..5]);
    h.update(&bytes[RECORD_HEADER_LEN..]);
    h.finalize()
}

/// Where the record at `pos` ends according to its header, if the header checks out.
pub(crate) fn read_record_end(data: &[u8], pos: usize) -> Option<usize> {
    let rest = data.get(pos..)?;
    if rest.len() < RECORD_HEADER_LEN {
        return None;
    }
    let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
    let hcrc = u32::from_le_bytes([rest[5], rest[6], rest[7], rest[8]]);
    (crc32fast::hash(&rest[..5]) == hcrc)
        .then_some(pos + RECORD_HEADER_LEN + len as usize + RECORD_TRAILER_LEN)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::log::Entry;

    fn entry(command: Command) -> Record {
        Record::Entry(Entry {
            index: 7,
            term: 3,
            payload: EntryPayload::Command { command },
        })
    }

    fn payload_of(rec: &Record) -> (u8, Vec<u8>) {
        let mut buf = Vec::new();
        let kind = encode_payload(rec, &mut buf);
        (kind, buf)
    }

    fn stamp() -> Option<Stamp> {
        Some(Stamp {
            id: "req-1".into(),
            now_ms: 1_700_000_000_000,
            expires_ms: 1_700_000_600_000,
        })
    }

    fn new_commands() -> Vec<Command> {
        vec![
            Command::Set {
                key: "k é".into(),
                value: "v".into(),
                if_mod_index: Some(0),
                if_value: None,
                stamp: None,
            },
            Command::Set {
                key: "k".into(),
                value: "v".into(),
                if_mod_index: None,
                if_value: Some("".into()),
                stamp: stamp(),
            },
            Command::Set {
                key: "k".into(),
                value: "v".into(),
                if_mod_index: Some(12),
                if_value: Some("old".into()),
                stamp: stamp(),
            },
            Command::Delete {
                key: "k".into(),
                if_mod_index: Some(3),
                stamp: None,
            },
            Command::Delete {
                key: "k".into(),
                if_mod_index: None,
                stamp: stamp(),
            },
        ]
    }

    #[test]
    fn old_commands_keep_their_tags_and_bytes() {
        let (_, set) = payload_of(&entry(Command::set("k", "v")));
        let mut want = 7u64.to_le_bytes().to_vec();
        want.extend_from_slice(&3u64.to_le_bytes());
        want.push(1);
        want.extend_from_slice(&1u32.to_le_bytes());
        want.push(b'k');
        want.extend_from_slice(&1u32.to_le_bytes());
        want.push(b'v');
        assert_eq!(set, want, "tag 1, as before issue #15");
        let (_, del) = payload_of(&entry(Command::delete("k")));
        assert_eq!(del[16], 2);
        assert_eq!(
            decode(KIND_ENTRY, &set).unwrap(),
            entry(Command::set("k", "v"))
        );
        assert_eq!(
            decode(KIND_ENTRY, &del).unwrap(),
            entry(Command::delete("k"))
        );
    }

    #[test]
    fn new_commands_round_trip_and_every_flipped_byte_is_caught() {
        for c in new_commands() {
            let rec = entry(c);
            let (kind, payload) = payload_of(&rec);
            assert!(matches!(payload[16], TAG_SET_EXT | TAG_DELETE_EXT));
            assert_eq!(decode(kind, &payload).unwrap(), rec);
            let mut buf = Vec::new();
            encode_record(&rec, &mut buf);
            for at in 0..buf.len() {
                let mut bad = buf.clone();
                bad[at] ^= 0x10;
                assert!(
                    !matches!(read_record(&bad, 0), RecordRead::Ok { .. }),
                    "a flip at byte {at} went unnoticed"
                );
            }
            // Cut anywhere: the payload alone no longer decodes.
            for len in 17..payload.len() {
                assert!(decode(kind, &payload[..len]).is_err(), "cut at {len}");
            }
        }
    }

    #[test]
    fn out_of_bounds_lengths_and_flags_are_refused_with_a_clear_message() {
        let head = |tag: u8| {
            let mut b = vec![0u8; 16];
            b.push(tag);
            b
        };
        let mut b = head(TAG_SET);
        b.extend_from_slice(&((MAX_KEY_BYTES + 1) as u32).to_le_bytes());
        assert!(decode(KIND_ENTRY, &b).unwrap_err().contains("a key of"));
        let mut b = head(TAG_SET_EXT);
        put_str(&mut b, "k");
        b.extend_from_slice(&((MAX_VALUE_BYTES + 1) as u32).to_le_bytes());
        assert!(decode(KIND_ENTRY, &b).unwrap_err().contains("a value of"));
        let mut b = head(TAG_DELETE_EXT);
        put_str(&mut b, "k");
        b.push(HAS_STAMP);
        b.extend_from_slice(&((MAX_IDEMPOTENCY_KEY_BYTES + 1) as u32).to_le_bytes());
        assert!(decode(KIND_ENTRY, &b)
            .unwrap_err()
            .contains("an idempotency key of"));
        let mut b = head(TAG_DELETE_EXT);
        put_str(&mut b, "k");
        b.push(HAS_IF_VALUE);
        assert!(decode(KIND_ENTRY, &b).unwrap_err().contains("flags"));
        let mut b = head(TAG_SET_EXT);
        put_str(&mut b, "k");
        put_str(&mut b, "v");
        b.push(0);
        assert!(decode(KIND_ENTRY, &b).unwrap_err().contains("flags"));
    }
}
