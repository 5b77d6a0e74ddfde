//! §5.3 log replication: batches, consistency check, conflict hints, persist before acknowledging.

use super::*;

#[test]
fn s5_3_leader_replicates_commits_on_majority_and_all_apply_in_order() {
    let mut net = three_with_leader();
    for i in 0..5 {
        let out = net.step(0, Input::Propose(set_cmd("k", &i.to_string())));
        assert_eq!(
            out,
            vec![Output::Proposed {
                index: i + 2,
                term: 1
            }],
            "index 1 is the leader's no-op"
        );
    }
    net.deliver_all();
    // Heartbeats carry the final commit index to the followers.
    net.step(0, Input::Tick);
    net.deliver_all();
    for n in 0..3 {
        assert_eq!(net.core(n).commit_index(), 6, "node {n}");
        let idx: Vec<_> = net.applied(n).iter().map(|e| e.index).collect();
        assert_eq!(
            idx,
            vec![1, 2, 3, 4, 5, 6],
            "node {n} applies each entry once, in order"
        );
        assert_eq!(net.applied(n), net.applied(0));
    }
}

#[test]
fn s5_3_a_proposal_on_a_follower_is_rejected_with_the_leader() {
    let mut net = world(vec![
        node("a", 1, 0, RaftLog::new()),
        node("b", 1, 0, RaftLog::new()),
    ]);
    net.elect(0);
    let out = net.step(1, Input::Propose(set_cmd("k", "v")));
    assert_eq!(
        out,
        vec![Output::ProposalRejected {
            leader: Some(LeaderInfo {
                id: "a".into(),
                url: "http://a".into()
            })
        }]
    );
}

#[test]
fn s5_3_figure_7_every_follower_log_is_made_to_match_the_leaders_with_few_round_trips() {
    let leader_terms = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6];
    let followers: [(&str, &[Term], Term); 6] = [
        ("a", &[1, 1, 1, 4, 4, 5, 5, 6, 6], 6),
        ("b", &[1, 1, 1, 4], 4),
        ("c", &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6], 6),
        ("d", &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7], 7),
        ("e", &[1, 1, 1, 4, 4, 4, 4], 4),
        ("f", &[1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3], 3),
    ];
    for (name, terms, term) in followers {
        // The leader wins with the vote of a helper that holds its log; the follower may
        // refuse (c and d have logs at least as up to date).
        let mut net = world(vec![
            node("L", 2, 7, log_with_terms(&leader_terms)),
            node("H", 2, 7, log_with_terms(&leader_terms)),
            node(name, 2, term, log_with_terms(terms)),
        ]);
        net.elect(0);
        net.step(0, Input::Tick);
        net.deliver_all();
        let mut want = leader_terms.to_vec();
        want.push(8); // the new leader's no-op
        assert_eq!(terms_of(net.core(2).log()), want, "follower ({name})");
        assert!(
            net.appends_received(2) <= 6,
            "follower ({name}) needed {} AppendEntries: fast back-off skips whole terms",
            net.appends_received(2)
        );
        assert_eq!(net.core(2).commit_index(), 11, "follower ({name})");
    }
}

#[test]
fn s5_3_inconsistent_append_is_rejected_with_conflict_hints() {
    let mut f = node("f", 1, 2, log_with_terms(&[1, 1, 2, 2]));
    let req = |prev_log_index, prev_log_term| {
        Message::AppendRequest(AppendRequest {
            term: 3,
            leader_id: "L".into(),
            leader_url: "http://L".into(),
            prev_log_index,
            prev_log_term,
            seq: 9,
            ..Default::default()
        })
    };
    // Different term at prev: the follower names its term there and where that term starts.
    let out = f.step(Input::Request(req(4, 3)));
    assert_eq!(
        *reply(&out),
        Message::AppendResponse(AppendResponse {
            term: 3,
            success: false,
            seq: 9,
            reject_index: 4,
            conflict_term: Some(2),
            conflict_index: 3,
            node_id: Some("f".into()),
            ..Default::default()
        })
    );
    // Log too short: the follower names one past its end.
    let out = f.step(Input::Request(req(9, 3)));
    assert_eq!(
        *reply(&out),
        Message::AppendResponse(AppendResponse {
            term: 3,
            success: false,
            seq: 9,
            reject_index: 9,
            conflict_term: None,
            conflict_index: 5,
            node_id: Some("f".into()),
            ..Default::default()
        })
    );
    assert_eq!(
        terms_of(f.log()),
        vec![1, 1, 2, 2],
        "a rejected append changes no entry"
    );
}

