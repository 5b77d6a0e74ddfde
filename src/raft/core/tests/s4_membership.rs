//! Thesis §4 membership change: single-server changes, each configuration in force as soon
//! as it is in a log; learners; promotion; removal of followers and of the leader; one change
//! at a time; the errata (a new leader commits an entry of its term first); configurations
//! through truncation, compaction and snapshots; provisional ids learned from answers.

use std::collections::VecDeque;

use super::*;
use crate::raft::core::io::learner_budget;

fn change(net: &mut World, i: usize, c: ConfigChange) -> Vec<Output> {
    net.step(i, Input::ChangeMembership(c))
}

fn proposed(out: &[Output]) -> Option<LogIndex> {
    out.iter().find_map(|o| match o {
        Output::ChangeProposed { index, .. } => Some(*index),
        _ => None,
    })
}

fn rejected(out: &[Output]) -> Option<MembershipError> {
    out.iter().find_map(|o| match o {
        Output::ChangeRejected { error } => Some(error.clone()),
        _ => None,
    })
}

fn learner(id: &str) -> ConfigChange {
    ConfigChange::AddLearner(Member::new(id, format!("http://{id}")))
}

fn write(net: &mut World, i: usize, v: &str) {
    assert!(
        net.propose(i, set_cmd("k", v)).is_some(),
        "{i} takes writes"
    );
    net.deliver_all();
}

/// Three voters n0..n2 (n0 leads, with a few entries) and n3 about to join.
fn three_and_a_joiner() -> World {
    let mut net = cluster(&["n0", "n1", "n2"], &[], &["n3"], false, false);
    net.elect(0);
    for v in ["a", "b", "c"] {
        write(&mut net, 0, v);
    }
    net
}

#[test]
fn s4_a_learner_gets_the_log_but_never_votes_and_never_counts() {
    let mut net = three_and_a_joiner();
    let out = change(&mut net, 0, learner("n3"));
    let index = proposed(&out).expect("the change is proposed");
    assert_eq!(
        net.core(0).configuration().role_of("n3"),
        Some(MemberRole::Learner),
        "in force on the leader at once"
    );
    net.deliver_all();
    // Learners get entries once a tick (paced): a heartbeat finds where its log matches, the
    // next tick sends what it lacks.
    run(&mut net, 4);
    assert!(net.core(0).commit_index() >= index);
    assert_eq!(
        net.core(3).log(),
        net.core(0).log(),
        "the learner has the log"
    );
    assert_eq!(net.applied_index(3), net.core(0).commit_index());
    assert_eq!(net.core(3).status().config_index, index);
    // Two voters down: the leader and the learner are not a majority of the voters.
    net.crash(1);
    net.crash(2);
    let commit = net.core(0).commit_index();
    assert!(net.propose(0, set_cmd("k", "lost?")).is_some());
    run(&mut net, 3);
    assert_eq!(
        net.core(0).commit_index(),
        commit,
        "a learner counts for nothing"
    );
    assert_eq!(
        net.core(3).log().last_index(),
        net.core(0).log().last_index()
    );
    // With no leader at all, the learner never campaigns.
    let term = net.core(3).term();
    net.crash(0);
    run(&mut net, 5 * ET);
    assert_eq!(net.core(3).role(), Role::Follower);
    assert_eq!(net.core(3).term(), term);
    // Silent for a timeout, the leader is forgotten (so its lease no longer refuses votes).
    assert!(net.core(3).leader().is_none());
}

#[test]
fn s4_a_lone_voter_with_a_learner_down_still_commits_and_serves_reads() {
    let mut net = cluster(&["n0"], &["n1"], &[], false, false);
    net.elect(0);
    net.crash(1);
    write(&mut net, 0, "a");
    assert_eq!(net.core(0).commit_index(), 2);
    let out = net.step(0, Input::ReadIndex { id: 7 });
    assert!(
        out.contains(&Output::ReadReady { id: 7, index: 2 }),
        "{out:?}"
    );
}

