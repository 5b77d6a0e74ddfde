//! Thesis §6.4.1 leases (`lease.rs`): a leader serves reads locally only within a lease proved
//! by a majority's answers to a round it started, after committing an entry of its term; every
//! node refuses votes within the hold, by its clock (not its ticks); transfers end the lease.

use super::*;

/// The hold: the election timeout, in microseconds (10 ticks of 100 ms).
const HOLD: u64 = 1_000_000;

fn timing() -> LeaseTiming {
    LeaseTiming {
        hold_us: HOLD,
        serve: true,
    }
}

/// A node with peers `p0`, `p1`, pre-vote and check-quorum on, leases on, its clock at 0.
fn leased(id: &str) -> RaftCore {
    let mut c = core_with(id, 2, true, true);
    c.set_now(0);
    c.set_lease_timing(Some(timing()));
    c
}

/// The `seq` of the AppendEntries sent to `to` in `out`, if any.
fn seq_to(out: &[Output], to: &str) -> Option<u64> {
    out.iter().find_map(|o| match o {
        Output::Send {
            to: t,
            msg: Message::AppendRequest(r),
        } if t == to => Some(r.seq),
        _ => None,
    })
}

/// A follower's acknowledgement of request `seq`, holding for the leader since.
fn ack(term: Term, seq: u64, match_index: LogIndex) -> Message {
    Message::AppendResponse(AppendResponse {
        term,
        success: true,
        match_index,
        seq,
        lease_hold: true,
        ..Default::default()
    })
}

/// The same acknowledgement from a node older than leases: it does not say it holds.
fn old_ack(term: Term, seq: u64, match_index: LogIndex) -> Message {
    Message::AppendResponse(AppendResponse {
        term,
        success: true,
        match_index,
        seq,
        ..Default::default()
    })
}

/// Elect `c` at clock `now` (after its start hold); returns the outputs of its election with
/// the no-op not yet committed.
fn elect_at(c: &mut RaftCore, now: u64) -> Vec<Output> {
    c.set_now(now);
    tick_until_campaign(c);
    assert_eq!(c.role(), Role::PreCandidate);
    c.step(Input::Response {
        from: peer(0),
        msg: pre_vote_resp(1, true),
    });
    let out = c.step(Input::Response {
        from: peer(0),
        msg: vote_resp(1, true),
    });
    assert_eq!(c.role(), Role::Leader);
    c.step(Input::Persisted { index: 1 });
    out
}

#[test]
fn s6_4_1_a_node_does_not_campaign_within_its_start_hold() {
    let mut c = leased("a");
    for _ in 0..5 * ET {
        assert!(c.step(Input::Tick).is_empty(), "no campaign while holding");
    }
    c.set_now(HOLD);
    tick_until_campaign(&mut c);
    assert_eq!(c.role(), Role::PreCandidate);
}

#[test]
fn s6_4_1_lease_needs_a_majority_answer_and_the_noop_committed() {
    let mut c = leased("a");
    let out = elect_at(&mut c, HOLD);
    assert_eq!(c.lease_read(HOLD), None, "nothing answered yet");
    let seq = seq_to(&out, "p0").expect("the no-op goes to p0");
    // p0 answers the election's round: a majority, and the no-op is committed.
    c.set_now(HOLD + 10);
    c.step(Input::Response {
        from: peer(0),
        msg: ack(1, seq, 1),
    });
    assert_eq!(c.commit_index(), 1);
    let lease = timing().lease_us();
    let read = c.lease_read(HOLD + 10).expect("lease held");
    assert_eq!(read.index, 1);
    assert_eq!(read.until_us, HOLD + lease, "runs from the round's start");
    assert!(c.lease_read(HOLD + lease - 1).is_some());
    assert_eq!(c.lease_read(HOLD + lease), None, "expired");
    // The lease is shorter than the hold by the drift bound and the margin.
    assert!(lease < HOLD * 9 / 11);
}

