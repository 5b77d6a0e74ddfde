//! The configuration as a value the core holds: replacing it changes who is asked for votes,
//! who gets AppendEntries and what counts as a majority.

use super::*;

fn ack(term: Term, match_index: LogIndex) -> Message {
    Message::AppendResponse(AppendResponse {
        term,
        success: true,
        match_index,
        ..Default::default()
    })
}

fn sent_to(out: &[Output]) -> Vec<&str> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send { to, .. } => Some(to.as_str()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_replaced_configuration_changes_who_gets_append_entries_and_what_a_majority_is() {
    let mut c = core("a", 2);
    elect(&mut c);
    c.step(Input::Persisted { index: 1 });
    c.step(Input::Response {
        from: peer(0),
        msg: ack(1, 1),
    });
    assert_eq!(c.commit_index(), 1);
    // Two more voters: five in all.
    let out = c.set_configuration(members(&["a", "p0", "p1", "p2", "p3"]));
    assert!(out.is_empty(), "nothing new is committed: {out:?}");
    let out = c.step(Input::Tick);
    assert_eq!(sent_to(&out), ["p0", "p1", "p2", "p3"]);
    c.step(Input::Propose(set_cmd("k", "v")));
    c.step(Input::Persisted { index: 2 });
    c.step(Input::Response {
        from: peer(0),
        msg: ack(1, 2),
    });
    assert_eq!(c.commit_index(), 1, "two of five is not a majority");
    let out = c.step(Input::Response {
        from: peer(3),
        msg: ack(1, 2),
    });
    assert_eq!(c.commit_index(), 2, "three of five is");
    assert!(matches!(&out[0], Output::Apply(es) if es.len() == 1 && es[0].index == 2));
    // Back to three voters without p2 and p3: answers from them no longer count.
    c.set_configuration(members(&["a", "p0", "p1"]));
    let out = c.step(Input::Tick);
    assert_eq!(sent_to(&out), ["p0", "p1"]);
    let before = c.commit_index();
    c.step(Input::Propose(set_cmd("k", "w")));
    c.step(Input::Persisted { index: 3 });
    c.step(Input::Response {
        from: peer(2),
        msg: ack(1, 3),
    });
    assert_eq!(c.commit_index(), before, "p2 is no longer a member");
}

#[test]
fn a_smaller_majority_commits_what_it_already_holds() {
    let mut c = core("a", 4);
    elect(&mut c);
    c.step(Input::Persisted { index: 1 });
    c.step(Input::Response {
        from: peer(0),
        msg: ack(1, 1),
    });
    assert_eq!(c.commit_index(), 0, "two of five");
    let out = c.set_configuration(members(&["a", "p0", "p1"]));
    assert_eq!(c.commit_index(), 1, "two of three");
    assert!(matches!(&out[0], Output::Apply(es) if es.len() == 1));
}

#[test]
fn a_replaced_configuration_changes_who_is_asked_for_votes_and_what_wins() {
    let mut c = core("a", 1);
    c.set_configuration(members(&["a", "x", "y"]));
    let out = tick_until_campaign(&mut c);
    assert_eq!(sent_to(&out), ["x", "y"]);
    // An answer from a former member does not count.
    c.step(Input::Response {
        from: peer(0),
        msg: vote_resp(1, true),
    });
    assert_eq!(c.role(), Role::Candidate);
    c.step(Input::Response {
        from: "y".into(),
        msg: vote_resp(1, true),
    });
    assert_eq!(c.role(), Role::Leader, "a and y are two of three");
    assert_eq!(sent_to(&c.step(Input::Tick)), ["x", "y"]);
}

#[test]
fn a_node_that_is_not_a_voter_never_campaigns() {
    let mut c = core("a", 2);
    c.set_configuration(members(&["p0", "p1", "p2"]));
    for _ in 0..10 * ET {
        assert!(c.step(Input::Tick).is_empty());
    }
    assert!(c.step(Input::Campaign).is_empty());
    assert_eq!((c.role(), c.term()), (Role::Follower, 0));
    // It still follows a leader.
    c.step(Input::Request(heartbeat(1, "p0")));
    assert_eq!(c.leader().map(|l| l.id.as_str()), Some("p0"));
}
