//! The simulator's own tests: the scripted API that replaces the core tests' `Net`, the write
//! barrier's persist-before-send, and crash recovery from the disk.

use super::world::World;
use crate::raft::core::{Input, Output, Role};
use crate::store::Command;

fn set(k: &str, v: &str) -> Command {
    Command::set(k, v)
}

#[test]
fn scripted_three_nodes_elect_replicate_and_apply_in_order() {
    let mut w = World::new(3);
    w.elect(0);
    for i in 0..5 {
        let out = w.step(0, Input::Propose(set("k", &i.to_string())));
        assert!(
            out.contains(&Output::Proposed {
                index: i + 2,
                term: 1
            }),
            "{out:?}"
        );
    }
    w.deliver_all();
    w.tick(0);
    w.tick(0);
    w.deliver_all();
    for n in 0..3 {
        assert_eq!(w.core(n).commit_index(), 6, "node {n}");
        let idx: Vec<_> = w.applied(n).iter().map(|e| e.index).collect();
        assert_eq!(idx, vec![1, 2, 3, 4, 5, 6], "node {n}");
    }
    assert!(w.appends_received(1) > 0);
}

#[test]
fn an_isolated_leader_is_replaced_and_its_entries_are_overwritten() {
    let mut w = World::new(3);
    w.elect(0);
    w.isolate(0);
    assert!(w.propose(0, set("lost", "x")).is_some());
    w.deliver_all();
    w.elect(1);
    w.propose(1, set("kept", "y"))
        .expect("the new leader takes writes");
    w.deliver_all();
    w.heal();
    for _ in 0..4 {
        w.tick(1);
        w.deliver_all();
    }
    assert_eq!(w.core(0).role(), Role::Follower);
    for n in 0..3 {
        assert_eq!(w.core(n).commit_index(), 3, "node {n}");
    }
}

#[test]
fn a_follower_answers_only_once_its_write_is_durable() {
    let mut w = World::new(3);
    w.elect(0);
    w.set_instant_disk(false);
    w.propose(0, set("k", "v")).expect("leader");
    // The leader's AppendEntries do not wait for its own write (parallel leader write).
    assert_eq!(
        w.net.len(),
        2,
        "sent while the leader's own write is in flight"
    );
    w.sync(0);
    // Leader → followers: the request reaches them; their answers wait for their writes.
    while let Some(p) = w.net.pop_front() {
        w.deliver(p);
    }
    assert_eq!(w.held(1), 1, "the acknowledgement waits for the write");
    assert_eq!(w.core(0).commit_index(), 1, "nothing new committed yet");
    w.sync(1);
    w.deliver_all();
    assert_eq!(w.core(0).commit_index(), 2);
}

#[test]
fn a_leader_counts_itself_only_once_durable_but_followers_make_a_majority_without_it() {
    let mut w = World::new(3);
    w.elect(0);
    w.set_instant_disk(false);
    w.propose(0, set("k", "v")).expect("leader");
    while let Some(p) = w.net.pop_front() {
        w.deliver(p);
    }
    w.sync(1);
    while let Some(p) = w.net.pop_front() {
        w.deliver(p);
    }
    assert_eq!(
        w.core(0).commit_index(),
        1,
        "one follower's copy and the leader's unsynced one are no majority"
    );
    w.sync(2);
    while let Some(p) = w.net.pop_front() {
        w.deliver(p);
    }
    assert_eq!(w.core(0).commit_index(), 2, "two durable copies of three");
}

#[test]
fn a_leader_crashing_before_its_own_fsync_loses_nothing_committed() {
    let mut w = World::new(3);
    w.elect(0);
    w.set_instant_disk(false);
    w.propose(0, set("k", "v")).expect("leader");
    while let Some(p) = w.net.pop_front() {
        w.deliver(p);
    }
    w.sync(1);
    w.sync(2);
    while let Some(p) = w.net.pop_front() {
        w.deliver(p);
    }
    assert_eq!(
        w.core(0).commit_index(),
        2,
        "committed by the followers' copies"
    );
    // The leader crashes with its own write of entry 2 still in flight.
    w.crash(0);
    w.restart(0);
    assert_eq!(
        w.core(0).log().last_index(),
        1,
        "its own copy never reached its disk"
    );
    assert_eq!(
        w.core(0).term(),
        1,
        "its term did: it cannot lead term 1 again"
    );
    w.set_instant_disk(true);
    // It cannot win: both others hold a longer log of the same term.
    w.step(0, Input::Campaign);
    w.deliver_all();
    assert_ne!(w.core(0).role(), Role::Leader);
    w.elect(1);
    w.propose(1, set("k2", "v2"))
        .expect("the new leader takes writes");
    w.deliver_all();
    w.tick(1);
    w.tick(1);
    w.deliver_all();
    for n in 0..3 {
        let log = w.core(n).log();
        assert_eq!(
            log.term_at(2),
            Some(1),
            "node {n} holds the committed entry 2"
        );
        assert!(w.core(n).commit_index() >= 4, "node {n}");
    }
}

#[test]
fn a_crash_loses_what_was_not_synced_and_a_restart_recovers_what_was() {
    let mut w = World::new(3);
    w.elect(0);
    w.propose(0, set("a", "1")).expect("leader");
    w.deliver_all();
    w.set_instant_disk(false);
    w.propose(0, set("b", "2")).expect("leader");
    w.crash(0);
    w.restart(0);
    let log = w.core(0).log();
    assert_eq!(log.last_index(), 2, "the unsynced entry 3 is gone");
    assert_eq!(w.core(0).term(), 1, "the term survives");
    assert_eq!(w.core(0).status().voted_for.as_deref(), Some("n0"));
}

#[test]
fn clocks_never_go_back_and_run_within_the_drift_bound() {
    use super::clock::{Clocks, TICK_US};
    let mut c = Clocks::new(5, 42);
    for i in 0..5 {
        let r = c.rate(i);
        assert!((0.9..=1.1).contains(&r), "slot {i} rate {r}");
        let d = c.now_us(i, 100) - c.now_us(i, 0);
        assert!(
            (90 * TICK_US..=110 * TICK_US).contains(&d),
            "slot {i}: {d} µs in 100 ticks"
        );
    }
    let before = c.now_us(0, 50);
    c.set_rate(0, 50, 0.5);
    assert_eq!(
        c.now_us(0, 50),
        before,
        "a new rate continues from the value reached"
    );
    assert_eq!(c.now_us(0, 60), before + 5 * TICK_US);
}

#[test]
fn a_randomized_run_with_leases_replays_exactly_from_its_seed() {
    let a = super::run_seed(3, 7);
    let b = super::run_seed(3, 7);
    assert!(
        a.stats.lease_reads > 0,
        "leases serve reads in the simulator"
    );
    assert_eq!(
        (a.acked, a.commit, a.elections, a.stats.lease_reads),
        (b.acked, b.commit, b.elections, b.stats.lease_reads)
    );
}

#[test]
fn scripted_worlds_give_no_lease_settings() {
    let w = World::new(3);
    assert!(!w.leases);
}
