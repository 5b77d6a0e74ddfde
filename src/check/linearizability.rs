//! Wing–Gong/Lowe linearizability checking of key-value histories, per key.
//!
//! Each key is an independent register, so a history is linearizable iff the sub-history of
//! every key is. A key's state is its value and its modIndex (the log index of the write that
//! made the value; 0 while the key does not exist), so compare-and-set (`ifModIndex`,
//! `ifValue`), the indexes writes return and the `modIndex` reads return are all checked. For
//! one key the checker searches for an order of the operations that respects real time (an
//! operation that returned before another was called comes first) and those semantics, with
//! Lowe's memoization of (set of linearized operations, state) so each configuration is
//! explored once. Operations with unknown outcome have an infinite return time: they may take
//! effect at any point after their call, or never (linearized last, where nothing observes
//! them). Unknown reads carry no information and are dropped.
//!
//! A write whose index is not known (its answer was lost, or the server reports no indexes)
//! leaves the modIndex fixed but unknown, bounded below by the index before it (log indexes
//! only grow); the first later observation (a read's `modIndex`, a 409's reported modIndex, a
//! compare-and-set that succeeded with `ifModIndex`) fixes it. So the search stays exact for
//! everything it observes, and a history without any index reduces to the plain register.

use std::collections::{BTreeMap, HashSet};

use super::history::{Op, OpInput, OpOutput};

/// The verdict on a history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckResult {
    Linearizable,
    /// The sub-history of `key` has no valid linearization.
    Violation {
        key: String,
        ops: Vec<Op>,
    },
    /// The search for `key` ran out of its step budget before deciding (many concurrent
    /// operations with unknown outcome can make it exponential).
    Undecided {
        key: String,
    },
}

/// A key's modIndex as far as the search knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum ModIndex {
    /// Exactly this (0: the key does not exist).
    Known(u64),
    /// Fixed but not observed yet: some index above this one.
    Above(u64),
}

impl ModIndex {
    /// If the modIndex can be `n`: the state that knows it is.
    fn could_be(self, n: u64) -> Option<ModIndex> {
        match self {
            ModIndex::Known(k) => (k == n).then_some(ModIndex::Known(n)),
            ModIndex::Above(k) => (n > k).then_some(ModIndex::Known(n)),
        }
    }

    /// A lower bound (exact when known).
    fn floor(self) -> u64 {
        match self {
            ModIndex::Known(k) | ModIndex::Above(k) => k,
        }
    }
}

/// One key's state: its value (`None`: absent) and its modIndex.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct State {
    value: Option<String>,
    mod_index: ModIndex,
}

impl State {
    fn absent() -> State {
        State {
            value: None,
            mod_index: ModIndex::Known(0),
        }
    }
}

/// Do the preconditions hold in `state`? `None` when it depends on a modIndex not observed
/// yet (`ifModIndex` above its lower bound).
fn precondition(
    state: &State,
    if_mod_index: Option<u64>,
    if_value: Option<&String>,
) -> Option<bool> {
    if let Some(v) = if_value {
        if state.value.as_ref() != Some(v) {
            return Some(false);
        }
    }
    match (if_mod_index, state.mod_index) {
        (None, _) => Some(true),
        (Some(n), ModIndex::Known(k)) => Some(n == k),
        (Some(n), ModIndex::Above(k)) if n > k => None,
        (Some(_), ModIndex::Above(_)) => Some(false),
    }
}

