//! Thesis §3.10 leadership transfer: the leader stops taking writes, brings the target up to
//! date, sends it TimeoutNow; the target campaigns at once, without a pre-vote, and voters
//! grant its vote even while they still hear from the leader. Abandoned after an election
//! timeout.

use super::*;

fn transfer(net: &mut World, i: usize, to: Option<&str>) -> Vec<Output> {
    net.step(
        i,
        Input::TransferLeadership {
            to: to.map(String::from),
        },
    )
}

fn timeout_now_in_flight(net: &World) -> Vec<usize> {
    net.requests_in_flight()
        .into_iter()
        .filter(|(_, _, m)| matches!(m, Message::TimeoutNowRequest(_)))
        .map(|(_, to, _)| to)
        .collect()
}

fn write(net: &mut World, i: usize, v: &str) {
    assert!(
        net.propose(i, set_cmd("k", v)).is_some(),
        "{i} takes writes"
    );
    net.deliver_all();
}

#[test]
fn s3_10_transfer_to_an_up_to_date_follower_while_the_lease_holds() {
    // Five nodes with pre-vote and check-quorum: every follower heard from n0 just now.
    let ids = ["n0", "n1", "n2", "n3", "n4"];
    let mut net = cluster(&ids, &[], &[], true, true);
    net.elect(0);
    write(&mut net, 0, "a");
    run(&mut net, 1);
    let out = transfer(&mut net, 0, Some("n1"));
    assert_eq!(out, [Output::TransferStarted { to: "n1".into() }]);
    assert_eq!(net.core(0).status().transfer.as_deref(), Some("n1"));
    assert_eq!(
        timeout_now_in_flight(&net),
        [1],
        "caught up: TimeoutNow at once"
    );
    net.deliver_all();
    // No tick passed: n1 campaigned at once, in the next term, and won votes from followers
    // that still hear from n0 (their lease holds: a plain vote request would be refused).
    assert_eq!(net.core(1).role(), Role::Leader);
    assert_eq!(net.core(1).term(), 2);
    assert_eq!(net.core(0).role(), Role::Follower);
    assert_eq!(net.core(0).status().transfer, None);
    write(&mut net, 1, "b");
    assert_eq!(net.core(0).leader().map(|l| l.id.as_str()), Some("n1"));
}

#[test]
fn s3_10_voters_in_a_lease_grant_a_transfer_vote_only() {
    let mut f = core_with("f", 2, true, true);
    f.step(Input::Request(heartbeat(3, "p0")));
    let req = |transfer| {
        Message::VoteRequest(VoteRequest {
            term: 4,
            candidate_id: peer(1),
            last_log_index: 0,
            last_log_term: 0,
            pre_vote: false,
            transfer,
        })
    };
    let out = f.step(Input::Request(req(false)));
    assert_eq!(*reply(&out), vote_resp(3, false), "the lease holds");
    let out = f.step(Input::Request(req(true)));
    assert_eq!(
        *reply(&out),
        vote_resp(4, true),
        "unless the leader handed over"
    );
    // The log check still applies.
    let mut g = node("g", 2, 3, log_with_terms(&[3]));
    let out = g.step(Input::Request(req(true)));
    assert_eq!(*reply(&out), vote_resp(4, false));
}

