//! §5.4 safety: the election restriction, Figure 8, stale leaders, a leader's own fsync.

use super::*;

#[test]
fn s5_4_1_vote_denied_to_a_candidate_with_a_less_up_to_date_log() {
    let mut log = RaftLog::new();
    log.append(1, EntryPayload::Noop);
    log.append(2, EntryPayload::Noop);
    let mut c = new_core(
        cfg("v", 2, false, false),
        HardState {
            term: 2,
            voted_for: None,
        },
        log,
        1,
    );
    // Lower last term, though longer.
    let out = c.step(Input::Request(vote_req(3, "a", 9, 1)));
    assert_eq!(*reply(&out), vote_resp(3, false));
    assert_eq!(
        c.term(),
        3,
        "the higher term is adopted even when the vote is denied"
    );
    // Same last term, shorter.
    let out = c.step(Input::Request(vote_req(4, "b", 1, 2)));
    assert_eq!(*reply(&out), vote_resp(4, false));
    // Same last term, as long: granted.
    let out = c.step(Input::Request(vote_req(5, "c", 2, 2)));
    assert_eq!(*reply(&out), vote_resp(5, true));
}

#[test]
fn s5_4_2_figure_8_entries_of_earlier_terms_are_not_committed_by_counting_replicas() {
    // S1 leads in term 4 with (1,1) (2,2) and its no-op (3,4); S2 and S3 reach index 2.
    let mut s1 = node("s1", 4, 3, log_with_terms(&[1, 2]));
    s1.step(Input::Campaign);
    for p in 0..2 {
        s1.step(Input::Response {
            from: peer(p),
            msg: vote_resp(4, true),
        });
    }
    assert_eq!(s1.role(), Role::Leader);
    assert_eq!(s1.term(), 4);
    assert_eq!(terms_of(s1.log()), vec![1, 2, 4]);
    s1.step(Input::Persisted { index: 3 }); // its own copy of the no-op is durable
    let ack = |match_index| {
        Message::AppendResponse(AppendResponse {
            term: 4,
            success: true,
            match_index,
            ..Default::default()
        })
    };
    for p in 0..2 {
        s1.step(Input::Response {
            from: peer(p),
            msg: ack(2),
        });
    }
    assert_eq!(
        s1.commit_index(),
        0,
        "(2,2) is on a majority but of an earlier term: not committed by counting"
    );
    // Once the term-4 entry is on a majority, everything up to it commits.
    let out = s1.step(Input::Response {
        from: peer(0),
        msg: ack(3),
    });
    assert_eq!(
        s1.commit_index(),
        0,
        "index 3 is on two of five, index 2 (term 2) still may not be counted"
    );
    assert!(out.iter().all(|o| !matches!(o, Output::Apply(_))));
    let out = s1.step(Input::Response {
        from: peer(1),
        msg: ack(3),
    });
    assert_eq!(s1.commit_index(), 3);
    assert!(out.contains(&Output::Apply(s1.log().slice(1, 3))));
}

#[test]
fn s5_4_a_stale_leader_cannot_commit() {
    let mut net = three_with_leader();
    // b and c move on to term 5 without a (as if a had been partitioned).
    net.core_mut(1).step(Input::Request(vote_req(5, "c", 1, 1)));
    net.core_mut(2).step(Input::Request(vote_req(5, "b", 1, 1)));
    net.drop_in_flight();
    let before = net.core(0).commit_index();
    let out = net.step(0, Input::Propose(set_cmd("k", "lost")));
    assert!(matches!(out[0], Output::Proposed { index: 2, term: 1 }));
    net.deliver_all();
    assert_eq!(
        net.core(0).role(),
        Role::Follower,
        "the answers' higher term deposes it"
    );
    assert_eq!(
        net.core(0).commit_index(),
        before,
        "its entry never commits"
    );
    assert!(net.applied(0).iter().all(|e| e.index < 2));
}

#[test]
fn s5_leader_counts_itself_toward_a_majority_only_after_its_own_fsync() {
    let mut l = core("L", 2);
    tick_until_campaign(&mut l);
    l.step(Input::Response {
        from: peer(0),
        msg: vote_resp(1, true),
    });
    assert_eq!(l.role(), Role::Leader);
    let out = l.step(Input::Propose(set_cmd("k", "v")));
    assert!(out.contains(&Output::Proposed { index: 2, term: 1 }));
    // One follower holds both entries; the leader's own copies are not durable yet.
    l.step(Input::Response {
        from: peer(0),
        msg: Message::AppendResponse(AppendResponse {
            term: 1,
            success: true,
            match_index: 2,
            ..Default::default()
        }),
    });
    assert_eq!(
        l.commit_index(),
        0,
        "one follower alone is not a majority of 3"
    );
    let out = l.step(Input::Persisted { index: 2 });
    assert_eq!(l.commit_index(), 2);
    assert!(matches!(&out[0], Output::Apply(es) if es.len() == 2));
}
