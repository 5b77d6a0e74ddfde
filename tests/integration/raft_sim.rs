//! Randomized simulation of whole clusters (`kvstore::sim`): pure `RaftCore`s carried out the
//! way the `RaftActor` does (writes gathered and synced after a delay; messages held until the
//! write they depend on is durable), on a disk that crashes like a disk does (a crash loses
//! what was not synced, may tear the last record; a restart recovers from what was synced),
//! with random loss, duplication, delay, reordering, partitions, slow and full disks and
//! writes that fail for good, while proposals flow. Every step checks election safety, log
//! matching, leader completeness and state-machine safety; at the end, after healing, all
//! nodes converge and every acknowledged proposal is applied everywhere. Most seeds also take
//! snapshots every few applied entries and compact the log, so restarted or lagging nodes
//! catch up through snapshot transfers; a restarted node's state machine starts from its
//! snapshot. Leases are on (`kvstore::sim::clock`): every node has a monotonic clock at a rate
//! drawn within the leases' ±10% drift bound, holds as the core says, and leaders perform lease
//! reads at random moments, each checked against every acknowledged write (a lease read never
//! misses one); a negative test shows the check catches leases run outside their assumptions.
//!
//! With membership changes, the worlds have two spare slots and an operator adds learners
//! (new nodes that start empty and join), promotes them, removes members (removed nodes keep
//! running for a while, then their slots take new nodes) and transfers leadership, all at
//! random amid the same faults; the checks then also cover every configuration (who may
//! campaign, who a leader counts, the configuration each node uses), and at the end every
//! member of the final configuration agrees on it and applies a final proposal.
//!
//! A failing seed panics with a one-line replay command:
//! `SIM_SEED=<seed> SIM_NODES=<n> [SIM_MEMBERSHIP=1] cargo nextest run --release raft_sim::replay_one_seed --no-capture`;
//! `SIM_DEBUG=<seed>` replays one 5-node seed (`debug_seed`, with membership changes if
//! `SIM_MEMBERSHIP=1`) and prints every node's state.

use kvstore::sim::run::{nodes_for, CHAOS_TICKS};
use kvstore::sim::{run_plan_with, run_plans, run_seeds, Outcome, Plan};

/// Lease reads a sweep must perform at least (else the lease-read invariant proves nothing).
/// Measured when this was written: 159,842 (300 seeds of 3 nodes), 56,248 (100 of 5),
/// 539,590 (the 1,000 mixed seeds), 428,559 (the 1,000 membership seeds).
const LEASE_READS_3: usize = 50_000;
const LEASE_READS_5: usize = 20_000;
const LEASE_READS_MIXED: usize = 200_000;
const LEASE_READS_MEMBERSHIP: usize = 150_000;
/// Seeds the negative lease test may try.
const NEGATIVE_BUDGET: u64 = 1_000;

/// The setup of the sweeps: `SIM_LEASES=off` runs them without leases (as before the simulator
/// had clocks), to compare.
fn sweep_setup(w: &mut kvstore::sim::World) {
    if !leases_on() {
        w.set_leases(false);
    }
}

fn leases_on() -> bool {
    std::env::var("SIM_LEASES").map_or(true, |v| v != "off")
}

/// At least `min` lease reads were performed (unless `SIM_LEASES=off`).
fn assert_lease_reads(reads: usize, min: usize) {
    assert!(
        !leases_on() || reads > min,
        "lease reads performed: {reads} (at least {min} expected)"
    );
}

/// Whether `SIM_MEMBERSHIP` asks for membership changes.
fn membership_from_env() -> bool {
    std::env::var("SIM_MEMBERSHIP").is_ok_and(|v| v != "0" && !v.is_empty())
}

fn sum(outcomes: &[Outcome]) -> (usize, usize) {
    let acked = outcomes.iter().map(|o| o.acked).sum();
    let installs = outcomes.iter().map(|o| o.stats.installs).sum();
    (acked, installs)
}

/// Lease reads performed (and checked) over these runs.
fn lease_reads(outcomes: &[Outcome]) -> usize {
    outcomes.iter().map(|o| o.stats.lease_reads).sum()
}

