//! §5.2 leader election: timeouts, votes, one vote per term, one leader per term.

use super::*;

#[test]
fn s5_2_follower_times_out_within_t_to_2t_and_campaigns() {
    let mut c = core("a", 2);
    let timeout = c.randomized_timeout();
    assert!((ET..2 * ET).contains(&timeout));
    for _ in 0..timeout - 1 {
        assert!(c.step(Input::Tick).is_empty());
    }
    let out = c.step(Input::Tick);
    assert_eq!(c.role(), Role::Candidate);
    assert_eq!(c.term(), 1);
    assert_eq!(
        out,
        vec![
            Output::SaveHardState(HardState {
                term: 1,
                voted_for: Some("a".into())
            }),
            Output::Send {
                to: peer(0),
                msg: vote_req(1, "a", 0, 0)
            },
            Output::Send {
                to: peer(1),
                msg: vote_req(1, "a", 0, 0)
            },
        ],
        "the vote for itself is persisted before any request leaves"
    );
}

#[test]
fn s5_2_candidate_with_a_majority_becomes_leader_and_sends_heartbeats() {
    let mut c = core("a", 2);
    tick_until_campaign(&mut c);
    let out = c.step(Input::Response {
        from: peer(1),
        msg: vote_resp(1, true),
    });
    assert_eq!(c.role(), Role::Leader);
    assert_eq!(
        c.leader(),
        Some(&LeaderInfo {
            id: "a".into(),
            url: "http://a".into()
        })
    );
    // §5.4.2/§8: the new leader appends a no-op of its term and sends it to everyone.
    let noop = Entry {
        index: 1,
        term: 1,
        payload: EntryPayload::Noop,
    };
    let append = |seq| {
        Message::AppendRequest(AppendRequest {
            term: 1,
            leader_id: "a".into(),
            leader_url: "http://a".into(),
            prev_log_index: 0,
            prev_log_term: 0,
            entries: vec![noop.clone()],
            leader_commit: 0,
            seq,
        })
    };
    assert_eq!(
        out,
        vec![
            Output::PersistEntries(vec![noop.clone()]),
            Output::Send {
                to: peer(0),
                msg: append(1)
            },
            Output::Send {
                to: peer(1),
                msg: append(2)
            },
        ]
    );
    // Heartbeats repeat every heartbeat interval.
    let out = c.step(Input::Tick);
    assert_eq!(out.len(), 2);
}

#[test]
fn s5_2_candidate_rejected_by_a_majority_returns_to_follower() {
    let mut c = core("a", 2);
    tick_until_campaign(&mut c);
    c.step(Input::Response {
        from: peer(0),
        msg: vote_resp(1, false),
    });
    assert_eq!(
        c.role(),
        Role::Candidate,
        "one rejection is not a majority of 3"
    );
    c.step(Input::Response {
        from: peer(1),
        msg: vote_resp(1, false),
    });
    assert_eq!(c.role(), Role::Follower);
    assert_eq!(c.term(), 1);
}

#[test]
fn s5_2_a_voter_grants_at_most_one_vote_per_term() {
    let mut c = core("v", 2);
    let out = c.step(Input::Request(vote_req(1, "a", 0, 0)));
    assert_eq!(
        out,
        vec![
            Output::SaveHardState(HardState {
                term: 1,
                voted_for: None
            }),
            Output::SaveHardState(HardState {
                term: 1,
                voted_for: Some("a".into())
            }),
            Output::Reply(vote_resp(1, true)),
        ],
        "the vote is durable before it is granted"
    );
    let out = c.step(Input::Request(vote_req(1, "b", 5, 5)));
    assert_eq!(out, vec![Output::Reply(vote_resp(1, false))]);
    // Asking again for the same candidate is idempotent.
    let out = c.step(Input::Request(vote_req(1, "a", 0, 0)));
    assert_eq!(out, vec![Output::Reply(vote_resp(1, true))]);
    // A new term frees the vote.
    let out = c.step(Input::Request(vote_req(2, "b", 0, 0)));
    assert_eq!(*reply(&out), vote_resp(2, true));
    assert_eq!(c.status().voted_for.as_deref(), Some("b"));
}

#[test]
fn s5_2_heartbeats_keep_a_follower_from_campaigning() {
    let mut c = core("f", 2);
    for _ in 0..10 * ET {
        let out = c.step(Input::Tick);
        assert!(out.is_empty(), "campaigned despite heartbeats: {out:?}");
        if c.election_elapsed >= ET / 2 {
            c.step(Input::Request(heartbeat(1, "L")));
        }
    }
    assert_eq!(c.role(), Role::Follower);
}

#[test]
fn s5_2_election_safety_at_most_one_leader_per_term_on_a_lossless_network() {
    // Five cores, every message delivered at once; many seeds. Split votes must resolve and
    // no term may ever have two leaders.
    for seed in 0..200u64 {
        let n = 5;
        let cores: Vec<RaftCore> = (0..n)
            .map(|i| {
                new_core(
                    cfg(&format!("n{i}"), n - 1, seed % 2 == 0, seed % 3 == 0),
                    HardState::default(),
                    RaftLog::new(),
                    seed * 31 + i as u64,
                )
            })
            .collect();
        let mut w = world(cores);
        let mut leaders_by_term: std::collections::HashMap<Term, String> = Default::default();
        let mut elected = false;
        for _ in 0..20 * ET {
            for i in 0..n {
                w.tick(i);
                w.deliver_all();
            }
            for i in 0..n {
                let c = w.core(i);
                if c.role() == Role::Leader {
                    let prev = leaders_by_term.insert(c.term(), c.cfg.id.clone());
                    assert!(
                        prev.is_none() || prev.as_deref() == Some(c.cfg.id.as_str()),
                        "seed {seed}: two leaders in term {}",
                        c.term()
                    );
                    elected = true;
                }
            }
        }
        assert!(elected, "seed {seed}: no leader elected");
        let leaders = (0..n).filter(|i| w.core(*i).role() == Role::Leader).count();
        assert_eq!(leaders, 1, "seed {seed}: one stable leader at the end");
    }
}

#[test]
fn s5_2_a_refused_vote_in_a_higher_term_does_not_reset_the_election_timer() {
    // Figure 2: only a granted vote or the current leader's AppendEntries reset the timer. A
    // candidate whose log cannot win must not keep the node whose log can from campaigning.
    let mut c = node("a", 2, 1, log_with_terms(&[1, 1]));
    let timeout = c.randomized_timeout();
    for _ in 0..timeout - 2 {
        assert!(c.step(Input::Tick).is_empty());
    }
    let out = c.step(Input::Request(vote_req(5, "p0", 1, 1)));
    assert_eq!(
        reply(&out),
        &vote_resp(5, false),
        "its log is behind: refused"
    );
    assert_eq!(
        (c.term(), c.role()),
        (5, Role::Follower),
        "the term is adopted"
    );
    assert!(c.step(Input::Tick).is_empty());
    c.step(Input::Tick);
    assert_eq!(
        (c.role(), c.term()),
        (Role::Candidate, 6),
        "the timer ran on through the refused request"
    );
}
