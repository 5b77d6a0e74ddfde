//! Checking recorded client histories for linearizability.
//!
//! - [`history`]: operations on keys as clients saw them (call and return times, outcome), and
//!   their JSON-lines form in porcupine's shape (`clientId, input, call, output, return`).
//! - [`linearizability`]: a Wing–Gong/Lowe checker with memoization, run per key (keys are
//!   independent registers), as porcupine does.
//!
//! Pure: no I/O beyond (de)serializing values the caller reads or writes, no clock.

pub mod history;
pub mod linearizability;

pub use history::{Op, OpInput, OpOutput};
pub use linearizability::{check_history, CheckResult};
