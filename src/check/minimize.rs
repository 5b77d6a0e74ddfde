//! Shrinking a non-linearizable history of one key to a small one that still fails, so a
//! person can read why.
//!
//! Two steps: the shortest prefix by call time that fails (operations still running at the cut
//! become unknown, as they would have been had the run stopped there), then dropping single
//! operations while the rest still fails (only for short histories: each try is a full check),
//! keeping the write of every value a remaining read returned (and of every modIndex a
//! remaining operation names); a compare-and-set that succeeded and whose precondition does not
//! matter to the failure is shown as a plain set, so a chain of increments can shrink.
//! Pure: no I/O, no clock.

use super::history::{Op, OpInput, OpOutput};
use super::linearizability::{check_history_within, CheckResult};

/// Most operations the one-by-one step tries to drop from.
const GREEDY_LIMIT: usize = 400;

/// Search steps allowed per check while shrinking: a try that cannot be decided in time
/// counts as passing, so shrinking never hangs and never reports what it could not prove.
const STEPS: u64 = 2_000_000;

fn fails(ops: &[Op]) -> bool {
    matches!(
        check_history_within(ops, STEPS),
        CheckResult::Violation { .. }
    )
}

/// The modIndex an operation's request or read names, if any.
fn names_index(o: &Op) -> Option<u64> {
    match &o.input {
        OpInput::Set { if_mod_index, .. } | OpInput::Delete { if_mod_index, .. } => *if_mod_index,
        OpInput::Get { .. } => o.output.index,
    }
}

/// A successful compare-and-set without its preconditions (`None` for anything else).
fn without_precondition(o: &Op) -> Option<Op> {
    match &o.input {
        OpInput::Set {
            key,
            value,
            if_mod_index,
            if_value,
        } if o.succeeded()
            && o.output.precondition_failed.is_none()
            && (if_mod_index.is_some() || if_value.is_some()) =>
        {
            Some(Op {
                input: OpInput::set(key.clone(), value.clone()),
                ..o.clone()
            })
        }
        _ => None,
    }
}

/// The operations called before `t`; those that had not returned by `t` become unknown.
fn prefix(ops: &[Op], t: i64) -> Vec<Op> {
    ops.iter()
        .filter(|o| o.call < t)
        .map(|o| {
            let mut o = o.clone();
            if o.ret > t {
                o.output = OpOutput::unknown();
                o.ret = i64::MAX;
            }
            o
        })
        .collect()
}

/// A small sub-history of `ops` (all of one key, not linearizable) that is still not
/// linearizable, sorted by call time. Returns `ops` unchanged if they pass.
pub fn shrink(ops: &[Op]) -> Vec<Op> {
    let mut ops = ops.to_vec();
    ops.sort_by_key(|o| o.call);
    if !fails(&ops) {
        return ops;
    }
    // Bisect on the cut time: `lo` passes, `hi` fails. `hi` starts past every return, so the
    // first candidate is the whole history (cutting before the last return would turn the
    // operation that exposes the failure, often the final read, into an unknown one).
    let mut lo = 0i64;
    let mut hi = i64::MAX;
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if fails(&prefix(&ops, mid)) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    let mut small = prefix(&ops, hi);
    if small.len() <= GREEDY_LIMIT {
        // Passes until nothing more can go (a write becomes removable once the reads of its
        // value are gone).
        loop {
            let before = small.len();
            let mut i = 0;
            while i < small.len() {
                // Keep the write of any value that a remaining read returned: without it the
                // failure would read as "a value nobody wrote", which explains nothing.
                // Same for the write of a modIndex another operation names (a read's
                // modIndex, a 409's, a compare-and-set's ifModIndex).
                let read_back = match &small[i].input {
                    OpInput::Set { value, .. } => {
                        let index = small[i].output.index;
                        small.iter().any(|o| {
                            o.output.value.as_deref() == Some(value.as_str())
                                || (index.is_some()
                                    && (names_index(o) == index
                                        || o.output.precondition_failed == index))
                        })
                    }
                    _ => false,
                };
                let mut without = small.clone();
                without.remove(i);
                if !read_back && fails(&without) {
                    small = without;
                    continue;
                }
                // A compare-and-set that succeeded although its precondition does not matter
                // to the failure reads as a plain set (so a chain of increments can go).
                if let Some(plain) = without_precondition(&small[i]) {
                    let mut weaker = small.clone();
                    weaker[i] = plain;
                    if fails(&weaker) {
                        small = weaker;
                    }
                }
                i += 1;
            }
            if small.len() == before {
                break;
            }
        }
    }
    if fails(&small) {
        small
    } else {
        ops
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(client: u64, input: OpInput, call: i64, output: OpOutput, ret: i64) -> Op {
        Op {
            client_id: client,
            input,
            call,
            output,
            ret,
        }
    }

    fn set(v: &str) -> OpInput {
        OpInput::set("k", v)
    }

    fn get() -> OpInput {
        OpInput::Get { key: "k".into() }
    }

    #[test]
    fn a_stale_read_among_many_good_operations_shrinks_to_the_two_that_explain_it() {
        let mut ops = Vec::new();
        let mut t = 0;
        for i in 0..30 {
            let v = format!("v{i}");
            ops.push(op(1, set(&v), t, OpOutput::stored(), t + 5));
            ops.push(op(2, get(), t + 6, OpOutput::read(Some(v)), t + 9));
            t += 10;
        }
        // After v29 was acknowledged, a read returns v3: stale.
        ops.push(op(
            3,
            get(),
            t + 1,
            OpOutput::read(Some("v3".into())),
            t + 2,
        ));
        assert!(fails(&ops));
        let small = shrink(&ops);
        assert!(fails(&small));
        assert!(small.len() <= 3, "{small:#?}");
        assert!(small
            .iter()
            .any(|o| o.output.value.as_deref() == Some("v3")));
        assert!(
            small.iter().any(|o| o.input == set("v3")),
            "the read's value comes from somewhere"
        );
    }

    #[test]
    fn a_linearizable_history_is_returned_as_is() {
        let ops = vec![
            op(1, set("a"), 0, OpOutput::stored(), 5),
            op(2, get(), 6, OpOutput::read(Some("a".into())), 9),
        ];
        assert_eq!(shrink(&ops), ops);
    }

    #[test]
    fn a_double_compare_and_set_win_among_many_good_increments_shrinks_to_a_few_ops() {
        let cas = |v: u64, at: u64| OpInput::Set {
            key: "k".into(),
            value: v.to_string(),
            if_mod_index: Some(at),
            if_value: None,
        };
        let mut ops = vec![op(1, cas(1, 0), 0, OpOutput::stored_at(2), 1)];
        let mut t = 10;
        let mut index = 2;
        for v in 1..40u64 {
            ops.push(op(
                2,
                get(),
                t,
                OpOutput::read_at(&v.to_string(), index),
                t + 2,
            ));
            ops.push(op(
                1,
                cas(v + 1, index),
                t + 3,
                OpOutput::stored_at(index + 2),
                t + 5,
            ));
            index += 2;
            t += 10;
        }
        // A second CAS from an index already used also "succeeds".
        ops.push(op(3, cas(99, 20), t, OpOutput::stored_at(index + 5), t + 2));
        assert!(fails(&ops));
        let small = shrink(&ops);
        assert!(fails(&small));
        assert!(small.len() <= 4, "{small:#?}");
        assert!(small.iter().any(|o| o.output.index == Some(index + 5)));
    }
}