#[test]
fn three_node_clusters_under_faults_agree_and_lose_no_acknowledged_proposal() {
    let outcomes = run_seeds(0..300, |_| 3, sweep_setup);
    let (acked, installs) = sum(&outcomes);
    let reads = lease_reads(&outcomes);
    println!("300 seeds: {acked} acknowledged, {reads} lease reads checked");
    assert_lease_reads(reads, LEASE_READS_3);
    assert!(
        acked > 8_000,
        "the workload must actually commit proposals ({acked})"
    );
    assert!(
        installs > 50,
        "lagging nodes must actually catch up through snapshots ({installs})"
    );
}

/// Replays one seed with `SIM_DEBUG=<seed>` on five nodes and prints the end state; does
/// nothing otherwise.
#[test]
fn debug_seed() {
    let Ok(seed) = std::env::var("SIM_DEBUG") else {
        return;
    };
    let seed: u64 = seed.parse().expect("SIM_DEBUG is a seed");
    let plan = Plan {
        nodes: 5,
        membership: membership_from_env(),
    };
    let (w, outcome) = run_plan_with(plan, seed, |_| {});
    for i in 0..w.len() {
        if !w.is_up(i) {
            println!("node {i}: down ({})", w.id_of(i));
            continue;
        }
        let c = w.core(i);
        let st = c.status();
        println!(
            "node {i} ({}): {:?} term {} commit {} last {} base {} applied {} config {:?} progress {:?}",
            st.id,
            st.role,
            st.term,
            st.commit_index,
            st.last_log_index,
            st.log_base,
            w.applied_index(i),
            st.configuration,
            c.describe_progress()
        );
    }
    println!("in flight: {:?}", w.net.in_flight());
    println!("{outcome:?}");
}

#[test]
fn five_node_clusters_under_faults_agree_and_lose_no_acknowledged_proposal() {
    let outcomes = run_seeds(1000..1100, |_| 5, sweep_setup);
    let (acked, installs) = sum(&outcomes);
    let reads = lease_reads(&outcomes);
    println!("100 seeds: {acked} acknowledged, {reads} lease reads checked");
    assert_lease_reads(reads, LEASE_READS_5);
    assert!(installs > 10, "snapshots installed: {installs}");
    assert!(
        acked > 1_500,
        "the workload must actually commit proposals ({acked})"
    );
}

/// A thousand seeds, three and five nodes mixed, with every fault the simulator has: the
/// crash semantics (unsynced writes lost, torn records, failed writes) must actually happen.
#[test]
fn a_thousand_seeds_of_crashes_torn_writes_and_failed_disks_keep_raft_safe() {
    let outcomes = run_seeds(10_000..11_000, nodes_for, sweep_setup);
    let (acked, installs) = sum(&outcomes);
    let total = |f: fn(&Outcome) -> usize| outcomes.iter().map(f).sum::<usize>();
    let crashes = total(|o| o.stats.crashes);
    let torn = total(|o| o.stats.torn);
    let fatal = total(|o| o.stats.fatal_stops);
    let refused = total(|o| o.stats.refused_writes);
    let reads = lease_reads(&outcomes);
    let pauses = total(|o| o.stats.pauses);
    let resumed = total(|o| o.stats.resumed_leader_reads);
    let deposed = total(|o| o.stats.resumed_deposed_reads);
    println!(
        "1000 seeds x {CHAOS_TICKS} ticks of faults: {acked} acknowledged, {installs} snapshot \
         installs, {crashes} crashes ({torn} torn writes), {fatal} stops on a failed write, \
         {refused} refused writes, {pauses} pauses, {reads} lease reads checked ({resumed} by a \
         leader the moment it resumed, {deposed} of them while a later leader ruled)"
    );
    // Pauses happen, and so does the case they are for: a leader that resumes after the
    // cluster moved on tries a lease read before anything tells it (its clock must refuse).
    assert!(pauses > 1_000, "pauses {pauses}");
    assert!(
        !leases_on() || deposed > 10,
        "deposed leaders' reads: {deposed}"
    );
    assert_lease_reads(reads, LEASE_READS_MIXED);
    assert!(acked > 60_000, "proposals acknowledged: {acked}");
    assert!(installs > 500, "snapshots installed: {installs}");
    assert!(
        crashes > 3_000 && torn > 300,
        "crashes {crashes}, torn {torn}"
    );
    assert!(
        fatal > 500 && refused > 800,
        "fatal {fatal}, refused {refused}"
    );
}