/// A write with preconditions `pre` whose outcome is `out`, from `state`; `apply` is the state
/// it leaves when it takes effect, given the modIndex it took effect on.
fn write_step(
    state: &State,
    pre: (Option<u64>, Option<&String>),
    out: &OpOutput,
    apply: impl Fn(ModIndex) -> Option<State>,
) -> Option<State> {
    let (if_mod_index, if_value) = pre;
    if let Some(m) = out.precondition_failed {
        // Refused, and nothing changed: the key's modIndex was m, and it fails there.
        let known = State {
            value: state.value.clone(),
            mod_index: state.mod_index.could_be(m)?,
        };
        return (precondition(&known, if_mod_index, if_value) == Some(false)).then_some(known);
    }
    // When the precondition holds only if the unobserved modIndex is `ifModIndex`, it is.
    let holds_at = |n: Option<u64>| match n {
        Some(n) => state.mod_index.could_be(n),
        None => Some(state.mod_index),
    };
    match precondition(state, if_mod_index, if_value) {
        // It failed: an unknown write took no effect; a definite one cannot have succeeded.
        Some(false) => out.unknown.then(|| state.clone()),
        Some(true) => apply(state.mod_index),
        None => apply(holds_at(if_mod_index)?),
    }
}

/// Apply `op` to `state` if the model allows its observed output; returns the new state.
fn step(state: &State, op: &Op) -> Option<State> {
    let out = &op.output;
    match &op.input {
        OpInput::Set {
            value,
            if_mod_index,
            if_value,
            ..
        } => write_step(state, (*if_mod_index, if_value.as_ref()), out, |before| {
            let mod_index = match out.index {
                // Log indexes grow: a write's index is above the one it overwrote.
                Some(i) if !out.unknown => (i > before.floor()).then_some(ModIndex::Known(i))?,
                _ => ModIndex::Above(before.floor()),
            };
            Some(State {
                value: Some(value.clone()),
                mod_index,
            })
        }),
        OpInput::Get { .. } => {
            if out.unknown {
                return Some(state.clone());
            }
            if out.value != state.value {
                return None;
            }
            let mod_index = match (out.index, &state.value) {
                (Some(m), Some(_)) => state.mod_index.could_be(m)?,
                _ => state.mod_index,
            };
            Some(State {
                value: state.value.clone(),
                mod_index,
            })
        }
        OpInput::Delete { if_mod_index, .. } => {
            // A 404: the key was absent, whatever the server checked first.
            if !out.unknown && out.deleted == Some(false) && out.precondition_failed.is_none() {
                return state.value.is_none().then(|| state.clone());
            }
            write_step(state, (*if_mod_index, None), out, |_| {
                if out.unknown {
                    return Some(State::absent());
                }
                match (out.deleted, &state.value) {
                    (Some(true), Some(_)) | (Some(false), None) => Some(State::absent()),
                    _ => None,
                }
            })
        }
    }
}

/// A node of the call/return event list.
#[derive(Debug, Clone, Copy)]
struct Event {
    op: usize,
    is_call: bool,
    /// For a call, its return event; for a return, its call event.
    partner: usize,
    prev: usize,
    next: usize,
}

