//! §7 log compaction and InstallSnapshot.

use super::*;

fn snap_req(term: Term, index: LogIndex, last_term: Term, seq: u64) -> SnapshotRequest {
    SnapshotRequest {
        term,
        leader_id: "L".into(),
        leader_url: "http://L".into(),
        index,
        last_term,
        seq,
        ..SnapshotRequest::default()
    }
}

fn snap_reply(out: &[Output]) -> SnapshotResponse {
    match reply(out) {
        Message::SnapshotResponse(r) => r.clone(),
        other => panic!("not a snapshot response: {other:?}"),
    }
}

#[test]
fn s7_a_follower_behind_the_log_start_gets_a_snapshot_then_the_entries_after_it() {
    let mut net = three_with_leader();
    for i in 0..5 {
        net.step(0, Input::Propose(set_cmd("k", &i.to_string())));
        net.deliver_all();
    }
    let commit = net.core(0).commit_index();
    assert_eq!(commit, 6);
    // The leader snapshots everything and drops its log; c's progress is reset as if it
    // had restarted with an empty log.
    net.step(0, Input::Compact { index: commit });
    assert_eq!(net.core(0).log().base_index(), 6);
    net.core_mut(0)
        .progress
        .insert("c".into(), Progress::new(0));
    let out = net.core_mut(0).step(Input::Tick);
    let out = net
        .core_mut(0)
        .step(Input::Tick)
        .into_iter()
        .chain(out)
        .collect::<Vec<_>>();
    let header = out
        .iter()
        .find_map(|o| match o {
            Output::SendSnapshot { to, header } if to == "c" => Some(header.clone()),
            _ => None,
        })
        .expect("c gets a snapshot, not entries it cannot have");
    // While it is on its way, no entries go to c, and the log is not compacted further
    // (the entries after the snapshot must still be there when it arrives).
    net.step(0, Input::Propose(set_cmd("k", "late")));
    net.step(0, Input::Compact { index: 7 });
    assert_eq!(net.core(0).log().base_index(), 6);
    assert!(!net.requests_in_flight().into_iter().any(
        |(_, to, m)| to == 2 && matches!(m, Message::AppendRequest(r) if !r.entries.is_empty())
    ));
    net.deliver_all();
    // c installed it (the caller's part is done here by hand) and answers.
    let install = snap_req(header.term, 6, 1, header.seq);
    let out = net.step(2, Input::Request(Message::SnapshotRequest(install.clone())));
    assert_eq!(snap_reply(&out).match_index, None, "go on: c needs it");
    net.snapshot_received(2, 6, 1);
    let out = net.step(2, Input::InstallSnapshot((&install).into()));
    assert!(out.contains(&Output::RestoreSnapshot { index: 6 }));
    let resp = snap_reply(&out);
    assert_eq!(resp.match_index, Some(6));
    let out = net.core_mut(0).step(Input::Response {
        from: "c".into(),
        msg: Message::SnapshotResponse(resp),
    });
    net.absorb(0, out);
    net.deliver_all();
    assert_eq!(
        net.core(2).log().last_index(),
        7,
        "the entry after the snapshot"
    );
    assert_eq!(net.core(2).commit_index(), 7);
    assert_eq!(
        net.core_mut(0).progress["c"].match_index,
        7,
        "c matches up to the end"
    );
}

