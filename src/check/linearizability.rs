//! Wing–Gong/Lowe linearizability checking of key-value histories, per key.
//!
//! Each key is an independent register (`Option<String>`), so a history is linearizable iff the
//! sub-history of every key is. For one key the checker searches for an order of the operations
//! that respects real time (an operation that returned before another was called comes first)
//! and the register's semantics, with Lowe's memoization of (set of linearized operations,
//! register state) so each configuration is explored once. Operations with unknown outcome have
//! an infinite return time: they may take effect at any point after their call, or never
//! (linearized last, where nothing observes them). Unknown reads carry no information and are
//! dropped.

use std::collections::{BTreeMap, HashSet};

use super::history::{Op, OpInput};

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

type State = Option<String>;

/// Apply `op` to `state` if the register allows its observed output; returns the new state.
fn step(state: &State, op: &Op) -> Option<State> {
    let out = &op.output;
    match &op.input {
        OpInput::Set { value, .. } => Some(Some(value.clone())),
        OpInput::Get { .. } => (out.unknown || out.value == *state).then(|| state.clone()),
        OpInput::Delete { .. } => {
            if out.unknown {
                return Some(None);
            }
            match (out.deleted, state) {
                (Some(true), Some(_)) | (Some(false), None) => Some(None),
                _ => None,
            }
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
    let mut state: State = None;
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
            input: OpInput::Set {
                key: "k".into(),
                value: v.into(),
            },
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
            input: OpInput::Delete { key: "k".into() },
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
        other.input = OpInput::Set {
            key: "other".into(),
            value: "x".into(),
        };
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
}
