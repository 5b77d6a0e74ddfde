use rand::{Rng, SeedableRng};

use super::*;
use crate::raft::rpc::{ReadIndexRequest, ReadIndexResponse, SnapshotRequest};

fn entries() -> Vec<Entry> {
    let configuration = Configuration::with_learners(
        vec![
            Member::new("a", "http://a:1"),
            Member::new("b", "http://b:2"),
        ],
        vec![Member::new("c", "http://c:3")],
    )
    .unwrap();
    vec![
        Entry {
            index: 8,
            term: 3,
            payload: EntryPayload::Noop,
        },
        Entry {
            index: 9,
            term: 3,
            payload: EntryPayload::Command {
                command: Command::set("k", "v \"quoted\" \u{1} é"),
            },
        },
        Entry {
            index: 10,
            term: 3,
            payload: EntryPayload::Command {
                command: Command::Set {
                    key: "k2".into(),
                    value: "".into(),
                    if_mod_index: Some(0),
                    if_value: Some("old".into()),
                    stamp: Some(Stamp {
                        id: "idem".into(),
                        now_ms: 5,
                        expires_ms: 10,
                    }),
                },
            },
        },
        Entry {
            index: 11,
            term: 4,
            payload: EntryPayload::Command {
                command: Command::delete("k"),
            },
        },
        Entry {
            index: 12,
            term: 4,
            payload: EntryPayload::Command {
                command: Command::Delete {
                    key: "k".into(),
                    if_mod_index: Some(9),
                    stamp: None,
                },
            },
        },
        Entry {
            index: 13,
            term: 4,
            payload: EntryPayload::Config { configuration },
        },
    ]
}

/// One message of every kind, with optional fields both set and unset.
fn every_message() -> Vec<Message> {
    vec![
        Message::VoteRequest(VoteRequest {
            term: 4,
            candidate_id: "node-a".into(),
            last_log_index: 7,
            last_log_term: 3,
            pre_vote: true,
            transfer: false,
        }),
        Message::VoteRequest(VoteRequest {
            term: 4,
            candidate_id: "node-a".into(),
            last_log_index: 7,
            last_log_term: 3,
            pre_vote: false,
            transfer: true,
        }),
        Message::VoteResponse(VoteResponse {
            term: 4,
            granted: true,
            pre_vote: true,
        }),
        Message::AppendRequest(AppendRequest {
            term: 4,
            leader_id: "a".into(),
            leader_url: "http://a:1".into(),
            prev_log_index: 7,
            prev_log_term: 3,
            entries: entries(),
            leader_commit: 7,
            seq: 99,
        }),
        Message::AppendRequest(AppendRequest::default()),
        Message::AppendResponse(AppendResponse {
            term: 4,
            success: false,
            match_index: 0,
            seq: 99,
            reject_index: 7,
            conflict_term: Some(2),
            conflict_index: 5,
            node_id: Some("b".into()),
            lease_hold: true,
        }),
        Message::AppendResponse(AppendResponse::default()),
        Message::ReadIndexRequest(ReadIndexRequest { term: 7 }),
        Message::ReadIndexResponse(ReadIndexResponse {
            term: 7,
            index: 12_345,
        }),
        Message::SnapshotResponse(SnapshotResponse {
            term: 4,
            seq: 2,
            match_index: Some(100),
            next_offset: 0,
            busy: false,
        }),
        Message::SnapshotResponse(SnapshotResponse {
            term: 4,
            seq: 2,
            match_index: None,
            next_offset: 1 << 20,
            busy: true,
        }),
        Message::TimeoutNowRequest(TimeoutNowRequest {
            term: 4,
            leader_id: "a".into(),
        }),
        Message::TimeoutNowResponse(TimeoutNowResponse {
            term: 4,
            accepted: true,
        }),
    ]
}

#[test]
fn every_message_round_trips_in_both_formats() {
    for msg in every_message() {
        let kind = Kind::of(&msg).unwrap();
        for format in [Format::Json, Format::Binary] {
            let bytes = encode(&msg, format).unwrap();
            let back = decode(&bytes, format, kind).unwrap();
            assert_eq!(back, msg, "{format:?}");
        }
    }
}