#[test]
fn s7_installing_a_snapshot_replaces_a_conflicting_log_durably() {
    let mut f = node("f", 1, 1, log_with_terms(&[1, 1, 1]));
    let out = f.step(Input::Request(Message::SnapshotRequest(snap_req(
        3, 5, 2, 9,
    ))));
    assert_eq!(
        out[0],
        Output::SaveHardState(HardState {
            term: 3,
            voted_for: None
        })
    );
    let r = snap_reply(&out);
    assert_eq!((r.term, r.match_index), (3, None));
    let out = f.step(Input::InstallSnapshot((&snap_req(3, 5, 2, 9)).into()));
    let restore = out
        .iter()
        .position(|o| *o == Output::RestoreSnapshot { index: 5 })
        .expect("restore");
    let reset = out
        .iter()
        .position(|o| *o == Output::ResetLog { index: 5, term: 2 })
        .expect("the old log is gone for good");
    let ack = out
        .iter()
        .position(|o| matches!(o, Output::Reply(_)))
        .unwrap();
    assert!(restore < ack && reset < ack, "{out:?}");
    assert_eq!(f.commit_index(), 5);
    assert_eq!((f.log().base_index(), f.log().last_index()), (5, 5));
    // Entries after it apply from 6 on.
    let out = f.step(Input::Request(Message::AppendRequest(AppendRequest {
        term: 3,
        leader_id: "L".into(),
        leader_url: "http://L".into(),
        prev_log_index: 5,
        prev_log_term: 2,
        entries: vec![Entry {
            index: 6,
            term: 3,
            payload: EntryPayload::Noop,
        }],
        leader_commit: 6,
        seq: 10,
    })));
    let applied: Vec<LogIndex> = out
        .iter()
        .filter_map(|o| match o {
            Output::Apply(es) => Some(es.iter().map(|e| e.index)),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(applied, [6]);
}

#[test]
fn s7_a_snapshot_the_follower_already_covers_keeps_its_log_and_a_stale_one_is_refused() {
    let mut f = node("f", 1, 2, log_with_terms(&[1, 1, 2, 2]));
    // Everything up to 3 is committed here already: nothing to install.
    f.step(Input::Request(Message::AppendRequest(AppendRequest {
        term: 2,
        leader_id: "L".into(),
        leader_url: "http://L".into(),
        prev_log_index: 4,
        prev_log_term: 2,
        entries: vec![],
        leader_commit: 3,
        seq: 1,
    })));
    let out = f.step(Input::Request(Message::SnapshotRequest(snap_req(
        2, 3, 2, 2,
    ))));
    assert_eq!(snap_reply(&out).match_index, Some(3));
    // A matching entry beyond the commit index: the suffix after it is kept, nothing reset.
    let out = f.step(Input::InstallSnapshot((&snap_req(2, 4, 2, 3)).into()));
    assert!(!out.iter().any(|o| matches!(o, Output::ResetLog { .. })));
    assert_eq!(f.log().base_index(), 4);
    // A leader of an older term is told the newer one.
    let out = f.step(Input::Request(Message::SnapshotRequest(snap_req(
        1, 9, 1, 4,
    ))));
    let r = snap_reply(&out);
    assert_eq!((r.term, r.match_index), (2, None));
    let out = f.step(Input::InstallSnapshot((&snap_req(1, 9, 1, 4)).into()));
    assert!(!out
        .iter()
        .any(|o| matches!(o, Output::RestoreSnapshot { .. })));
    assert_eq!(f.commit_index(), 4);
}

#[test]
fn s7_append_entries_below_the_followers_snapshot_are_skipped_not_rejected() {
    let mut f = node("f", 1, 2, RaftLog::with_base(10, 2, Vec::new()).unwrap());
    assert_eq!(f.commit_index(), 10, "a snapshot is committed");
    let entries: Vec<Entry> = (9..=12)
        .map(|index| Entry {
            index,
            term: 2,
            payload: EntryPayload::Noop,
        })
        .collect();
    let out = f.step(Input::Request(Message::AppendRequest(AppendRequest {
        term: 2,
        leader_id: "L".into(),
        leader_url: "http://L".into(),
        prev_log_index: 8,
        prev_log_term: 2,
        entries,
        leader_commit: 12,
        seq: 1,
    })));
    match reply(&out) {
        Message::AppendResponse(r) => assert!(r.success && r.match_index == 12, "{r:?}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(f.log().last_index(), 12);
    // A heartbeat from below the base only says how far it matches.
    let out = f.step(Input::Request(Message::AppendRequest(AppendRequest {
        term: 2,
        leader_id: "L".into(),
        leader_url: "http://L".into(),
        prev_log_index: 0,
        prev_log_term: 0,
        entries: vec![],
        leader_commit: 0,
        seq: 2,
    })));
    match reply(&out) {
        Message::AppendResponse(r) => assert!(r.success && r.match_index == 10, "{r:?}"),
        other => panic!("{other:?}"),
    }
}