#[test]
fn s4_a_promoted_learner_votes_and_the_quorum_grows_to_three_of_four() {
    let mut net = three_and_a_joiner();
    change(&mut net, 0, learner("n3"));
    net.deliver_all();
    run(&mut net, 1);
    let out = change(&mut net, 0, ConfigChange::Promote("n3".into()));
    let index = proposed(&out).expect("a caught-up learner is promoted");
    net.deliver_all();
    run(&mut net, 1);
    assert!(net.core(0).commit_index() >= index);
    for i in 0..4 {
        assert_eq!(net.core(i).configuration().voters().len(), 4, "node {i}");
    }
    // Asking again: already so.
    let out = change(&mut net, 0, ConfigChange::Promote("n3".into()));
    assert_eq!(
        rejected(&out),
        Some(MembershipError::AlreadyVoter("n3".into()))
    );
    // Two of four is not a majority any more; three is.
    net.crash(1);
    net.crash(2);
    let commit = net.core(0).commit_index();
    net.propose(0, set_cmd("k", "x"));
    run(&mut net, 2);
    assert_eq!(
        net.core(0).commit_index(),
        commit,
        "n0 and n3 are two of four"
    );
    // n1 restarts from its disk: its log holds the configuration entries.
    net.restart(1);
    assert_eq!(net.core(1).configuration().voters().len(), 4);
    run(&mut net, 2);
    assert!(net.core(0).commit_index() > commit, "three of four");
}

#[test]
fn s4_a_learner_that_lags_is_not_promoted() {
    let c = conf(&["a", "p0", "p1"], &["p2"]);
    let mut l = member_core("a", c, false, false);
    elect(&mut l);
    l.step(Input::Persisted { index: 1 });
    l.step(Input::Response {
        from: peer(0),
        msg: Message::AppendResponse(AppendResponse {
            term: 1,
            success: true,
            match_index: 1,
            ..Default::default()
        }),
    });
    assert_eq!(l.commit_index(), 1);
    for i in 0..MAX_PROMOTE_LAG + 5 {
        l.step(Input::Propose(set_cmd("k", &i.to_string())));
    }
    let last = l.log().last_index();
    let ack = |m: LogIndex| Input::Response {
        from: peer(2),
        msg: Message::AppendResponse(AppendResponse {
            term: 1,
            success: true,
            match_index: m,
            ..Default::default()
        }),
    };
    let promote = Input::ChangeMembership(ConfigChange::Promote(peer(2)));
    // Never heard from: lags.
    let out = l.step(promote.clone());
    assert_eq!(
        rejected(&out),
        Some(MembershipError::Lagging {
            id: peer(2),
            matched: 0,
            last
        })
    );
    // Heard from, far behind: still lags (the message says by how much).
    l.step(ack(1));
    let err = rejected(&l.step(promote.clone())).expect("refused");
    assert!(err.to_string().contains("lags too far behind"), "{err}");
    // Heard from long ago: lags, even if it was close.
    l.step(ack(last - 3));
    for _ in 0..ET {
        l.step(Input::Tick);
    }
    assert!(matches!(
        rejected(&l.step(promote.clone())),
        Some(MembershipError::Lagging { .. })
    ));
    // Within the bound and heard from just now: promoted.
    l.step(ack(last - 3));
    l.step(Input::Response {
        from: peer(0),
        msg: append_ok(1),
    });
    assert!(proposed(&l.step(promote)).is_some());
    assert!(l.configuration().is_voter(&peer(2)));
}

#[test]
fn s4_a_removed_follower_stops_getting_entries_and_never_campaigns() {
    let mut net = cluster(&["n0", "n1", "n2"], &[], &[], true, true);
    net.elect(0);
    write(&mut net, 0, "a");
    let out = change(&mut net, 0, ConfigChange::Remove("n2".into()));
    let index = proposed(&out).expect("proposed");
    net.deliver_all();
    run(&mut net, 1);
    assert!(net.core(0).commit_index() >= index);
    assert_eq!(
        net.core(2).log().last_index(),
        index,
        "it got the entry that removed it"
    );
    assert_eq!(net.core(2).configuration().role_of("n2"), None);
    let before = net.appends_received(2);
    write(&mut net, 0, "b");
    run(&mut net, 3 * ET);
    assert_eq!(net.appends_received(2), before, "nothing more goes to it");
    assert_eq!(net.core(2).role(), Role::Follower, "it never campaigns");
    assert_eq!(net.core(0).role(), Role::Leader);
    assert_eq!(net.core(0).term(), 1);
}