#[test]
fn s6_4_1_answers_from_nodes_that_do_not_hold_never_make_a_lease() {
    // A rolling upgrade: p0 and p1 run a version older than leases (no hold, no `leaseHold`
    // in their answers). They commit the leader's entries and prove it for ReadIndex, but a
    // restarted old node may vote at once, so their answers must not make a lease.
    let mut c = leased("a");
    let out = elect_at(&mut c, HOLD);
    let s0 = seq_to(&out, "p0").expect("sent");
    let s1 = seq_to(&out, "p1").expect("sent");
    c.set_now(HOLD + 10);
    c.step(Input::Response {
        from: peer(0),
        msg: old_ack(1, s0, 1),
    });
    c.step(Input::Response {
        from: peer(1),
        msg: old_ack(1, s1, 1),
    });
    assert_eq!(c.commit_index(), 1, "old answers still commit");
    assert_eq!(c.lease_read(HOLD + 10), None, "but make no lease");
    // Later rounds answered by the old nodes: still none. Once p1 is upgraded (it holds), its
    // answer with the leader's own makes a majority that holds: the lease comes back.
    let mut now = HOLD;
    let mut upgraded = false;
    for round in 0..10 {
        now += 100_000;
        c.set_now(now);
        let out = c.step(Input::Tick);
        for (i, p) in ["p0", "p1"].into_iter().enumerate() {
            if let Some(s) = seq_to(&out, p) {
                let msg = if i == 1 && round >= 5 {
                    upgraded = true;
                    ack(1, s, 1)
                } else {
                    old_ack(1, s, 1)
                };
                c.step(Input::Response { from: peer(i), msg });
            }
        }
        if !upgraded {
            assert_eq!(
                c.lease_read(now),
                None,
                "round {round}: no holding majority"
            );
        }
    }
    assert!(upgraded, "heartbeats went out");
    assert!(c.lease_read(now).is_some(), "a majority holds again");
}

#[test]
fn s6_4_1_requests_refused_unaccepted_are_answered_with_seq_0_and_no_hold() {
    // A follower that refuses a request it did not accept (malformed, or not from the leader
    // of its term) must not let that answer count toward any proof of leadership.
    let mut f = leased("f");
    f.set_now(HOLD);
    let request = |seq, entries| {
        Message::AppendRequest(AppendRequest {
            term: 1,
            leader_id: "L".into(),
            leader_url: "http://L".into(),
            entries,
            seq,
            ..Default::default()
        })
    };
    let gap = vec![Entry {
        index: 5,
        term: 1,
        payload: EntryPayload::Noop,
    }];
    let out = f.step(Input::Request(request(7, gap)));
    let Message::AppendResponse(resp) = reply(&out) else {
        panic!("not an AppendEntries answer: {out:?}");
    };
    assert!(!resp.success);
    assert_eq!(
        (resp.seq, resp.lease_hold),
        (0, false),
        "refused unaccepted"
    );
    // A request it accepts is answered with its seq and the hold.
    let out = f.step(Input::Request(request(8, vec![])));
    let Message::AppendResponse(resp) = reply(&out) else {
        panic!("not an AppendEntries answer: {out:?}");
    };
    assert_eq!((resp.seq, resp.lease_hold), (8, true));
}

#[test]
fn s6_4_1_no_lease_before_an_entry_of_the_term_is_committed() {
    let mut c = leased("a");
    let out = elect_at(&mut c, HOLD);
    let seq = seq_to(&out, "p0").expect("the no-op goes to p0");
    // p0 answers but does not hold the no-op: a majority heard the leader, nothing committed.
    c.step(Input::Response {
        from: peer(0),
        msg: Message::AppendResponse(AppendResponse {
            term: 1,
            success: false,
            seq,
            reject_index: 0,
            ..Default::default()
        }),
    });
    assert_eq!(c.commit_index(), 0);
    assert_eq!(c.lease_read(HOLD + 1), None);
}

#[test]
fn s6_4_1_heartbeat_rounds_renew_the_lease() {
    let mut c = leased("a");
    let out = elect_at(&mut c, HOLD);
    let seq = seq_to(&out, "p0").expect("sent");
    c.step(Input::Response {
        from: peer(0),
        msg: ack(1, seq, 1),
    });
    let lease = timing().lease_us();
    // Later heartbeats, each answered by p1 only (with the leader, a majority).
    let mut now = HOLD;
    for _ in 0..20 {
        now += 100_000;
        c.set_now(now);
        let out = c.step(Input::Tick);
        if let Some(s) = seq_to(&out, "p1") {
            c.set_now(now + 5_000);
            c.step(Input::Response {
                from: peer(1),
                msg: ack(1, s, 1),
            });
        }
    }
    assert_eq!(c.role(), Role::Leader);
    let read = c.lease_read(now + 5_000).expect("renewed");
    assert_eq!(read.until_us, now + lease);
}