#[test]
fn s3_10_timeout_now_starts_an_election_at_once_without_pre_vote() {
    let mut f = core_with("f", 2, true, true);
    f.step(Input::Request(heartbeat(3, "p0")));
    let out = f.step(Input::Request(Message::TimeoutNowRequest(
        TimeoutNowRequest {
            term: 3,
            leader_id: peer(0),
        },
    )));
    assert_eq!(f.role(), Role::Candidate);
    assert_eq!(f.term(), 4);
    let votes: Vec<&VoteRequest> = out
        .iter()
        .filter_map(|o| match o {
            Output::Send {
                msg: Message::VoteRequest(r),
                ..
            } => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(votes.len(), 2);
    assert!(votes
        .iter()
        .all(|r| r.transfer && !r.pre_vote && r.term == 4));
    assert_eq!(
        *reply(&out),
        Message::TimeoutNowResponse(TimeoutNowResponse {
            term: 4,
            accepted: true
        })
    );
    // A stale one, or one to a node that is no voter, is refused.
    let out = f.step(Input::Request(Message::TimeoutNowRequest(
        TimeoutNowRequest {
            term: 3,
            leader_id: peer(0),
        },
    )));
    assert!(matches!(
        reply(&out),
        Message::TimeoutNowResponse(TimeoutNowResponse {
            accepted: false,
            ..
        })
    ));
    let mut l = member_core("l", conf(&["p0", "p1"], &["l"]), false, false);
    let out = l.step(Input::Request(Message::TimeoutNowRequest(
        TimeoutNowRequest {
            term: 0,
            leader_id: peer(0),
        },
    )));
    assert_eq!(l.role(), Role::Follower, "a learner ignores it");
    assert!(matches!(
        reply(&out),
        Message::TimeoutNowResponse(TimeoutNowResponse {
            accepted: false,
            ..
        })
    ));
}

#[test]
fn s3_10_a_timeout_now_from_a_node_that_does_not_lead_is_refused() {
    let mut f = core_with("f", 2, true, true);
    f.step(Input::Request(heartbeat(3, "p0")));
    let refused = |out: &[Output], term: Term| {
        assert_eq!(
            *reply(out),
            Message::TimeoutNowResponse(TimeoutNowResponse {
                term,
                accepted: false
            })
        );
    };
    // p1 does not lead term 3: p0 does, and f follows it.
    let out = f.step(Input::Request(Message::TimeoutNowRequest(
        TimeoutNowRequest {
            term: 3,
            leader_id: peer(1),
        },
    )));
    refused(&out, 3);
    assert_eq!(f.role(), Role::Follower);
    assert_eq!(f.leader().map(|l| l.id.as_str()), Some("p0"));
    // A higher term: adopted (as any message's), but no leader f follows sent it.
    let out = f.step(Input::Request(Message::TimeoutNowRequest(
        TimeoutNowRequest {
            term: 5,
            leader_id: peer(1),
        },
    )));
    refused(&out, 5);
    assert_eq!(f.role(), Role::Follower);
    assert!(
        !out.iter().any(|o| matches!(
            o,
            Output::Send {
                msg: Message::VoteRequest(_),
                ..
            }
        )),
        "no election"
    );
}

#[test]
fn s3_10_a_lagging_target_is_caught_up_first() {
    let mut net = cluster(&["n0", "n1", "n2"], &[], &[], false, false);
    net.elect(0);
    net.isolate(1);
    for v in ["a", "b", "c"] {
        write(&mut net, 0, v);
    }
    net.heal();
    let out = transfer(&mut net, 0, Some("n1"));
    assert_eq!(out, [Output::TransferStarted { to: "n1".into() }]);
    assert!(timeout_now_in_flight(&net).is_empty(), "it lags: not yet");
    net.deliver_all();
    assert_eq!(net.core(1).role(), Role::Leader);
    assert_eq!(net.core(1).term(), 2);
    // It had every entry of n0 before it campaigned (it could not have won otherwise: n0 and
    // n2 hold them), and its no-op follows them.
    assert_eq!(
        net.core(1).log().last_index(),
        5,
        "no-op, a, b, c, then its no-op"
    );
    assert_eq!(net.core(1).commit_index(), 5);
}

#[test]
fn s3_10_writes_are_refused_during_a_transfer_and_taken_again_once_it_is_abandoned() {
    let mut net = cluster(&["n0", "n1", "n2"], &[], &[], false, false);
    net.elect(0);
    write(&mut net, 0, "a");
    net.isolate(1);
    assert_eq!(
        transfer(&mut net, 0, Some("n1")),
        [Output::TransferStarted { to: "n1".into() }]
    );
    let out = net.step(0, Input::Propose(set_cmd("k", "b")));
    assert_eq!(out, [Output::ProposalRejected { leader: None }]);
    let out = net.step(
        0,
        Input::ChangeMembership(ConfigChange::Remove("n2".into())),
    );
    assert_eq!(
        out,
        [Output::ChangeRejected {
            error: MembershipError::TransferInProgress
        }]
    );
    // Another target: refused; the same: started again.
    let out = transfer(&mut net, 0, Some("n2"));
    assert_eq!(
        out,
        [Output::TransferRejected {
            error: MembershipError::TransferInProgress
        }]
    );
    assert_eq!(
        transfer(&mut net, 0, Some("n1")),
        [Output::TransferStarted { to: "n1".into() }]
    );
    // n1 is cut off: after an election timeout n0 gives up and takes writes again.
    for _ in 0..ET {
        net.tick(0);
        net.tick(2);
        net.deliver_all();
    }
    assert_eq!(net.core(0).role(), Role::Leader);
    assert_eq!(net.core(0).status().transfer, None);
    write(&mut net, 0, "b");
}

#[test]
fn s3_10_whom_leadership_can_go_to() {
    let mut net = cluster(&["n0", "n1", "n2"], &["n3"], &[], false, false);
    net.elect(0);
    write(&mut net, 0, "a");
    let rejected = |out: Vec<Output>| match out.as_slice() {
        [Output::TransferRejected { error }] => error.clone(),
        other => panic!("not a rejection: {other:?}"),
    };
    assert_eq!(
        rejected(transfer(&mut net, 0, Some("n9"))),
        MembershipError::Unknown("n9".into())
    );
    assert_eq!(
        rejected(transfer(&mut net, 0, Some("n3"))),
        MembershipError::NotAVoter("n3".into())
    );
    assert!(matches!(
        rejected(transfer(&mut net, 1, None)),
        MembershipError::NotLeader(Some(l)) if l.id == "n0"
    ));
    assert_eq!(
        transfer(&mut net, 0, Some("n0")),
        [Output::TransferStarted { to: "n0".into() }],
        "already there"
    );
    assert_eq!(net.core(0).status().transfer, None);
    // None: the most caught-up voter (n2, with n1 behind).
    net.isolate(1);
    write(&mut net, 0, "b");
    net.heal();
    assert_eq!(
        transfer(&mut net, 0, None),
        [Output::TransferStarted { to: "n2".into() }]
    );
    net.deliver_all();
    assert_eq!(net.core(2).role(), Role::Leader);
    // A lone voter has nobody to hand over to.
    let mut solo = core("solo", 0);
    solo.step(Input::Campaign);
    assert_eq!(
        solo.step(Input::TransferLeadership { to: None }),
        [Output::TransferRejected {
            error: MembershipError::NoCandidate
        }]
    );
}
