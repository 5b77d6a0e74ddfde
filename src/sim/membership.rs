//! Membership changes and leadership transfers in randomized runs, driven by the seed like
//! every other fault: an operator that asks whichever node thinks it leads to add a learner
//! (a new node joins in a free slot, starting empty as `--join` does), promote a learner,
//! remove a member or hand leadership over, and that turns off removed nodes after a while so
//! their slots take new nodes. Every answer is fine (proposed, done, rejected); the only one
//! that is checked here is that the core refuses to remove its last voter. Safety across
//! configurations is the [`Checker`](super::invariants::Checker)'s. Pure: no I/O, no clock.

use rand::Rng;

use super::adapt::Node;
use super::world::World;
use crate::raft::core::{ConfigChange, Input, Output, Role};

/// Per mille of ticks that ask for a membership change, a leadership transfer, and turn off a
/// removed node.
const CHANGE_PER_MILLE: u32 = 30;
const TRANSFER_PER_MILLE: u32 = 8;
const RETIRE_PER_MILLE: u32 = 20;

/// Maybe one membership operation this tick.
pub(super) fn operate(w: &mut World) {
    let r = w.rng.gen_range(0..1000);
    if r < CHANGE_PER_MILLE {
        change(w);
    } else if r < CHANGE_PER_MILLE + TRANSFER_PER_MILLE {
        transfer(w);
    } else if r < CHANGE_PER_MILLE + TRANSFER_PER_MILLE + RETIRE_PER_MILLE {
        retire_one(w);
    }
}

/// A node that thinks it leads (now and then any live node, which should refuse).
fn pick_leader(w: &mut World) -> Option<Node> {
    // A paused node answers no operator either.
    let up: Vec<Node> = (0..w.len())
        .filter(|i| w.is_up(*i) && !w.is_paused(*i))
        .collect();
    if up.is_empty() {
        return None;
    }
    let leaders: Vec<Node> = up
        .iter()
        .copied()
        .filter(|i| w.core(*i).role() == Role::Leader)
        .collect();
    if leaders.is_empty() || w.rng.gen_ratio(1, 10) {
        Some(up[w.rng.gen_range(0..up.len())])
    } else {
        Some(leaders[w.rng.gen_range(0..leaders.len())])
    }
}

/// Ask node `l` for one change: add a learner, promote one, or remove a member.
fn change(w: &mut World) {
    let Some(l) = pick_leader(w) else {
        return;
    };
    let conf = w.core(l).configuration().clone();
    let learners: Vec<String> = conf.learners().iter().map(|m| m.id.clone()).collect();
    let members: Vec<String> = conf.members().map(|m| m.id.clone()).collect();
    // Nodes started to join that are not (or no longer, without being removed) members.
    let waiting: Vec<Node> = (0..w.len())
        .filter(|i| {
            !w.is_free(*i) && conf.member(w.id_of(*i)).is_none() && !w.check.removed(w.id_of(*i))
        })
        .collect();
    let free: Vec<Node> = (0..w.len()).filter(|i| w.is_free(*i)).collect();
    let r = w.rng.gen_range(0..10);
    let change = if r < 4 && !(free.is_empty() && waiting.is_empty()) {
        let pick = w.rng.gen_range(0..free.len() + waiting.len());
        let member = if pick < free.len() {
            match w.join(free[pick], &conf) {
                Some(m) => m,
                None => return,
            }
        } else {
            let i = waiting[pick - free.len()];
            w.core_member(i)
        };
        ConfigChange::AddLearner(member)
    } else if r < 7 && !learners.is_empty() {
        ConfigChange::Promote(learners[w.rng.gen_range(0..learners.len())].clone())
    } else {
        ConfigChange::Remove(members[w.rng.gen_range(0..members.len())].clone())
    };
    let last_voter = match &change {
        ConfigChange::Remove(id) => conf.voters().len() == 1 && conf.is_voter(id),
        _ => false,
    };
    w.stats.changes_asked += 1;
    let out = w.step(l, Input::ChangeMembership(change.clone()));
    for o in &out {
        match o {
            Output::ChangeProposed { .. } | Output::ChangeDone if last_voter => panic!(
                "seed {}: node {l} accepted {change:?}, removing its last voter",
                w.seed
            ),
            Output::ChangeProposed { .. } => w.stats.changes_proposed += 1,
            Output::ChangeRejected { .. } => {
                w.stats.changes_rejected += 1;
                w.stats.last_voter_refused += usize::from(last_voter);
            }
            _ => {}
        }
    }
}

/// Ask node `l` to hand leadership to a voter (itself now and then), or to the most
/// caught-up one.
fn transfer(w: &mut World) {
    let Some(l) = pick_leader(w) else {
        return;
    };
    let voters: Vec<String> = w
        .core(l)
        .configuration()
        .voters()
        .iter()
        .map(|m| m.id.clone())
        .collect();
    let to = if w.rng.gen_ratio(1, 3) {
        None
    } else {
        Some(voters[w.rng.gen_range(0..voters.len())].clone())
    };
    w.stats.transfers_asked += 1;
    let out = w.step(l, Input::TransferLeadership { to });
    if out
        .iter()
        .any(|o| matches!(o, Output::TransferStarted { .. }))
    {
        w.stats.transfers_started += 1;
    }
}

/// Turn off a node the cluster removed (its removal is agreed), freeing its slot.
fn retire_one(w: &mut World) {
    let removed: Vec<Node> = (0..w.len())
        .filter(|i| !w.is_free(*i) && w.check.removed(w.id_of(*i)))
        .collect();
    if !removed.is_empty() {
        let i = removed[w.rng.gen_range(0..removed.len())];
        w.retire(i);
    }
}