/// Review of #13: the README says a removed node "never campaigns". A removed follower that
/// got the entry removing it but never learned it committed (the leader stops replicating to
/// it the moment it commits) keeps asking for pre-votes after every election timeout:
/// `needed_until_committed` (thesis §4.2.2) holds for it forever. Harmless to the cluster
/// (the voters in a lease refuse), but not quiet; and after a restart every removed node is
/// in this state (the commit index restarts at the log's base).
#[test]
#[ignore = "known bug (review of #13): a removed follower keeps asking for pre-votes"]
fn s4_a_removed_follower_that_holds_its_removal_asks_for_no_votes() {
    let mut net = cluster(&["n0", "n1", "n2"], &[], &[], true, true);
    net.elect(0);
    write(&mut net, 0, "a");
    let index = proposed(&change(&mut net, 0, ConfigChange::Remove("n2".into()))).unwrap();
    net.deliver_all();
    run(&mut net, 1);
    assert!(net.core(0).commit_index() >= index);
    assert_eq!(
        net.core(2).log().last_index(),
        index,
        "n2 holds its removal"
    );
    let mut asked = 0;
    for _ in 0..5 * ET {
        for i in 0..net.len() {
            net.tick(i);
        }
        asked += net
            .requests_in_flight()
            .iter()
            .filter(|(from, _, m)| *from == 2 && matches!(m, Message::VoteRequest(_)))
            .count();
        net.deliver_all();
    }
    assert_eq!(
        asked,
        0,
        "n2 (commit index {}, removed at {index}) asked for votes",
        net.core(2).commit_index()
    );
}

#[test]
fn s4_a_removed_node_that_missed_its_removal_does_not_disturb_the_leader() {
    for (pv, cq) in [(true, true), (false, true), (true, false)] {
        let mut net = cluster(&["n0", "n1", "n2"], &[], &[], pv, cq);
        net.elect(0);
        write(&mut net, 0, "a");
        net.isolate(2);
        let out = change(&mut net, 0, ConfigChange::Remove("n2".into()));
        assert_eq!(rejected(&out), None, "n0 and n1 are a quorum of the rest");
        net.deliver_all();
        run(&mut net, 1);
        assert!(net.core(0).commit_index() >= proposed(&out).unwrap());
        // n2 still thinks it is a voter: it times out and campaigns, again and again.
        net.heal();
        write(&mut net, 0, "b");
        run(&mut net, 6 * ET);
        assert_eq!(net.core(0).role(), Role::Leader, "pv {pv} cq {cq}");
        if cq {
            assert_eq!(net.core(0).term(), 1, "pv {pv} cq {cq}: no term change");
        }
        assert_eq!(net.core(1).leader().map(|l| l.id.as_str()), Some("n0"));
    }
}