#[test]
fn json_is_the_shape_it_always_was() {
    for msg in every_message() {
        let json = encode(&msg, Format::Json).unwrap();
        let old = match &msg {
            Message::VoteRequest(m) => serde_json::to_vec(m),
            Message::VoteResponse(m) => serde_json::to_vec(m),
            Message::AppendRequest(m) => serde_json::to_vec(m),
            Message::AppendResponse(m) => serde_json::to_vec(m),
            Message::SnapshotResponse(m) => serde_json::to_vec(m),
            Message::TimeoutNowRequest(m) => serde_json::to_vec(m),
            Message::TimeoutNowResponse(m) => serde_json::to_vec(m),
            Message::ReadIndexRequest(m) => serde_json::to_vec(m),
            Message::ReadIndexResponse(m) => serde_json::to_vec(m),
            Message::SnapshotRequest(_) => unreachable!(),
        }
        .unwrap();
        assert_eq!(json, old);
    }
}

#[test]
fn lease_hold_is_false_from_nodes_older_than_leases_and_implied_by_binary() {
    // A node older than leases answers JSON without `leaseHold`: it does not hold.
    let old = br#"{"term":4,"success":true,"matchIndex":7,"seq":9,"rejectIndex":0,"conflictTerm":null,"conflictIndex":0}"#;
    let Message::AppendResponse(r) = decode(old, Format::Json, Kind::AppendResponse).unwrap()
    else {
        panic!("kind")
    };
    assert!(!r.lease_hold);
    // A node that holds says so in JSON ...
    let holding = AppendResponse {
        term: 4,
        success: true,
        seq: 9,
        lease_hold: true,
        ..AppendResponse::default()
    };
    let json = encode(&Message::AppendResponse(holding.clone()), Format::Json).unwrap();
    assert!(String::from_utf8_lossy(&json).contains(r#""leaseHold":true"#));
    // ... and in binary (version 1, unchanged) it is implied by an answered `seq`: only nodes
    // that hold speak binary, and they answer a request they did not accept with `seq` 0.
    for seq in [0, 9] {
        let msg = Message::AppendResponse(AppendResponse {
            seq,
            lease_hold: seq != 0,
            ..holding.clone()
        });
        let bytes = encode(&msg, Format::Binary).unwrap();
        assert_eq!(
            decode(&bytes, Format::Binary, Kind::AppendResponse).unwrap(),
            msg
        );
    }
}

#[test]
fn read_index_messages_are_appended_after_version_1s_variants() {
    // Variants 0..=6 keep their indexes (the pinned test below); the read-index pair is 7, 8.
    let req = encode(
        &Message::ReadIndexRequest(ReadIndexRequest { term: 3 }),
        Format::Binary,
    );
    assert_eq!(req.unwrap(), vec![7, 3]);
    let resp = ReadIndexResponse {
        term: 3,
        index: 300,
    };
    let bytes = encode(&Message::ReadIndexResponse(resp), Format::Binary).unwrap();
    assert_eq!(bytes, vec![8, 3, 0xac, 0x02]);
    // The route decides the kind: an answer is not a request.
    assert!(decode(&bytes, Format::Binary, Kind::ReadIndexRequest).is_err());
}

#[test]
fn binary_format_version_1_is_pinned() {
    // A change of these bytes is a change of the wire format: it needs a new codec version.
    let msg = Message::AppendRequest(AppendRequest {
        term: 2,
        leader_id: "a".into(),
        leader_url: "u".into(),
        prev_log_index: 1,
        prev_log_term: 1,
        entries: vec![Entry {
            index: 2,
            term: 2,
            payload: EntryPayload::Command {
                command: Command::set("k", "v"),
            },
        }],
        leader_commit: 1,
        seq: 300,
    });
    let bytes = encode(&msg, Format::Binary).unwrap();
    assert_eq!(
        bytes,
        [
            2, // variant AppendRequest
            2, 1, b'a', 1, b'u', 1, 1, // term, leader id, leader url, prev index, prev term
            1, // one entry
            2, 2, 1, 0, 1, b'k', 1, b'v', 0, 0,
            0, // index, term, Command, Set, k, v, 3 × None
            1, 0xac, 0x02, // leader commit, seq 300 (varint)
        ]
    );
    let vote = encode(
        &Message::VoteResponse(VoteResponse {
            term: 1,
            granted: true,
            pre_vote: false,
        }),
        Format::Binary,
    )
    .unwrap();
    assert_eq!(vote, [1, 1, 1, 0]);
}

#[test]
fn binary_is_smaller_than_json_for_a_batch() {
    let msg = &every_message()[3];
    let json = encode(msg, Format::Json).unwrap();
    let bin = encode(msg, Format::Binary).unwrap();
    assert!(
        bin.len() * 2 < json.len(),
        "{} vs {}",
        bin.len(),
        json.len()
    );
}

#[test]
fn the_route_decides_the_kind() {
    let vote = encode(&every_message()[2], Format::Binary).unwrap();
    assert_eq!(
        decode(&vote, Format::Binary, Kind::AppendResponse),
        Err(CodecError::WrongKind {
            expected: Kind::AppendResponse,
            found: Kind::VoteResponse
        })
    );
    let chunk = Message::SnapshotRequest(SnapshotRequest::default());
    assert_eq!(
        encode(&chunk, Format::Binary),
        Err(CodecError::NotEncodable)
    );
    assert_eq!(encode(&chunk, Format::Json), Err(CodecError::NotEncodable));
}

#[test]
fn content_types() {
    assert_eq!(Format::of_content_type(None), Format::Json);
    assert_eq!(
        Format::of_content_type(Some(b"application/json")),
        Format::Json
    );
    assert_eq!(Format::of_content_type(Some(b"text/plain")), Format::Json);
    assert_eq!(
        Format::of_content_type(Some(b"Application/X-KVStore-Raft; v=1")),
        Format::Binary
    );
    assert_eq!(
        Format::of_content_type(Some(BINARY_CONTENT_TYPE.as_bytes())),
        Format::Binary
    );
}

/// The varint postcard writes for `n`.
fn varint(mut n: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(b);
            return out;
        }
        out.push(b | 0x80);
    }
}