/// Replays one seed with `SIM_SEED=<seed>` (and `SIM_NODES`, default: the mixed runs' size;
/// `SIM_MEMBERSHIP=1` for a run with membership changes); does nothing otherwise.
#[test]
fn replay_one_seed() {
    let Ok(seed) = std::env::var("SIM_SEED") else {
        return;
    };
    let seed: u64 = seed.parse().expect("SIM_SEED is a seed");
    let n = std::env::var("SIM_NODES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| nodes_for(seed));
    let membership = membership_from_env();
    let outcomes = run_plans(
        [seed],
        |_| Plan {
            nodes: n,
            membership,
        },
        |_| {},
    );
    println!("{:?}", outcomes[0]);
}

/// The simulation has teeth: carried out without persist-before-send (a message leaves before
/// the write it depends on is durable), some seed of the mixed runs breaks a safety property.
/// (Measured when this was written: 13 of the 1,000 seeds, the first after 127 seeds.)
#[test]
fn sending_before_the_write_is_durable_is_caught() {
    let caught = (10_000..11_000u64).find(|&seed| {
        std::panic::catch_unwind(|| {
            kvstore::sim::run_seed_with(nodes_for(seed), seed, |w| {
                w.break_persist_before_send = true
            })
        })
        .is_err()
    });
    assert!(
        caught.is_some(),
        "no seed caught a node that sends before its write is durable"
    );
}

/// The pause fault has teeth: a leader that checks its lease against the clock as it read
/// before a pause (it checked, stalled, and answered without checking again) serves a stale
/// read in some seed of the mixed runs, and the checker says so.
#[test]
fn a_lease_checked_before_a_pause_and_not_after_is_caught() {
    let mut other = 0;
    let caught = (10_000..11_000u64).find(|&seed| {
        let run = std::panic::catch_unwind(|| {
            kvstore::sim::run_seed_with(nodes_for(seed), seed, |w| {
                w.break_lease_check_across_pause = true
            })
        });
        match run {
            Ok(_) => false,
            Err(e) => {
                let why = kvstore::telemetry::panic_message(e.as_ref());
                other += usize::from(!why.contains("lease read"));
                why.contains("lease read")
            }
        }
    });
    println!("caught: {caught:?}; {other} seeds failed for another reason");
    assert!(
        caught.is_some(),
        "no seed caught a lease read checked before a pause ({other} failed otherwise)"
    );
}

/// A thousand seeds, three and five initial nodes mixed with two spare slots, with every fault
/// above and membership changes and leadership transfers at random: learners join (new nodes,
/// empty), are promoted, members are removed (the removed keep running, then new nodes take
/// their slots), leadership moves. Safe throughout, and at the end every member agrees.
#[test]
fn a_thousand_seeds_with_membership_changes_stay_safe_and_converge() {
    let outcomes = run_plans(
        20_000..21_000,
        |s| Plan::membership(nodes_for(s)),
        sweep_setup,
    );
    let total = |f: fn(&Outcome) -> usize| outcomes.iter().map(f).sum::<usize>();
    let acked = total(|o| o.acked);
    let configs = total(|o| o.configs);
    let asked = total(|o| o.stats.changes_asked);
    let proposed = total(|o| o.stats.changes_proposed);
    let rejected = total(|o| o.stats.changes_rejected);
    let joins = total(|o| o.stats.joins);
    let retired = total(|o| o.stats.retired);
    let transfers = total(|o| o.stats.transfers_started);
    let transfers_asked = total(|o| o.stats.transfers_asked);
    let last_voter = total(|o| o.stats.last_voter_refused);
    let crashes = total(|o| o.stats.crashes);
    let reads = lease_reads(&outcomes);
    let grown = outcomes.iter().filter(|o| o.voters > 3).count();
    let shrunk = outcomes.iter().filter(|o| o.voters < 3).count();
    println!(
        "1000 membership seeds x {CHAOS_TICKS} ticks: {acked} acknowledged, {crashes} crashes; \
         {asked} changes asked, {proposed} proposed, {rejected} rejected, {configs} \
         configuration entries agreed; {joins} nodes joined, {retired} removed nodes retired; \
         {transfers} of {transfers_asked} transfers started; {last_voter} removals of the last \
         voter refused; {grown} runs end with more than 3 voters, {shrunk} with fewer; {reads} \
         lease reads checked"
    );
    assert_lease_reads(reads, LEASE_READS_MEMBERSHIP);
    // Measured when this was written: 77,544 acknowledged, 4,630 crashes, 15,262
    // configuration entries, 6,374 joins, 5,158 retired, 5,521 transfers, 2,208 refusals.
    assert!(acked > 50_000, "proposals acknowledged: {acked}");
    assert!(crashes > 3_000, "crashes: {crashes}");
    // The operator must actually change things.
    assert!(configs > 8_000, "configuration entries agreed: {configs}");
    assert!(
        joins > 3_000 && retired > 2_500,
        "joins {joins}, retired {retired}"
    );
    assert!(transfers > 2_500, "transfers started: {transfers}");
    assert!(
        last_voter > 500,
        "removals of the last voter refused: {last_voter}"
    );
    assert!(
        grown > 100 && shrunk > 100,
        "grown {grown}, shrunk {shrunk}"
    );
}

/// The lease-read invariant has teeth: outside the leases' assumptions (node 0's clock runs at
/// half of real speed and its election timeout, hence its hold and its lease, is twice the
/// default; the others keep real-time clocks and half the default timeout, so node 0's lease
/// outlives the time they take to elect a new leader and commit a write), some seed serves a
/// lease read that misses an acknowledged write, and the checker says so. Searches a bounded
/// number of seeds (measured when this was written: seed 10031, the 32nd, a leader of term 26
/// reading at index 48 after a write was acknowledged at index 50 in term 28; of the 1,000
/// seeds, 10 are caught and 1 fails for another reason); seeds that fail for another reason
/// (liveness under these settings is not the point) are skipped.
///
/// Such a violation is rare, and which setting finds one depends on timing elsewhere: node 0's
/// clock at a tenth of real speed (the setting before followers' answers to heartbeats stopped
/// waiting for their disk) caught 1 seed in 1,000 then and none after; at half speed, 10.
///
/// Clock rates alone do not break it here: in the simulator ticks never queue up, so the
/// tick-counted protections (a follower refuses votes for an election timeout of ticks after
/// hearing from its leader; a leader cut off steps down within two election timeouts) keep a
/// new leader from acknowledging a write while a stale one still leads (measured: 1,000 seeds
/// each with rates 0.5/1.5/1.5, 0.25/2/2, 0.05/5/5 and 0.25/1.5/1.5, none caught; nor rates
/// 0.5/1.5/1.5 or 0.25/1/1 with timeouts 12/6/6 ticks, nor 0.1/1/1 with 12/4/4).
/// `SIM_LEASE_RATES=r0,r1,r2` and
/// `SIM_LEASE_TICKS=t0,t1,t2` try other settings.
#[test]
fn lease_reads_outside_the_clock_and_timeout_assumptions_are_caught() {
    let list = |var: &str, default: &str| -> Vec<f64> {
        std::env::var(var)
            .unwrap_or_else(|_| default.to_owned())
            .split(',')
            .map(|r| r.parse().expect("a number"))
            .collect()
    };
    let rates = list("SIM_LEASE_RATES", "0.5,1,1");
    let ticks = list("SIM_LEASE_TICKS", "24,6,6");
    let mut other = 0;
    let caught = (10_000..10_000 + NEGATIVE_BUDGET).find(|&seed| {
        let run = std::panic::catch_unwind(|| {
            kvstore::sim::run_seed_with(3, seed, |w| {
                for (i, rate) in rates.iter().enumerate() {
                    w.clocks.set_rate(i, 0, *rate);
                }
                for (i, t) in ticks.iter().enumerate() {
                    w.set_election_ticks(i, *t as u32);
                }
            })
        });
        match run {
            Ok(_) => false,
            Err(e) => {
                let why = kvstore::telemetry::panic_message(e.as_ref());
                if why.contains("lease read") {
                    println!("seed {seed}: {why}");
                    true
                } else {
                    other += 1;
                    false
                }
            }
        }
    });
    println!("caught: {caught:?}; {other} seeds failed for another reason");
    assert!(
        caught.is_some(),
        "no seed caught a lease read outside the assumptions ({other} failed otherwise)"
    );
}