#[test]
fn s6_4_1_a_transfer_ends_the_lease_for_the_term() {
    let mut c = leased("a");
    let out = elect_at(&mut c, HOLD);
    let seq = seq_to(&out, "p0").expect("sent");
    c.step(Input::Response {
        from: peer(0),
        msg: ack(1, seq, 1),
    });
    assert!(c.lease_read(HOLD + 1).is_some());
    let out = c.step(Input::TransferLeadership { to: Some(peer(0)) });
    assert!(matches!(out[0], Output::TransferStarted { .. }));
    assert_eq!(
        c.lease_read(HOLD + 1),
        None,
        "no lease reads once a transfer started"
    );
    // Even after the transfer is abandoned, in this term.
    let mut now = HOLD;
    for _ in 0..3 * ET {
        now += 100_000;
        c.set_now(now);
        let out = c.step(Input::Tick);
        for p in [0, 1] {
            if let Some(s) = seq_to(&out, &peer(p)) {
                c.step(Input::Response {
                    from: peer(p),
                    msg: ack(1, s, 1),
                });
            }
        }
    }
    assert_eq!(c.role(), Role::Leader);
    assert_eq!(c.status().transfer, None, "abandoned");
    assert_eq!(c.lease_read(now), None);
}

#[test]
fn s6_4_1_lease_reads_off_serves_none_but_still_holds() {
    let mut c = core_with("a", 2, true, true);
    c.set_lease_timing(Some(LeaseTiming {
        hold_us: HOLD,
        serve: false,
    }));
    let out = elect_at(&mut c, HOLD);
    let seq = seq_to(&out, "p0").expect("sent");
    c.step(Input::Response {
        from: peer(0),
        msg: ack(1, seq, 1),
    });
    assert_eq!(c.commit_index(), 1);
    assert_eq!(c.lease_read(HOLD + 1), None);
    let mut f = core_with("f", 2, true, true);
    f.set_lease_timing(Some(LeaseTiming {
        hold_us: HOLD,
        serve: false,
    }));
    f.set_now(HOLD / 2);
    let out = f.step(Input::Request(pre_vote_req(1, "x")));
    assert_eq!(out, vec![Output::Reply(pre_vote_resp(0, false))]);
}

#[test]
fn s6_4_1_follower_holds_by_the_clock_even_when_ticks_come_in_a_burst() {
    let mut f = leased("f");
    f.set_now(5 * HOLD);
    f.step(Input::Request(heartbeat(1, "L")));
    // Ticks that queued up while the process was busy all fire at once.
    for _ in 0..3 * ET {
        f.step(Input::Tick);
    }
    assert_eq!(f.role(), Role::Follower, "no campaign within the hold");
    for req in [pre_vote_req(2, "x"), vote_req(2, "x", 0, 0)] {
        let out = f.step(Input::Request(req));
        assert!(
            matches!(
                out.last(),
                Some(Output::Reply(Message::VoteResponse(VoteResponse {
                    granted: false,
                    ..
                })))
            ),
            "refused within the hold: {out:?}"
        );
    }
    assert_eq!(f.term(), 1);
    f.set_now(6 * HOLD);
    let out = f.step(Input::Request(pre_vote_req(2, "x")));
    assert_eq!(out, vec![Output::Reply(pre_vote_resp(2, true))]);
}

#[test]
fn s6_4_1_a_restarted_node_holds_from_its_start() {
    // Leader contact before the crash is forgotten; the start hold stands in for it.
    let mut f = leased("f");
    assert_eq!(f.leader(), None);
    let out = f.step(Input::Request(vote_req(2, "x", 0, 0)));
    assert_eq!(out, vec![Output::Reply(vote_resp(0, false))]);
    f.set_now(HOLD);
    let out = f.step(Input::Request(vote_req(2, "x", 0, 0)));
    assert!(out.contains(&Output::Reply(vote_resp(2, true))));
}