#[test]
fn forged_lengths_are_refused_without_allocating_them() {
    // An AppendRequest whose leader id claims u64::MAX / 2 bytes.
    let mut forged = vec![2, 1];
    forged.extend(varint(u64::MAX / 2));
    forged.extend_from_slice(b"abc");
    assert!(matches!(
        decode(&forged, Format::Binary, Kind::AppendRequest),
        Err(CodecError::Binary(_))
    ));
    // A count of entries far above a batch: nothing is reserved beyond the bound.
    let mut forged = vec![2, 1, 1, b'a', 1, b'u', 1, 1];
    forged.extend(varint(u32::MAX as u64));
    assert!(decode(&forged, Format::Binary, Kind::AppendRequest).is_err());
    // A count within the bound but no entries behind it.
    let mut forged = vec![2, 1, 1, b'a', 1, b'u', 1, 1];
    forged.extend(varint(MAX_BATCH_ENTRIES as u64));
    assert!(decode(&forged, Format::Binary, Kind::AppendRequest).is_err());
    // A configuration of a million members.
    let mut forged = vec![2, 4, 1, b'a', 1, b'u', 1, 1, 1, 2, 4, 2];
    forged.extend(varint(1_000_000));
    assert!(decode(&forged, Format::Binary, Kind::AppendRequest).is_err());
    // A value whose length runs past the body.
    let mut forged = vec![2, 2, 1, b'a', 1, b'u', 1, 1, 1, 2, 2, 1, 0, 1, b'k'];
    forged.extend(varint(8 << 20));
    forged.extend_from_slice(b"short");
    assert!(decode(&forged, Format::Binary, Kind::AppendRequest).is_err());
    // Varints longer than a u64.
    let forged = [
        2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
    ];
    assert!(decode(&forged, Format::Binary, Kind::AppendRequest).is_err());
    // Unknown variants, trailing bytes, an empty body.
    assert!(decode(&[9], Format::Binary, Kind::VoteRequest).is_err());
    assert!(decode(&[], Format::Binary, Kind::VoteRequest).is_err());
    let mut trailing = encode(&every_message()[2], Format::Binary).unwrap();
    trailing.push(0);
    let err = decode(&trailing, Format::Binary, Kind::VoteResponse).unwrap_err();
    assert!(err.to_string().contains("trailing"), "{err}");
}

