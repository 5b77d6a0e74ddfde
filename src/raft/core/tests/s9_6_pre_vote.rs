//! Thesis §9.6 pre-vote: a partitioned node cannot disrupt the cluster by bumping terms.

use super::*;

#[test]
fn s9_6_pre_vote_does_not_bump_terms() {
    let mut c = core_with("a", 2, true, false);
    let out = tick_until_campaign(&mut c);
    assert_eq!(c.role(), Role::PreCandidate);
    assert_eq!(c.term(), 0, "a pre-candidate keeps its term");
    assert_eq!(
        out,
        vec![
            Output::Send {
                to: peer(0),
                msg: pre_vote_req(1, "a")
            },
            Output::Send {
                to: peer(1),
                msg: pre_vote_req(1, "a")
            },
        ],
        "nothing is persisted for a pre-vote"
    );
    // A voter answers a pre-vote without changing its own term or vote.
    let mut v = core_with("v", 2, true, false);
    let out = v.step(Input::Request(pre_vote_req(1, "a")));
    assert_eq!(out, vec![Output::Reply(pre_vote_resp(1, true))]);
    assert_eq!(v.term(), 0);
    assert_eq!(v.status().voted_for, None);
    // With a majority of pre-votes the real election starts, in term 1.
    let out = c.step(Input::Response {
        from: peer(0),
        msg: pre_vote_resp(1, true),
    });
    assert_eq!(c.role(), Role::Candidate);
    assert_eq!(c.term(), 1);
    assert!(matches!(out[0], Output::SaveHardState(_)));
    assert_eq!(
        out[1],
        Output::Send {
            to: peer(0),
            msg: vote_req(1, "a", 0, 0)
        }
    );
}

#[test]
fn s9_6_a_partitioned_node_keeps_its_term_and_cannot_disrupt_the_leader() {
    // Node "p" is cut off: its pre-votes go unanswered, so its term stays put however long.
    let mut p = core_with("p", 2, true, true);
    for _ in 0..50 * ET {
        p.step(Input::Tick);
    }
    assert_eq!(p.term(), 0);
    assert_eq!(p.role(), Role::PreCandidate);
    // A follower of a healthy leader refuses its pre-vote (lease) and keeps its term.
    let mut f = core_with("f", 2, true, true);
    f.step(Input::Request(heartbeat(3, "L")));
    let out = f.step(Input::Request(pre_vote_req(4, "p")));
    assert_eq!(out, vec![Output::Reply(pre_vote_resp(3, false))]);
    assert_eq!(f.term(), 3);
    assert_eq!(f.leader().unwrap().id, "L");
    // When "p" hears the leader again it follows it.
    p.step(Input::Request(heartbeat(3, "L")));
    assert_eq!(p.role(), Role::Follower);
    assert_eq!(p.term(), 3);
}

#[test]
fn s9_6_pre_vote_rejected_by_a_majority_returns_to_follower() {
    let mut c = core_with("a", 2, true, false);
    tick_until_campaign(&mut c);
    c.step(Input::Response {
        from: peer(0),
        msg: pre_vote_resp(0, false),
    });
    c.step(Input::Response {
        from: peer(1),
        msg: pre_vote_resp(0, false),
    });
    assert_eq!(c.role(), Role::Follower);
    assert_eq!(c.term(), 0);
}
