//! Checking recorded client histories for linearizability.
//!
//! - [`history`]: operations on keys as clients saw them (call and return times, outcome), and
//!   their JSON-lines form in porcupine's shape (`clientId, input, call, output, return`).
//! - [`linearizability`]: a Wing–Gong/Lowe checker with memoization, run per key (keys are
//!   independent registers), as porcupine does.
//! - [`minimize`]: shrinks a failing key's history to a few operations a person can read.
//!
//! Those three are pure: no I/O, no clock. `kvstore check` adds the parts that talk to a
//! cluster: [`workload`] (recorded clients), [`local`] (a throwaway local cluster),
//! [`nemesis`] (kills, pauses, partitions), [`report`] (the SVG timeline, pure) and [`command`]
//! (arguments, orchestration, report).

pub mod command;
pub mod history;
pub mod linearizability;
pub mod local;
pub mod minimize;
pub mod nemesis;
pub mod report;
pub mod workload;

pub use history::{Op, OpInput, OpOutput};
pub use linearizability::{check_history, check_history_within, CheckResult};