#[test]
fn s4_a_removed_leader_commits_without_counting_itself_then_steps_down() {
    let mut net = cluster(&["n0", "n1", "n2"], &[], &[], true, true);
    net.elect(0);
    for v in ["a", "b"] {
        write(&mut net, 0, v);
    }
    let out = change(&mut net, 0, ConfigChange::Remove("n0".into()));
    let index = proposed(&out).expect("a leader may remove itself");
    // With n2 down, n0 and n1 hold the entry: one of the two remaining voters.
    net.crash(2);
    net.deliver_all();
    run(&mut net, 2);
    assert!(
        net.core(0).commit_index() < index,
        "it does not count itself"
    );
    assert_eq!(net.core(0).role(), Role::Leader, "it leads until then");
    net.restart(2);
    run(&mut net, 2);
    // Committed: n0 handed over (TimeoutNow) and stepped down.
    assert_eq!(net.core(0).role(), Role::Follower);
    let l = leader_of(&net).expect("another node leads");
    assert!(l == 1 || l == 2);
    assert!(net.core(l).commit_index() >= index);
    write(&mut net, l, "c");
    let values: Vec<String> = net
        .applied(l)
        .iter()
        .filter_map(|e| match &e.payload {
            EntryPayload::Command {
                command: Command::Set { value, .. },
            } => Some(value.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(values, ["a", "b", "c"], "no committed entry lost");
    run(&mut net, 5 * ET);
    assert_eq!(net.core(0).role(), Role::Follower, "n0 never campaigns");
}

#[test]
fn s4_one_change_at_a_time() {
    let mut net = three_and_a_joiner();
    let out = change(&mut net, 0, learner("n3"));
    assert!(proposed(&out).is_some());
    let out = change(&mut net, 0, ConfigChange::Remove("n2".into()));
    assert_eq!(rejected(&out), Some(MembershipError::InProgress));
    assert_eq!(
        MembershipError::InProgress.to_string(),
        "a membership change is in progress"
    );
    net.deliver_all();
    let out = change(&mut net, 0, learner("n3"));
    assert_eq!(out, [Output::ChangeDone], "already so");
    let out = change(&mut net, 1, ConfigChange::Remove("n2".into()));
    assert!(matches!(
        rejected(&out),
        Some(MembershipError::NotLeader(Some(l))) if l.id == "n0"
    ));
}

#[test]
fn s4_errata_a_new_leader_proposes_no_change_before_its_no_op_commits() {
    let mut c = core("a", 2);
    elect(&mut c);
    let add = Input::ChangeMembership(learner("x"));
    let out = c.step(add.clone());
    assert_eq!(rejected(&out), Some(MembershipError::NotReady));
    c.step(Input::Persisted { index: 1 });
    c.step(Input::Response {
        from: peer(0),
        msg: Message::AppendResponse(AppendResponse {
            term: 1,
            success: true,
            match_index: 1,
            ..Default::default()
        }),
    });
    assert_eq!(c.commit_index(), 1);
    assert_eq!(proposed(&c.step(add)), Some(2));
}

#[test]
fn s4_no_change_leaves_too_few_voters_reachable() {
    let mut net = cluster(&["n0", "n1", "n2"], &[], &[], false, false);
    net.elect(0);
    net.isolate(1);
    run(&mut net, ET);
    // n0 and n2 remain: removing n2 would leave n0 and unreachable n1.
    let out = change(&mut net, 0, ConfigChange::Remove("n2".into()));
    assert_eq!(
        rejected(&out),
        Some(MembershipError::NoQuorum {
            reachable: 1,
            quorum: 2
        })
    );
    // Removing the unreachable one is fine.
    let out = change(&mut net, 0, ConfigChange::Remove("n1".into()));
    assert!(proposed(&out).is_some());
    let out = change(&mut net, 0, ConfigChange::Remove("n7".into()));
    assert_eq!(rejected(&out), Some(MembershipError::InProgress));
}

#[test]
fn s4_truncating_an_uncommitted_configuration_entry_reverts_it() {
    let mut f = node("f", 2, 0, RaftLog::new());
    let before = f.configuration().clone();
    let grown = conf(&["f", "p0", "p1"], &["x"]);
    let append = |term, prev_term, entries: Vec<Entry>| {
        Message::AppendRequest(AppendRequest {
            term,
            leader_id: "p0".into(),
            leader_url: "http://p0".into(),
            prev_log_index: 1,
            prev_log_term: prev_term,
            entries,
            ..Default::default()
        })
    };
    f.step(Input::Request(Message::AppendRequest(AppendRequest {
        term: 1,
        leader_id: "p0".into(),
        leader_url: "http://p0".into(),
        entries: vec![Entry {
            index: 1,
            term: 1,
            payload: EntryPayload::Noop,
        }],
        leader_commit: 1,
        ..Default::default()
    })));
    let config_entry = Entry {
        index: 2,
        term: 1,
        payload: EntryPayload::Config {
            configuration: grown.clone(),
        },
    };
    f.step(Input::Request(append(1, 1, vec![config_entry])));
    assert_eq!(f.configuration(), &grown, "in force before it is committed");
    assert_eq!(f.status().config_index, 2);
    assert_eq!(f.configuration_at(1), before);
    // A new leader of term 2 never had it: entry 2 is replaced.
    let noop = Entry {
        index: 2,
        term: 2,
        payload: EntryPayload::Noop,
    };
    f.step(Input::Request(append(2, 1, vec![noop])));
    assert_eq!(f.configuration(), &before, "back to the one before");
    assert_eq!(f.status().config_index, 0);
}

#[test]
fn s4_an_installed_snapshot_brings_its_configuration() {
    let mut f = node("f", 2, 0, RaftLog::new());
    f.step(Input::Request(heartbeat(2, "p0")));
    let theirs = conf(&["p0", "p1", "f"], &["p9"]);
    let out = f.step(Input::InstallSnapshot(InstalledSnapshot {
        term: 2,
        index: 10,
        last_term: 2,
        seq: 1,
        configuration: Some(theirs.clone()),
    }));
    assert!(out.contains(&Output::RestoreSnapshot { index: 10 }));
    assert_eq!(f.configuration(), &theirs);
    assert_eq!(f.configuration_at(10), theirs);
    assert_eq!(f.status().config_index, 10);
    // A snapshot that records none keeps the configuration.
    f.step(Input::InstallSnapshot(InstalledSnapshot {
        term: 2,
        index: 20,
        last_term: 2,
        seq: 2,
        configuration: None,
    }));
    assert_eq!(f.configuration(), &theirs);
}

#[test]
fn s4_compaction_keeps_the_configuration_in_force_at_each_index() {
    let mut net = three_and_a_joiner();
    let first = proposed(&change(&mut net, 0, learner("n3"))).unwrap();
    net.deliver_all();
    run(&mut net, 1);
    write(&mut net, 0, "d");
    let second = proposed(&change(&mut net, 0, ConfigChange::Promote("n3".into()))).unwrap();
    net.deliver_all();
    run(&mut net, 1);
    write(&mut net, 0, "e");
    let c = net.core(0);
    let (one, two) = (c.configuration_at(first), c.configuration_at(second));
    assert_eq!(one.role_of("n3"), Some(MemberRole::Learner));
    assert_eq!(two.role_of("n3"), Some(MemberRole::Voter));
    assert_eq!(c.configuration_at(first - 1).role_of("n3"), None);
    net.step(0, Input::Compact { index: first + 1 });
    let c = net.core(0);
    assert_eq!(c.log().base_index(), first + 1);
    assert_eq!(c.configuration_at(first + 1), one);
    assert_eq!(c.configuration_at(second), two);
    assert_eq!(c.configuration(), &two);
    net.step(0, Input::Compact { index: second + 1 });
    let c = net.core(0);
    assert_eq!(c.configuration_at(second + 1), two);
    assert_eq!(c.status().config_index, second);
}

#[test]
fn s4_five_voters_keep_committing_with_two_down() {
    let ids = ["n0", "n1", "n2", "n3", "n4"];
    let mut net = cluster(&ids, &[], &[], true, true);
    net.elect(0);
    write(&mut net, 0, "a");
    net.crash(3);
    net.crash(4);
    let commit = net.core(0).commit_index();
    write(&mut net, 0, "b");
    run(&mut net, 3 * ET);
    assert_eq!(net.core(0).role(), Role::Leader);
    assert_eq!(net.core(0).commit_index(), commit + 1);
    // A third one down: no more commits, and check-quorum deposes the leader.
    net.crash(2);
    net.propose(0, set_cmd("k", "c"));
    run(&mut net, 3 * ET);
    assert_eq!(net.core(1).commit_index(), commit + 1);
    assert!(leader_of(&net).is_none());
}

// ---- provisional ids ----------------------------------------------------------------------

/// Cores that know each other by URL only, and a lossless network between them that finds a
/// node by the id or the URL it is sent to (as the transport does: by the member's URL);
/// writes are durable at once.
struct ByUrl {
    cores: Vec<RaftCore>,
    /// (from, to as named by the sender, request)
    queue: VecDeque<(usize, NodeId, Message)>,
}

impl ByUrl {
    fn new(ids: &[&str]) -> ByUrl {
        let cores = ids
            .iter()
            .map(|me| {
                let members = ids
                    .iter()
                    .map(|id| {
                        if id == me {
                            Member::new(*id, format!("http://{id}"))
                        } else {
                            Member::by_url(format!("http://{id}"))
                        }
                    })
                    .collect();
                RaftCore::new(
                    settings(me, false, false),
                    Configuration::new(members).unwrap(),
                    HardState::default(),
                    RaftLog::new(),
                    5,
                )
            })
            .collect();
        ByUrl {
            cores,
            queue: VecDeque::new(),
        }
    }

    /// Step node `i`; sends are queued, writes made durable at once; returns its reply.
    fn step(&mut self, i: usize, input: Input) -> Option<Message> {
        let mut pending = VecDeque::from([input]);
        let mut answer = None;
        while let Some(input) = pending.pop_front() {
            for o in self.cores[i].step(input) {
                match o {
                    Output::PersistEntries(es) => {
                        let index = es.last().map_or(0, |e| e.index);
                        pending.push_back(Input::Persisted { index });
                    }
                    Output::Send { to, msg } => self.queue.push_back((i, to, msg)),
                    Output::Reply(m) => answer = Some(m),
                    _ => {}
                }
            }
        }
        answer
    }

    fn deliver_all(&mut self) {
        while let Some((from, to, msg)) = self.queue.pop_front() {
            let k = self
                .cores
                .iter()
                .position(|c| c.config().id == to || c.config().url == to)
                .expect("a node of this network");
            if let Some(answer) = self.step(k, Input::Request(msg)) {
                self.step(
                    from,
                    Input::Response {
                        from: to,
                        msg: answer,
                    },
                );
            }
        }
    }
}

#[test]
fn s4_provisional_ids_are_learned_and_written_down_under_the_real_ids() {
    let mut net = ByUrl::new(&["a", "b", "c"]);
    assert!(net.cores[0].configuration().is_provisional());
    net.step(0, Input::Campaign);
    net.deliver_all();
    assert_eq!(net.cores[0].role(), Role::Leader);
    for _ in 0..3 {
        net.step(0, Input::Tick);
        net.deliver_all();
    }
    let real = members(&["a", "b", "c"]);
    for c in &net.cores {
        let configs: Vec<&Entry> = (1..=c.log().last_index())
            .filter_map(|i| c.log().entry(i))
            .filter(|e| matches!(e.payload, EntryPayload::Config { .. }))
            .collect();
        assert_eq!(
            configs.len(),
            1,
            "{}: one configuration entry",
            c.config().id
        );
        assert!(matches!(
            &configs[0].payload,
            EntryPayload::Config { configuration } if *configuration == real
        ));
        assert!(c.commit_index() >= configs[0].index, "{}", c.config().id);
        assert_eq!(c.configuration(), &real);
        assert_eq!(c.status().config_index, configs[0].index);
    }
    // Nothing more to write down.
    let last = net.cores[0].log().last_index();
    net.step(0, Input::Tick);
    net.deliver_all();
    assert_eq!(net.cores[0].log().last_index(), last);
}

#[test]
fn s4_a_bootstrap_configuration_with_real_ids_is_written_down_once() {
    let mut net = ByUrl::new(&["a"]);
    net.cores[0] = RaftCore::new(
        settings("a", false, false),
        members(&["a"]),
        HardState::default(),
        RaftLog::new(),
        1,
    );
    assert_eq!(net.cores[0].status().config_index, 0);
    net.step(0, Input::Campaign);
    let c = &net.cores[0];
    assert_eq!(c.log().last_index(), 2, "the no-op, then the configuration");
    assert_eq!(c.status().config_index, 2);
    assert_eq!(c.commit_index(), 2);
}

/// The entries of the AppendEntries `out` sends to `to`.
fn entries_to<'a>(out: &'a [Output], to: &str) -> Vec<&'a AppendRequest> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send {
                to: t,
                msg: Message::AppendRequest(req),
            } if t == to && !req.entries.is_empty() => Some(req),
            _ => None,
        })
        .collect()
}