#[test]
fn s5_3_conflicting_entries_are_truncated_and_replaced() {
    let mut f = node("f", 1, 2, log_with_terms(&[1, 1, 2, 2]));
    let out = f.step(Input::Request(Message::AppendRequest(AppendRequest {
        term: 3,
        leader_id: "L".into(),
        leader_url: "http://L".into(),
        prev_log_index: 2,
        prev_log_term: 1,
        entries: vec![Entry {
            index: 3,
            term: 3,
            payload: EntryPayload::Noop,
        }],
        leader_commit: 3,
        seq: 1,
    })));
    assert!(matches!(
        reply(&out),
        Message::AppendResponse(AppendResponse {
            success: true,
            match_index: 3,
            ..
        })
    ));
    assert_eq!(
        terms_of(f.log()),
        vec![1, 1, 3],
        "index 4 (term 2) is gone too"
    );
    assert_eq!(f.commit_index(), 3);
    assert!(matches!(&out[0], Output::SaveHardState(_)));
    let applied: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            Output::Apply(es) => Some(es.iter().map(|e| (e.index, e.term)).collect::<Vec<_>>()),
            _ => None,
        })
        .collect();
    assert_eq!(applied, vec![vec![(1, 1), (2, 1), (3, 3)]]);
}

#[test]
fn s5_3_a_follower_persists_new_entries_before_it_acknowledges_them() {
    let mut f = node("f", 1, 1, log_with_terms(&[1]));
    let e = Entry {
        index: 2,
        term: 1,
        payload: EntryPayload::Noop,
    };
    let out = f.step(Input::Request(Message::AppendRequest(AppendRequest {
        term: 1,
        leader_id: "L".into(),
        leader_url: "http://L".into(),
        prev_log_index: 1,
        prev_log_term: 1,
        entries: vec![e.clone()],
        leader_commit: 0,
        seq: 4,
    })));
    let persist = out
        .iter()
        .position(|o| *o == Output::PersistEntries(vec![e.clone()]))
        .expect("the new entry is persisted");
    let reply = out
        .iter()
        .position(|o| matches!(o, Output::Reply(_)))
        .expect("an acknowledgement");
    assert!(persist < reply, "persist before acknowledging: {out:?}");
    // An entry it already holds is not written again.
    let out = f.step(Input::Request(Message::AppendRequest(AppendRequest {
        term: 1,
        leader_id: "L".into(),
        leader_url: "http://L".into(),
        prev_log_index: 1,
        prev_log_term: 1,
        entries: vec![e],
        leader_commit: 0,
        seq: 5,
    })));
    assert!(
        !out.iter().any(|o| matches!(o, Output::PersistEntries(_))),
        "{out:?}"
    );
}

/// Commands proposed together (the actor gathers the writes that arrive while it is busy) get
/// one entry and one `Proposed` each, in order, but one `PersistEntries` and one AppendEntries
/// per follower for all of them; on a follower, each is rejected with the leader.
#[test]
fn s5_3_commands_proposed_together_are_persisted_and_sent_together() {
    let mut net = three_with_leader();
    net.deliver_all();
    let c = net.core_mut(0);
    let cmds = (0..3).map(|i| set_cmd("k", &i.to_string())).collect();
    let out = c.step(Input::ProposeBatch(cmds));
    let proposed: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            Output::Proposed { index, term } => Some((*index, *term)),
            _ => None,
        })
        .collect();
    assert_eq!(proposed, [(2, 1), (3, 1), (4, 1)]);
    let persisted: Vec<Vec<LogIndex>> = out
        .iter()
        .filter_map(|o| match o {
            Output::PersistEntries(es) => Some(es.iter().map(|e| e.index).collect()),
            _ => None,
        })
        .collect();
    assert_eq!(persisted, [vec![2, 3, 4]], "one write for the three");
    let mut sent: Vec<(NodeId, Vec<LogIndex>)> = out
        .iter()
        .filter_map(|o| match o {
            Output::Send {
                to,
                msg: Message::AppendRequest(r),
            } => Some((to.clone(), r.entries.iter().map(|e| e.index).collect())),
            _ => None,
        })
        .collect();
    sent.sort();
    let followers: Vec<NodeId> = c.peers.clone();
    assert_eq!(
        sent,
        followers
            .into_iter()
            .map(|p| (p, vec![2, 3, 4]))
            .collect::<Vec<_>>(),
        "one AppendEntries per follower for the three"
    );

    let mut f = core("b", 2);
    let cmds = (0..2).map(|i| set_cmd("k", &i.to_string())).collect();
    let out = f.step(Input::ProposeBatch(cmds));
    assert_eq!(
        out,
        vec![
            Output::ProposalRejected { leader: None },
            Output::ProposalRejected { leader: None }
        ],
        "a follower rejects each command"
    );
}

