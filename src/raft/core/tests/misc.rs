//! The rest: single-node clusters, duplicate ids, stale answers, malformed requests.

use super::*;

#[test]
fn single_node_cluster_becomes_leader_at_once() {
    let mut c = core("solo", 0);
    let out = c.step(Input::Campaign);
    assert_eq!(c.role(), Role::Leader);
    assert_eq!(c.term(), 1);
    let noop = Entry {
        index: 1,
        term: 1,
        payload: EntryPayload::Noop,
    };
    assert_eq!(
        out,
        vec![
            Output::SaveHardState(HardState {
                term: 1,
                voted_for: Some("solo".into())
            }),
            Output::PersistEntries(vec![noop.clone()]),
        ]
    );
    let out = c.step(Input::Persisted { index: 1 });
    assert_eq!(
        out,
        vec![Output::Apply(vec![noop])],
        "a lone leader commits its no-op as soon as it is durable"
    );
    // With pre-vote on, too.
    let mut c = core_with("solo", 0, true, true);
    c.step(Input::Campaign);
    assert_eq!(c.role(), Role::Leader);
    // And a lone leader never steps down for lack of a quorum.
    for _ in 0..10 * ET {
        c.step(Input::Tick);
    }
    assert_eq!(c.role(), Role::Leader);
}

#[test]
fn a_node_never_votes_for_or_follows_its_own_id() {
    let mut c = core("dup", 2);
    let out = c.step(Input::Request(vote_req(1, "dup", 0, 0)));
    assert_eq!(out, vec![Output::Reply(vote_resp(0, false))]);
    let out = c.step(Input::Request(heartbeat(1, "dup")));
    assert!(matches!(
        reply(&out),
        Message::AppendResponse(AppendResponse { success: false, .. })
    ));
    assert_eq!(c.term(), 0);
}

#[test]
fn stale_vote_responses_are_ignored() {
    let mut c = core("a", 4);
    tick_until_campaign(&mut c); // term 1
                                 // Time out again: term 2. A late grant from term 1 must not count.
    tick_until_campaign(&mut c);
    assert_eq!(c.term(), 2);
    for p in 0..3 {
        c.step(Input::Response {
            from: peer(p),
            msg: vote_resp(1, true),
        });
    }
    assert_eq!(c.role(), Role::Candidate);
    c.step(Input::Response {
        from: peer(0),
        msg: vote_resp(2, true),
    });
    c.step(Input::Response {
        from: peer(0),
        msg: vote_resp(2, true),
    });
    assert_eq!(
        c.role(),
        Role::Candidate,
        "one peer's duplicate grant counts once"
    );
    c.step(Input::Response {
        from: peer(3),
        msg: vote_resp(2, true),
    });
    assert_eq!(c.role(), Role::Leader);
}

#[test]
fn single_node_reads_and_writes_commit_at_once() {
    let mut c = core("solo", 0);
    c.step(Input::Campaign);
    c.step(Input::Persisted { index: 1 });
    let out = c.step(Input::Propose(set_cmd("k", "v")));
    assert_eq!(out[0], Output::Proposed { index: 2, term: 1 });
    assert!(matches!(&out[1], Output::PersistEntries(es) if es.len() == 1 && es[0].index == 2));
    assert_eq!(out.len(), 2, "nothing commits before the entry is durable");
    let out = c.step(Input::Persisted { index: 2 });
    assert!(matches!(&out[0], Output::Apply(es) if es.len() == 1 && es[0].index == 2));
    let out = c.step(Input::ReadIndex { id: 3 });
    assert_eq!(out, vec![Output::ReadReady { id: 3, index: 2 }]);
}

#[test]
fn malformed_append_entries_are_refused_without_panicking_or_changing_state() {
    let mut f = node("f", 1, 2, log_with_terms(&[1, 1, 2]));
    let e = |index, term| Entry {
        index,
        term,
        payload: EntryPayload::Noop,
    };
    let bad = [
        vec![e(5, 3)],          // a gap after prev
        vec![e(4, 3), e(6, 3)], // a gap inside
        vec![e(2, 3)],          // below prev
        vec![e(4, 9)],          // a term above the request's
        vec![e(4, 3), e(5, 2)], // terms going down
        vec![e(4, 1)],          // below prev's term
    ];
    for entries in bad {
        let out = f.step(Input::Request(Message::AppendRequest(AppendRequest {
            term: 3,
            leader_id: "L".into(),
            leader_url: "http://L".into(),
            prev_log_index: 3,
            prev_log_term: 2,
            entries: entries.clone(),
            leader_commit: 3,
            seq: 1,
        })));
        assert!(
            matches!(
                reply(&out),
                Message::AppendResponse(AppendResponse { success: false, .. })
            ),
            "{entries:?}"
        );
        assert_eq!(terms_of(f.log()), vec![1, 1, 2], "{entries:?}");
        assert_eq!(f.commit_index(), 0);
    }
    // A term near the top is ignored, so no arithmetic on it can saturate: the node keeps
    // its term and can still campaign.
    for term in [u64::MAX, crate::raft::rpc::MAX_WIRE_NUMBER + 1] {
        let mut c = core("top", 2);
        assert!(c.step(Input::Request(vote_req(term, "x", 0, 0))).is_empty());
        let forged = AppendRequest {
            term,
            leader_id: "x".into(),
            leader_url: "http://x".into(),
            ..Default::default()
        };
        assert!(c
            .step(Input::Request(Message::AppendRequest(forged)))
            .is_empty());
        assert_eq!((c.term(), c.leader()), (0, None));
        let out = tick_until_campaign(&mut c);
        assert!(
            out.iter().any(|o| matches!(
                o,
                Output::Send { msg: Message::VoteRequest(v), .. } if v.term == 1
            )),
            "{out:?}"
        );
    }
}