#[test]
fn s4_learners_get_entries_once_a_tick_within_a_byte_budget() {
    let mut c = member_core("a", conf(&["a", "b", "c"], &["d"]), false, false);
    elect(&mut c);
    let big = "v".repeat(1000);
    for i in 0..200 {
        let out = c.step(Input::Propose(set_cmd(&format!("k{i}"), &big)));
        assert!(
            entries_to(&out, "d").is_empty(),
            "a proposal never goes to the learner at once"
        );
    }
    let mut next = 1;
    for round in 0..3 {
        let out = c.step(Input::Tick);
        let budget = learner_budget(c.append_rate);
        let sent = entries_to(&out, "d");
        assert_eq!(sent.len(), 1, "round {round}: one batch per tick");
        let req = sent[0];
        assert_eq!(
            req.entries[0].index, next,
            "round {round}: where the last one ended"
        );
        let bytes: usize = req.entries.iter().map(|e| e.size_hint()).sum();
        assert!(
            bytes <= budget,
            "round {round}: {bytes} bytes > budget {budget}"
        );
        let last = req.entries.last().map(|e| e.index).unwrap_or(0);
        next = last + 1;
        let answer = Message::AppendResponse(AppendResponse {
            term: c.term(),
            success: true,
            match_index: last,
            seq: req.seq,
            ..Default::default()
        });
        let out = c.step(Input::Response {
            from: "d".into(),
            msg: answer,
        });
        assert!(
            entries_to(&out, "d").is_empty(),
            "round {round}: the next batch waits for the next tick"
        );
    }
    assert!(next > 3, "the learner is moving on");
}