/// The AppendEntries with entries in `out`: (to, indexes carried, seq).
fn appends(out: &[Output]) -> Vec<(NodeId, Vec<LogIndex>, u64)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send {
                to,
                msg: Message::AppendRequest(r),
            } if !r.entries.is_empty() => Some((
                to.clone(),
                r.entries.iter().map(|e| e.index).collect(),
                r.seq,
            )),
            _ => None,
        })
        .collect()
}

/// `to`'s success answer to the request `seq`, its log now matching up to `match_index`.
fn answered(c: &mut RaftCore, to: &NodeId, seq: u64, match_index: LogIndex) -> Vec<Output> {
    let term = c.term();
    c.step(Input::Response {
        from: to.clone(),
        msg: Message::AppendResponse(AppendResponse {
            term,
            success: true,
            match_index,
            seq,
            ..Default::default()
        }),
    })
}

/// Flow control once a follower's log matches: while a batch is in flight to it, a few small
/// proposals wait and then leave together with its answer (one request and one fsync on the
/// follower for all of them); a backlog of `PIPELINE_MIN_ENTRIES` is pipelined at once.
#[test]
fn s5_3_small_batches_wait_for_the_one_in_flight_and_a_backlog_is_pipelined() {
    let mut c = core("a", 2);
    tick_until_campaign(&mut c);
    let mut won = Vec::new();
    for p in c.peers.clone() {
        let term = c.term();
        won.extend(c.step(Input::Response {
            from: p,
            msg: vote_resp(term, true),
        }));
    }
    let (p0, p1) = (peer(0), peer(1));
    // The new leader's no-op (index 1) probes each follower, one request at a time: a write
    // proposed meanwhile waits.
    let probes = appends(&won);
    assert_eq!(probes.len(), 2, "{won:?}");
    let held = appends(&c.step(Input::ProposeBatch(vec![set_cmd("k", "0")])));
    assert_eq!(held, [], "probing: one request at a time");
    // Both answer: replicating, and the write goes out.
    let mut sent = Vec::new();
    for (to, ix, seq) in &probes {
        assert_eq!(ix, &[1]);
        sent.extend(appends(&answered(&mut c, to, *seq, 1)));
    }
    assert_eq!(
        sent.iter()
            .map(|(to, ix, _)| (to.clone(), ix.clone()))
            .collect::<Vec<_>>(),
        [(p0.clone(), vec![2]), (p1.clone(), vec![2])],
        "the write proposed while probing goes out once the log matches"
    );
    let in_flight_p0 = sent[0].2;

    // Two more small proposals while index 2 is in flight to both: held.
    for v in ["1", "2"] {
        let out = c.step(Input::ProposeBatch(vec![set_cmd("k", v)]));
        assert_eq!(
            appends(&out),
            [],
            "a small batch waits for the one in flight"
        );
    }
    // p0 answers: everything that waited for it leaves in one request.
    let out = answered(&mut c, &p0, in_flight_p0, 2);
    let to_p0 = appends(&out);
    assert_eq!(
        to_p0
            .iter()
            .map(|(to, ix, _)| (to.clone(), ix.clone()))
            .collect::<Vec<_>>(),
        [(p0.clone(), vec![3, 4])]
    );

    // A backlog is worth pipelining: it goes out at once to both, though each has a batch in
    // flight (p0: 3..=4, p1: 2).
    let n = PIPELINE_MIN_ENTRIES;
    let cmds = (0..n).map(|i| set_cmd("k", &i.to_string())).collect();
    let out = c.step(Input::ProposeBatch(cmds));
    let last = 4 + n as LogIndex;
    let got: Vec<_> = appends(&out)
        .into_iter()
        .map(|(to, ix, _)| (to, ix[0], *ix.last().unwrap()))
        .collect();
    assert_eq!(got, [(p0.clone(), 5, last), (p1.clone(), 3, last)]);
}