#[test]
fn invalid_configurations_and_utf8_are_refused() {
    // Two voters with the same id.
    let forged = [
        2, 4, 1, b'a', 1, b'u', 1, 1, 1, 2, 4, 2, 2, 1, b'x', 1, b'1', 1, b'x', 1, b'2', 0, 1, 0,
    ];
    let err = decode(&forged, Format::Binary, Kind::AppendRequest).unwrap_err();
    assert!(err.to_string().contains("configuration entry 2"), "{err}");
    // A leader id that is not UTF-8.
    let forged = [2, 1, 1, 0xff, 1, b'u', 1, 1, 0, 1, 0];
    assert!(decode(&forged, Format::Binary, Kind::AppendRequest).is_err());
}

#[test]
fn every_truncation_and_random_bytes_fail_cleanly() {
    for msg in every_message() {
        let kind = Kind::of(&msg).unwrap();
        let bytes = encode(&msg, Format::Binary).unwrap();
        for cut in 0..bytes.len() {
            assert!(
                decode(&bytes[..cut], Format::Binary, kind).is_err(),
                "{kind:?} cut at {cut} of {}",
                bytes.len()
            );
        }
        let json = encode(&msg, Format::Json).unwrap();
        for cut in 0..json.len() {
            assert!(decode(&json[..cut], Format::Json, kind).is_err());
        }
    }
    let mut rng = rand::rngs::SmallRng::seed_from_u64(16);
    let kinds = [
        Kind::VoteRequest,
        Kind::VoteResponse,
        Kind::AppendRequest,
        Kind::AppendResponse,
        Kind::SnapshotResponse,
        Kind::TimeoutNowRequest,
        Kind::TimeoutNowResponse,
    ];
    let valid = encode(&every_message()[3], Format::Binary).unwrap();
    for i in 0..20_000 {
        let bytes: Vec<u8> = if i % 2 == 0 {
            let n = rng.gen_range(0..64);
            (0..n).map(|_| rng.gen()).collect()
        } else {
            // A valid batch with a few bytes flipped.
            let mut b = valid.clone();
            for _ in 0..rng.gen_range(1..4) {
                let at = rng.gen_range(0..b.len());
                b[at] = rng.gen();
            }
            b
        };
        for kind in kinds {
            // Never a panic; whatever decodes re-encodes to a message of the same kind.
            if let Ok(msg) = decode(&bytes, Format::Binary, kind) {
                assert_eq!(Kind::of(&msg), Some(kind));
                let again = encode(&msg, Format::Binary).unwrap();
                assert_eq!(decode(&again, Format::Binary, kind).unwrap(), msg);
            }
        }
    }
}

#[test]
fn a_decoded_value_is_one_shared_allocation() {
    let msg = &every_message()[3];
    let Message::AppendRequest(r) = decode(
        &encode(msg, Format::Binary).unwrap(),
        Format::Binary,
        Kind::AppendRequest,
    )
    .unwrap() else {
        unreachable!()
    };
    let EntryPayload::Command {
        command: Command::Set { value, .. },
    } = &r.entries[1].payload
    else {
        unreachable!()
    };
    let copy = r.entries[1].clone();
    let EntryPayload::Command {
        command: Command::Set { value: again, .. },
    } = &copy.payload
    else {
        unreachable!()
    };
    assert!(
        Arc::ptr_eq(value, again),
        "cloning an entry shares its value"
    );
}