/// A learner whose answers take longer than `MAX_INFLIGHT` ticks (far away, or slow to store
/// what it gets) under a steady write rate: its window is full on most ticks, so the budget of
/// those ticks must go into the next batch, or it gets less than the writes and never
/// catches up (it could then never be promoted).
#[test]
fn s4_a_learner_with_a_long_round_trip_keeps_up_with_the_writes() {
    const ROUND_TRIP: u64 = 12; // ticks from a request to the learner until its answer
    const WRITES_PER_TICK: usize = 32; // of about 1 KB each: ~32 KiB a tick
    let mut c = member_core("a", conf(&["a", "b", "c"], &["d"]), false, false);
    elect(&mut c);
    let value = "v".repeat(1000);
    // The learner: its log holds the leader's entries up to `held`; answers wait in `answers`.
    let mut held: LogIndex = 0;
    let mut answers: VecDeque<(u64, AppendResponse)> = VecDeque::new();
    let mut out: Vec<Output> = Vec::new();
    let mut lag = Vec::new();
    for now in 0..900u64 {
        for i in 0..WRITES_PER_TICK {
            out.extend(c.step(Input::Propose(set_cmd(&format!("k{i}"), &value))));
        }
        out.extend(c.step(Input::Tick));
        for o in std::mem::take(&mut out) {
            let Output::Send {
                to,
                msg: Message::AppendRequest(req),
            } = o
            else {
                continue;
            };
            if to != "d" {
                continue;
            }
            let end = req.prev_log_index + req.entries.len() as u64;
            let resp = if req.prev_log_index <= held {
                held = held.max(end);
                AppendResponse {
                    term: req.term,
                    success: true,
                    match_index: end,
                    seq: req.seq,
                    ..Default::default()
                }
            } else {
                AppendResponse {
                    term: req.term,
                    success: false,
                    reject_index: req.prev_log_index,
                    conflict_index: held + 1,
                    seq: req.seq,
                    ..Default::default()
                }
            };
            answers.push_back((now + ROUND_TRIP, resp));
        }
        while answers.front().is_some_and(|(due, _)| *due <= now) {
            let (_, resp) = answers.pop_front().expect("front");
            out.extend(c.step(Input::Response {
                from: "d".into(),
                msg: Message::AppendResponse(resp),
            }));
        }
        if (now + 1) % 300 == 0 {
            lag.push(c.log.last_index() - held);
        }
    }
    // About a round trip of writes in flight, and not growing.
    let bound = 2 * ROUND_TRIP * WRITES_PER_TICK as u64;
    assert!(
        lag.iter().all(|l| *l <= bound),
        "the learner's lag after 300, 600, 900 ticks: {lag:?} (entries; at most {bound})"
    );
}