#[test]
fn s6_4_1_transfer_votes_pass_the_hold() {
    let mut f = leased("f");
    f.set_now(HOLD);
    f.step(Input::Request(heartbeat(1, "L")));
    let mut req = VoteRequest {
        term: 2,
        candidate_id: "x".into(),
        last_log_index: 0,
        last_log_term: 0,
        pre_vote: false,
        transfer: true,
    };
    let out = f.step(Input::Request(Message::VoteRequest(req.clone())));
    assert!(out.contains(&Output::Reply(vote_resp(2, true))));
    req.term = 3;
    req.transfer = false;
    let out = f.step(Input::Request(Message::VoteRequest(req)));
    assert_eq!(
        out.last(),
        Some(&Output::Reply(vote_resp(2, false))),
        "a transfer vote does not end the hold for others"
    );
}

#[test]
fn s6_4_1_configuration_change_drops_the_lease() {
    let mut c = leased("a");
    let out = elect_at(&mut c, HOLD);
    let seq = seq_to(&out, "p0").expect("sent");
    c.step(Input::Response {
        from: peer(0),
        msg: ack(1, seq, 1),
    });
    assert!(c.lease_read(HOLD + 1).is_some());
    c.set_configuration(members(&["a", "p0", "p1", "p2", "p3"]));
    assert_eq!(c.lease_read(HOLD + 1), None);
}

/// Clocks at different rates (real time in µs; each node's clock is `real · rate`): a leader
/// that proved its lease with a follower's answer stops serving before that follower grants
/// any vote, for every pair of rates within the drift bound, and a worst-case timing: the
/// follower processes the round at the instant the leader started it.
#[test]
fn s6_4_1_lease_ends_before_the_hold_for_clock_rates_within_the_bound() {
    let rates = [0.90, 0.95, 1.0, 1.05, 1.10];
    for &rl in &rates {
        for &rf in &rates {
            let (lease_end, hold_end) = race(rl, rf);
            assert!(
                lease_end < hold_end,
                "leader rate {rl}, follower rate {rf}: lease until {lease_end} µs, votes from {hold_end} µs"
            );
        }
    }
    // Outside the bound (one clock 30% fast, the other 30% slow) the promise does not hold:
    // this is the assumption, not a property of the code.
    let (lease_end, hold_end) = race(0.7, 1.3);
    assert!(lease_end >= hold_end);
}

fn pre_vote(term: Term) -> VoteRequest {
    match pre_vote_req(term, "x") {
        Message::VoteRequest(r) => r,
        _ => unreachable!(),
    }
}

/// Real times (µs) at which the leader's last lease read is served and the follower first
/// grants a pre-vote, with a leader clock at `rl` and a follower clock at `rf` times real time.
fn race(rl: f64, rf: f64) -> (u64, u64) {
    let clock = |real: u64, rate: f64| (real as f64 * rate) as u64;
    let mut l = leased("a");
    let mut f = core_with("q", 2, true, true);
    f.set_lease_timing(Some(timing()));
    // Elect `a` at real time 2·HOLD (past every start hold), the no-op committed.
    let t0 = 2 * HOLD;
    let out = elect_at(&mut l, clock(t0, rl));
    let seq = seq_to(&out, "p0").expect("sent");
    let req = out
        .iter()
        .find_map(|o| match o {
            Output::Send { to, msg } if to == "p0" => Some(msg.clone()),
            _ => None,
        })
        .expect("sent");
    f.set_now(clock(t0, rf));
    let _ = f.step(Input::Request(req));
    // Its ticks run out at once (a burst): only the clock keeps it from voting.
    for _ in 0..ET {
        f.step(Input::Tick);
    }
    l.step(Input::Response {
        from: peer(0),
        msg: ack(1, seq, 1),
    });
    let (mut lease_end, mut hold_end) = (0, 0);
    let mut real = t0;
    while real < t0 + 2 * HOLD {
        real += 1_000;
        if l.lease_read(clock(real, rl)).is_some() {
            lease_end = real;
        }
        if hold_end == 0 {
            f.set_now(clock(real, rf));
            let out = f.step(Input::Request(Message::VoteRequest(VoteRequest {
                last_log_index: 1,
                last_log_term: 1,
                ..pre_vote(2)
            })));
            if out.contains(&Output::Reply(pre_vote_resp(2, true))) {
                hold_end = real;
            }
        }
    }
    assert!(
        lease_end > t0 && hold_end > t0,
        "lease_end {lease_end} hold_end {hold_end}"
    );
    (lease_end, hold_end)
}