/// Check one key's operations (Lowe's algorithm with memoization); `None` if it took more
/// than `budget` search steps.
fn check_key(ops: &[Op], budget: u64) -> Option<bool> {
    let n = ops.len();
    if n == 0 {
        return Some(true);
    }
    let mut steps = 0u64;
    // Events sorted by time; at equal times calls come first (more concurrency, never a false
    // alarm).
    let mut times: Vec<(i64, bool, usize)> = Vec::with_capacity(2 * n);
    for (i, op) in ops.iter().enumerate() {
        times.push((op.call, true, i));
        times.push((op.ret, false, i));
    }
    times.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    // Index 0 is the list head (a sentinel); events are 1..=2n.
    let head = 0;
    let mut ev = vec![
        Event {
            op: usize::MAX,
            is_call: false,
            partner: 0,
            prev: 0,
            next: 1,
        };
        2 * n + 2
    ];
    let mut call_pos = vec![0; n];
    let mut ret_pos = vec![0; n];
    for (pos, (_, is_call, op)) in times.iter().enumerate() {
        let e = pos + 1;
        ev[e] = Event {
            op: *op,
            is_call: *is_call,
            partner: 0,
            prev: e - 1,
            next: if e == 2 * n { usize::MAX } else { e + 1 },
        };
        if *is_call {
            call_pos[*op] = e;
        } else {
            ret_pos[*op] = e;
        }
    }
    ev[head].next = 1;
    for op in 0..n {
        ev[call_pos[op]].partner = ret_pos[op];
        ev[ret_pos[op]].partner = call_pos[op];
    }

    let words = n.div_ceil(64);
    let mut linearized = vec![0u64; words];
    let mut cache: HashSet<(Vec<u64>, State)> = HashSet::new();
    let mut stack: Vec<(usize, State)> = Vec::new();
    let mut state = State::absent();
    let mut entry = ev[head].next;

    let lift = |ev: &mut Vec<Event>, e: usize| {
        let (p, nx) = (ev[e].prev, ev[e].next);
        ev[p].next = nx;
        if nx != usize::MAX {
            ev[nx].prev = p;
        }
        let r = ev[e].partner;
        let (p, nx) = (ev[r].prev, ev[r].next);
        ev[p].next = nx;
        if nx != usize::MAX {
            ev[nx].prev = p;
        }
    };
    let unlift = |ev: &mut Vec<Event>, e: usize| {
        let r = ev[e].partner;
        let (p, nx) = (ev[r].prev, ev[r].next);
        ev[p].next = r;
        if nx != usize::MAX {
            ev[nx].prev = r;
        }
        let (p, nx) = (ev[e].prev, ev[e].next);
        ev[p].next = e;
        if nx != usize::MAX {
            ev[nx].prev = e;
        }
    };

    while ev[head].next != usize::MAX {
        steps += 1;
        if steps > budget {
            return None;
        }
        let at_call = entry != usize::MAX && ev[entry].is_call;
        if at_call {
            let op = ev[entry].op;
            if let Some(new_state) = step(&state, &ops[op]) {
                let mut lin = linearized.clone();
                lin[op / 64] |= 1 << (op % 64);
                if cache.insert((lin.clone(), new_state.clone())) {
                    stack.push((entry, state));
                    state = new_state;
                    linearized = lin;
                    lift(&mut ev, entry);
                    entry = ev[head].next;
                    continue;
                }
            }
            entry = ev[entry].next;
        } else {
            // A return whose call could not be linearized in time (or the end of the list):
            // undo the most recent choice and try the next operation after it.
            let Some((e, s)) = stack.pop() else {
                return Some(false);
            };
            state = s;
            let op = ev[e].op;
            linearized[op / 64] &= !(1 << (op % 64));
            unlift(&mut ev, e);
            entry = ev[e].next;
        }
    }
    Some(true)
}

/// Check a whole history, key by key. Unknown reads and failed operations (no effect) are
/// dropped first. Never gives up.
pub fn check_history(ops: &[Op]) -> CheckResult {
    check_history_within(ops, u64::MAX)
}

