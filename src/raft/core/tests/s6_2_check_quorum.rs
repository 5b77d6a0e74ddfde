//! Thesis §6.2 check-quorum: a leader without a majority steps down; while a leader is heard,
//! votes are ignored.

use super::*;

#[test]
fn s6_2_check_quorum_leader_steps_down_without_a_majority() {
    let mut c = core_with("a", 2, true, true);
    tick_until_campaign(&mut c);
    c.step(Input::Response {
        from: peer(0),
        msg: pre_vote_resp(1, true),
    });
    c.step(Input::Response {
        from: peer(0),
        msg: vote_resp(1, true),
    });
    assert_eq!(c.role(), Role::Leader);
    // One peer answers heartbeats: with the leader that is a majority of 3; it stays.
    for _ in 0..3 * ET {
        c.step(Input::Tick);
        c.step(Input::Response {
            from: peer(1),
            msg: append_ok(1),
        });
    }
    assert_eq!(c.role(), Role::Leader);
    // Nobody answers: within two election timeouts it steps down, term unchanged.
    let mut stepped_down_after = None;
    for t in 1..=2 * ET {
        c.step(Input::Tick);
        if c.role() != Role::Leader {
            stepped_down_after = Some(t);
            break;
        }
    }
    let t = stepped_down_after.expect("the leader must step down");
    assert!(t <= 2 * ET, "stepped down after {t} ticks");
    assert_eq!(c.role(), Role::Follower);
    assert_eq!(c.term(), 1);
    assert_eq!(c.leader(), None);
}

#[test]
fn s6_2_check_quorum_votes_are_ignored_while_a_leader_is_heard() {
    let mut f = core_with("f", 2, false, true);
    f.step(Input::Request(heartbeat(2, "L")));
    let out = f.step(Input::Request(vote_req(3, "x", 0, 0)));
    assert_eq!(out, vec![Output::Reply(vote_resp(2, false))]);
    assert_eq!(f.term(), 2, "no term bump while in the leader's lease");
    // After an election timeout without the leader, the vote is granted.
    for _ in 0..ET {
        f.step(Input::Tick);
        if f.role() != Role::Follower {
            break;
        }
    }
    let mut f = core_with("g", 2, false, true);
    f.step(Input::Request(heartbeat(2, "L")));
    for _ in 0..ET {
        f.election_elapsed += 1;
    }
    let out = f.step(Input::Request(vote_req(3, "x", 0, 0)));
    assert_eq!(*reply(&out), vote_resp(3, true));
}