/// Like [`check_history`], but gives up on a key after `steps_per_key` search steps
/// ([`CheckResult::Undecided`]).
pub fn check_history_within(ops: &[Op], steps_per_key: u64) -> CheckResult {
    let mut by_key: BTreeMap<String, Vec<Op>> = BTreeMap::new();
    for op in ops {
        if op.output.failed || (op.output.unknown && matches!(op.input, OpInput::Get { .. })) {
            continue;
        }
        let mut op = op.clone();
        if op.output.unknown {
            op.ret = i64::MAX;
        }
        by_key
            .entry(op.input.key().to_owned())
            .or_default()
            .push(op);
    }
    for (key, ops) in by_key {
        match check_key(&ops, steps_per_key) {
            Some(true) => {}
            Some(false) => return CheckResult::Violation { key, ops },
            None => return CheckResult::Undecided { key },
        }
    }
    CheckResult::Linearizable
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::history::OpOutput;

    fn set(client: u64, v: &str, call: i64, ret: i64) -> Op {
        Op {
            client_id: client,
            input: OpInput::set("k", v),
            call,
            output: OpOutput::stored(),
            ret,
        }
    }

    fn get(client: u64, v: Option<&str>, call: i64, ret: i64) -> Op {
        Op {
            client_id: client,
            input: OpInput::Get { key: "k".into() },
            call,
            output: OpOutput::read(v.map(str::to_owned)),
            ret,
        }
    }

    fn del(client: u64, found: bool, call: i64, ret: i64) -> Op {
        Op {
            client_id: client,
            input: OpInput::delete("k"),
            call,
            output: OpOutput::deleted(found),
            ret,
        }
    }

    fn unknown(mut op: Op) -> Op {
        op.output = OpOutput::unknown();
        op.ret = i64::MAX;
        op
    }

    fn ok(ops: &[Op]) -> bool {
        check_history(ops) == CheckResult::Linearizable
    }

    #[test]
    fn sequential_histories() {
        assert!(ok(&[]));
        assert!(ok(&[
            get(1, None, 0, 1),
            set(1, "a", 2, 3),
            get(1, Some("a"), 4, 5)
        ]));
        assert!(!ok(&[set(1, "a", 0, 1), get(1, None, 2, 3)]), "lost write");
        assert!(
            !ok(&[get(1, Some("a"), 0, 1)]),
            "read of a value never written"
        );
        assert!(
            !ok(&[
                set(1, "a", 0, 1),
                set(1, "b", 2, 3),
                get(1, Some("a"), 4, 5)
            ]),
            "stale read"
        );
        assert!(ok(&[
            set(1, "a", 0, 1),
            del(1, true, 2, 3),
            del(1, false, 4, 5),
            get(1, None, 6, 7)
        ]));
        assert!(
            !ok(&[set(1, "a", 0, 1), del(1, false, 2, 3)]),
            "delete must find the key"
        );
        assert!(!ok(&[del(1, true, 0, 1)]), "nothing to delete");
    }

    #[test]
    fn concurrent_operations_may_take_effect_in_either_order() {
        // Two overlapping sets; later reads agree on one final value.
        assert!(ok(&[
            set(1, "a", 0, 10),
            set(2, "b", 1, 9),
            get(3, Some("a"), 11, 12),
            get(3, Some("a"), 13, 14)
        ]));
        assert!(ok(&[
            set(1, "a", 0, 10),
            set(2, "b", 1, 9),
            get(3, Some("b"), 11, 12)
        ]));
        // But once a read saw b after both returned, a later read cannot go back to a.
        assert!(!ok(&[
            set(1, "a", 0, 10),
            set(2, "b", 1, 9),
            get(3, Some("b"), 11, 12),
            get(3, Some("a"), 13, 14)
        ]));
        // A read concurrent with a write may see the old or the new value...
        assert!(ok(&[
            set(1, "a", 0, 1),
            set(2, "b", 2, 10),
            get(3, Some("a"), 3, 4),
            get(4, Some("b"), 5, 6)
        ]));
        // ...but not new then old (the classic non-linearizable pair of reads).
        assert!(!ok(&[
            set(1, "a", 0, 1),
            set(2, "b", 2, 10),
            get(3, Some("b"), 3, 4),
            get(4, Some("a"), 5, 6)
        ]));
    }

    #[test]
    fn unknown_writes_may_or_may_not_take_effect() {
        // An unknown set that was observed.
        assert!(ok(&[unknown(set(1, "a", 0, 1)), get(2, Some("a"), 5, 6)]));
        // An unknown set that never happened.
        assert!(ok(&[unknown(set(1, "a", 0, 1)), get(2, None, 5, 6)]));
        // But not before its call.
        assert!(!ok(&[get(2, Some("a"), 0, 1), unknown(set(1, "a", 2, 3))]));
        // Observed, then not: only another write could explain that.
        assert!(!ok(&[
            unknown(set(1, "a", 0, 1)),
            get(2, Some("a"), 5, 6),
            get(2, None, 7, 8)
        ]));
        assert!(ok(&[
            unknown(set(1, "a", 0, 1)),
            get(2, Some("a"), 5, 6),
            unknown(del(3, true, 6, 7)),
            get(2, None, 8, 9)
        ]));
        // Unknown reads say nothing.
        assert!(ok(&[set(1, "a", 0, 1), unknown(get(2, Some("zzz"), 2, 3))]));
    }

    #[test]
    fn keys_are_checked_independently_and_the_violation_names_its_key() {
        let mut other = set(1, "x", 0, 1);
        other.input = OpInput::set("other", "x");
        let bad = [other, set(1, "a", 0, 1), get(1, None, 2, 3)];
        match check_history(&bad) {
            CheckResult::Violation { key, ops } => {
                assert_eq!(key, "k");
                assert_eq!(ops.len(), 2);
            }
            other => panic!("must be refused: {other:?}"),
        }
    }

    #[test]
    fn a_write_that_failed_for_certain_is_left_out_so_reading_its_value_is_a_violation() {
        let mut failed = set(1, "x", 0, 1);
        failed.output = OpOutput::failed();
        assert_eq!(
            check_history(&[failed.clone(), get(2, None, 2, 3)]),
            CheckResult::Linearizable
        );
        assert!(matches!(
            check_history(&[failed, get(2, Some("x"), 2, 3)]),
            CheckResult::Violation { .. }
        ));
    }

    #[test]
    fn a_search_over_budget_is_undecided_not_a_verdict() {
        // Many concurrent writes of unknown outcome and a read: hard to decide in 10 steps.
        let mut ops: Vec<Op> = (0..12)
            .map(|i| {
                let mut o = set(i, &format!("v{i}"), 0, 1);
                o.output = OpOutput::unknown();
                o.ret = i64::MAX;
                o
            })
            .collect();
        ops.push(get(99, Some("v3"), 5, 6));
        assert_eq!(
            check_history_within(&ops, 10),
            CheckResult::Undecided { key: "k".into() }
        );
        assert_eq!(check_history(&ops), CheckResult::Linearizable);
    }

    #[test]
    fn thousands_of_concurrent_ops_on_one_key_check_quickly() {
        // 8 clients, each 500 sequential ops, overlapping; a register that serializes them.
        let mut ops = Vec::new();
        let mut value: Option<String> = None;
        let mut t = 0i64;
        for round in 0..500 {
            for c in 0..8u64 {
                let call = t;
                let ret = t + 20; // every op overlaps the next few
                t += 3;
                let op = match (round + c) % 3 {
                    0 => {
                        let v = format!("{c}-{round}");
                        value = Some(v.clone());
                        set(c, &v, call, ret)
                    }
                    1 => get(c, value.as_deref(), call, ret),
                    _ => {
                        let found = value.take().is_some();
                        del(c, found, call, ret)
                    }
                };
                ops.push(op);
            }
        }
        // "Quickly" as work, not a stopwatch: 4,000 ops decide within 100 search steps per op
        // (the search is linear here, not exponential).
        assert_eq!(
            check_history_within(&ops, 100 * ops.len() as u64),
            CheckResult::Linearizable
        );
    }

    /// A set of `v` if the key's modIndex is `at` (and its value `if_value`, if given).
    fn cas(
        client: u64,
        v: &str,
        at: Option<u64>,
        if_value: Option<&str>,
        call: i64,
        ret: i64,
    ) -> Op {
        Op {
            client_id: client,
            input: OpInput::Set {
                key: "k".into(),
                value: v.into(),
                if_mod_index: at,
                if_value: if_value.map(str::to_owned),
            },
            call,
            output: OpOutput::stored(),
            ret,
        }
    }

    fn at(mut op: Op, index: u64) -> Op {
        op.output.index = Some(index);
        op
    }

    fn refused(mut op: Op, mod_index: u64) -> Op {
        op.output = OpOutput::conflict(mod_index);
        op
    }

    fn read_at(client: u64, v: &str, mod_index: u64, call: i64, ret: i64) -> Op {
        Op {
            output: OpOutput::read_at(v, mod_index),
            ..get(client, None, call, ret)
        }
    }

    #[test]
    fn compare_and_set_histories_that_are_legal_pass() {
        // A counter: create with ifModIndex 0, read, CAS at the read index, a CAS that lost.
        assert!(ok(&[
            at(cas(1, "1", Some(0), None, 0, 1), 3),
            read_at(2, "1", 3, 2, 3),
            at(cas(2, "2", Some(3), None, 4, 5), 6),
            refused(cas(1, "2", Some(3), None, 6, 7), 6),
            read_at(1, "2", 6, 8, 9),
            at(cas(1, "3", Some(6), Some("2"), 10, 11), 12),
        ]));
        // Two concurrent CAS from the same index: one wins, the other sees the winner's index.
        assert!(ok(&[
            at(cas(1, "1", Some(0), None, 0, 1), 3),
            at(cas(2, "a", Some(3), None, 2, 10), 7),
            refused(cas(3, "b", Some(3), None, 2, 10), 7),
            read_at(4, "a", 7, 11, 12),
        ]));
        // ifValue alone; a 409 on a missing key reports 0; ifModIndex 0 on a missing key holds.
        assert!(ok(&[
            refused(cas(1, "x", None, Some("nope"), 0, 1), 0),
            refused(cas(1, "x", Some(5), None, 2, 3), 0),
            at(cas(1, "x", Some(0), None, 4, 5), 9),
            at(cas(1, "y", None, Some("x"), 6, 7), 11),
            refused(cas(1, "z", None, Some("x"), 8, 9), 11),
        ]));
        // A conditional delete, then the key is new again.
        let mut d = del(1, true, 4, 5);
        d.input = OpInput::Delete {
            key: "k".into(),
            if_mod_index: Some(3),
        };
        let mut stale = d.clone();
        stale.output = OpOutput::conflict(0);
        (stale.call, stale.ret) = (6, 7);
        let mut missing = stale.clone();
        missing.output = OpOutput::deleted(false);
        (missing.call, missing.ret) = (8, 9);
        assert!(ok(&[
            at(set(1, "a", 0, 1), 3),
            d,
            stale,
            missing,
            get(1, None, 8, 9),
            at(cas(1, "b", Some(0), None, 10, 11), 20),
        ]));
    }

    #[test]
    fn the_index_of_a_write_whose_answer_was_lost_is_learned_from_later_observations() {
        // The CAS's answer was lost; a read later tells its index; a CAS at it succeeds.
        assert!(ok(&[
            at(set(1, "0", 0, 1), 2),
            unknown(cas(1, "1", Some(2), None, 2, 3)),
            read_at(2, "1", 5, 10, 11),
            at(cas(2, "2", Some(5), None, 12, 13), 14),
        ]));
        // A CAS at an index the unknown write cannot have had (not above the one before it).
        assert!(!ok(&[
            at(set(1, "0", 0, 1), 4),
            unknown(set(1, "1", 2, 3)),
            get(2, Some("1"), 10, 11),
            at(cas(2, "2", Some(4), None, 12, 13), 14),
        ]));
        // Once learned, the index is fixed: two reads of the same value cannot disagree on it.
        assert!(!ok(&[
            unknown(set(1, "1", 0, 1)),
            read_at(2, "1", 5, 10, 11),
            read_at(2, "1", 6, 12, 13),
        ]));
        // A CAS with unknown outcome whose precondition failed took no effect.
        assert!(ok(&[
            at(set(1, "a", 0, 1), 3),
            unknown(cas(1, "b", Some(99), None, 2, 3)),
            read_at(2, "a", 3, 10, 11),
        ]));
        // Without any index (a server without revisions) it is the plain register.
        assert!(ok(&[set(1, "a", 0, 1), get(2, Some("a"), 2, 3)]));
    }

    #[test]
    fn illegal_compare_and_set_histories_are_rejected() {
        // Two CAS from the same modIndex both succeed (sequential, then concurrent).
        assert!(!ok(&[
            at(set(1, "0", 0, 1), 3),
            at(cas(1, "1", Some(3), None, 2, 3), 5),
            at(cas(2, "1", Some(3), None, 4, 5), 6),
        ]));
        assert!(!ok(&[
            at(set(1, "0", 0, 1), 3),
            at(cas(1, "1", Some(3), None, 2, 10), 5),
            at(cas(2, "1", Some(3), None, 2, 10), 6),
        ]));
        // Same without the indexes of the winners (lost answers): still only one can win.
        assert!(!ok(&[
            at(set(1, "0", 0, 1), 3),
            cas(1, "1", Some(3), None, 2, 10),
            cas(2, "1", Some(3), None, 2, 10),
        ]));
        // A 409 reporting a stale modIndex after a later value was acknowledged.
        assert!(!ok(&[
            at(set(1, "a", 0, 1), 5),
            at(set(1, "b", 2, 3), 7),
            refused(cas(2, "c", Some(3), None, 4, 5), 5),
        ]));
        // A 409 whose reported modIndex satisfies the precondition.
        assert!(!ok(&[
            at(set(1, "a", 0, 1), 5),
            refused(cas(2, "c", Some(5), None, 4, 5), 5),
        ]));
        // A CAS that succeeded although the value did not match.
        assert!(!ok(&[
            at(set(1, "a", 0, 1), 5),
            cas(2, "c", None, Some("b"), 4, 5),
        ]));
        // Indexes go backwards.
        assert!(!ok(&[at(set(1, "a", 0, 1), 5), at(set(1, "b", 2, 3), 4)]));
        // A read reports another modIndex than the write it read returned.
        assert!(!ok(&[at(set(1, "a", 0, 1), 5), read_at(2, "a", 6, 2, 3)]));
    }

    #[test]
    fn a_cas_counter_of_many_clients_checks_quickly() {
        // 8 clients: each round all read the counter, then all CAS at the read index; one wins.
        let mut ops = Vec::new();
        let (mut value, mut index) = (0u64, 0u64);
        let mut t = 0i64;
        for _ in 0..200 {
            for c in 0..8u64 {
                ops.push(read_at(c, &value.to_string(), index, t, t + 10));
                if index == 0 {
                    ops.pop();
                    ops.push(get(c, None, t, t + 10));
                }
            }
            t += 11;
            let (read, next) = (index, value + 1);
            index += 3;
            value = next;
            let winner = t as u64 % 8;
            for c in 0..8u64 {
                // Losers are linearized after the winner and see its index.
                let op = cas(c, &next.to_string(), Some(read), None, t, t + 10);
                ops.push(if c == winner {
                    at(op, index)
                } else {
                    refused(op, index)
                });
            }
            t += 11;
        }
        // Not assert_eq!: a failure would print thousands of operations.
        let verdict = check_history_within(&ops, 100 * ops.len() as u64);
        assert!(verdict == CheckResult::Linearizable, "{}", ops.len());
        // And a second winner from the same read is found among them.
        let mut bad = ops.clone();
        let i = bad
            .iter()
            .rposition(|o| o.output.precondition_failed.is_some())
            .unwrap();
        bad[i].output = OpOutput::stored_at(index + 1);
        // Refuting explores every configuration of every round: more steps, still linear.
        let verdict = check_history_within(&bad, 2_000 * ops.len() as u64);
        assert!(
            matches!(verdict, CheckResult::Violation { .. }),
            "{}",
            match verdict {
                CheckResult::Violation { .. } => "violation",
                CheckResult::Undecided { .. } => "undecided",
                CheckResult::Linearizable => "linearizable",
            }
        );
    }
}
