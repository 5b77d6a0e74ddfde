//! `kvstore check`: run a recorded workload against a cluster (the user's, or a local one it
//! starts), optionally injecting faults, then check the history for linearizability and the
//! replicas for convergence, and print a verdict.
//!
//! This module wires the parts together and prints; the workload, the nemesis, the local
//! cluster and the checker live in their own modules. Exit status: 0 when the history is
//! linearizable and the replicas converged, 1 when not, 2 on bad arguments or setup failure.

use std::cell::RefCell;
use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::future::join_all;
use rand::rngs::SmallRng;
use rand::SeedableRng;
use serde_json::Value;

use super::history::{to_json_lines, Op, OpInput};
use super::linearizability::{check_history_within, CheckResult};
use super::local::LocalCluster;
use super::minimize::shrink;
use super::nemesis::{leader_of, FaultEvent, FaultKind, Nemesis};
use super::report::timeline_svg;
use super::workload::{
    counter_summary, perform, probe_features, CounterSummary, Counters, Workload, WorkloadKind,
};

/// `kvstore check`: is a running cluster linearizable under your workload (and faults)?
#[derive(Debug, Parser)]
#[command(
    name = "kvstore check",
    about = "Run a recorded set/get/delete workload against a cluster, inject faults (with \
             --local), check the history for linearizability and the replicas for convergence."
)]
pub struct CheckArgs {
    /// Base URLs of the cluster's nodes, comma-separated (e.g. http://10.0.0.1:8080,...).
    #[arg(long, value_delimiter = ',', conflicts_with = "local")]
    pub nodes: Vec<String>,

    /// Start a local cluster of this many nodes on free loopback ports instead (and stop it at
    /// the end).
    #[arg(long, value_name = "N")]
    pub local: Option<usize>,

    /// How long the workload runs: 30s, 2m, 500ms, or plain seconds.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub duration: Duration,

    /// Concurrent clients.
    #[arg(long, default_value_t = 16)]
    pub clients: usize,

    /// Keys the clients share (fewer keys: more contention, slower checking).
    #[arg(long, default_value_t = 8)]
    pub keys: usize,

    /// Most operations per second over all clients; 0: as fast as the cluster answers.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,

    /// Faults to inject, comma-separated: kill, pause, partition, membership, clock (only
    /// with --local; clock needs libfaketime).
    #[arg(long, value_delimiter = ',', value_enum)]
    pub nemesis: Vec<FaultKind>,

    /// The clock fault's largest drift: rates within 1 ± this (0.05: 0.95-1.05, inside the
    /// lease reads' 10% bound; larger values test outside the promise).
    #[arg(long, default_value_t = 0.05, value_parser = parse_drift)]
    pub clock_drift: f64,

    /// Seed of the workload and fault schedule (printed when not given).
    #[arg(long)]
    pub seed: Option<u64>,

    /// Where to write the history (porcupine's JSON lines) [default: a file in the temporary
    /// directory, printed].
    #[arg(long, value_name = "FILE")]
    pub history: Option<PathBuf>,

    /// Timeout of one client request.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub request_timeout: Duration,

    /// The kvstore binary a local cluster runs [default: this one].
    #[arg(long, value_name = "PATH")]
    pub bin: Option<PathBuf>,

    /// PEM CA bundle to trust for https:// nodes (the OS roots are never used)
    /// [default with --tls-dir: DIR/ca.pem].
    #[arg(long, value_name = "PATH")]
    pub ca: Option<PathBuf>,

    /// With --local: run the nodes with TLS on both listeners (client port: HTTPS; a separate
    /// peer port with mutual TLS), using DIR/ca.pem and DIR/nI.pem, DIR/nI-key.pem for node I
    /// (1..N), e.g. as made by scripts/gen-certs.sh. Each certificate must name 127.0.0.1.
    #[arg(long, value_name = "DIR", requires = "local")]
    pub tls_dir: Option<PathBuf>,

    /// A client token, sent as `Authorization: Bearer` on every request (for nodes started with
    /// --client-tokens-file: write role for the workload, admin for the nemesis's
    /// /admin/faults).
    #[arg(
        long,
        env = "KVSTORE_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,

    /// What the clients do: `mixed` (set/get/delete of --keys keys) or `cas` (--keys counters
    /// incremented by compare-and-set; each must end equal to its acknowledged increments).
    #[arg(long, value_enum, default_value = "mixed")]
    pub workload: WorkloadKind,
}

/// `30s`, `2m`, `500ms`, `1.5s` or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("not a duration: {s:?} (try 30s, 2m, 500ms)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        other => return Err(format!("unknown unit {other:?} in {s:?} (ms, s, m, h)")),
    };
    if !(secs.is_finite() && secs > 0.0) {
        return Err(format!("duration must be positive: {s:?}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A clock drift: more than 0, less than 1.
fn parse_drift(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(d) if d > 0.0 && d < 1.0 => Ok(d),
        _ => Err(format!("not a drift between 0 and 1: {s:?} (e.g. 0.05)")),
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Poll every node's `/health` until all report the same applied index and digest; returns
/// it, or the last answers if they never agree within `within`.
async fn converged(
    urls: &[String],
    within: Duration,
    token: Option<&str>,
) -> Result<(u64, String), String> {
    let client = super::http_client(Duration::from_secs(2), token);
    let deadline = Instant::now() + within;
    loop {
        let mut seen = Vec::new();
        for u in urls {
            let h = match client.get(format!("{u}/health")).send().await {
                Ok(mut r) => r
                    .body()
                    .await
                    .ok()
                    .and_then(|b| serde_json::from_slice::<Value>(&b).ok()),
                Err(_) => None,
            };
            seen.push(h.map(|h| {
                (
                    h["store"]["appliedIndex"].as_u64().unwrap_or(0),
                    h["store"]["digest"].as_str().unwrap_or("").to_owned(),
                )
            }));
        }
        if let Some(Some(first)) = seen.first() {
            if seen.iter().all(|s| s.as_ref() == Some(first)) {
                return Ok(first.clone());
            }
        }
        if Instant::now() > deadline {
            return Err(format!("replicas did not converge: {seen:?}"));
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Entry point: `args` are everything after `kvstore check`.
pub fn main(args: Vec<std::ffi::OsString>) -> ExitCode {
    let args: CheckArgs = match crate::config::parse_command("kvstore check", args) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let system = actix_web::rt::System::new();
    match system.block_on(run(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// Run a check; `Ok(true)` when linearizable and converged.
pub async fn run(args: CheckArgs) -> Result<bool, String> {
    if args.clients == 0 || args.keys == 0 {
        return Err("--clients and --keys must be at least 1".into());
    }
    if let Some(ca) = args
        .ca
        .clone()
        .or_else(|| args.tls_dir.as_ref().map(|d| d.join("ca.pem")))
    {
        super::trust_ca(&ca)?;
    }
    let (fresh, id) = uuid::Uuid::new_v4().as_u64_pair();
    let seed = args.seed.unwrap_or(fresh);
    let run_id = format!("{:08x}", id as u32);
    let mut local = None;
    let mut run_dir = None;
    let nodes = match args.local {
        Some(0) => return Err("--local needs at least 1 node".into()),
        Some(n) => {
            let bin = match &args.bin {
                Some(b) => b.clone(),
                None => std::env::current_exe().map_err(|e| format!("which binary am I? {e}"))?,
            };
            let dir = std::env::temp_dir().join(format!("kvstore-check-{run_id}"));
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            let cluster = LocalCluster::start(&bin, n, &dir, args.tls_dir.as_deref())?;
            let urls = cluster.urls();
            local = Some(cluster);
            run_dir = Some(dir);
            urls
        }
        None if args.nodes.is_empty() => {
            return Err("say which cluster: --nodes URL,URL,... or --local N".into())
        }
        None => args
            .nodes
            .iter()
            .map(|u| u.trim().trim_end_matches('/').to_owned())
            .collect(),
    };
    if !args.nemesis.is_empty() && local.is_none() {
        return Err("--nemesis needs --local (faults are injected into nodes it started)".into());
    }
    let mut kinds = args.nemesis.clone();
    kinds.sort();
    kinds.dedup();
    let faketime = super::nemesis::faketime_lib();
    if kinds.contains(&FaultKind::Clock) && faketime.is_none() {
        println!(
            "clock nemesis SKIPPED: libfaketime.so.1 not found (apt-get install libfaketime, or \
             set KVSTORE_FAKETIME_LIB)"
        );
        kinds.retain(|k| *k != FaultKind::Clock);
    }
    println!(
        "kvstore check: {} nodes, {} clients, {} keys, {:?}, nemesis [{}], seed {seed}",
        nodes.len(),
        args.clients,
        args.keys,
        args.duration,
        kinds
            .iter()
            .map(|k| k.as_str())
            .collect::<Vec<_>>()
            .join(",")
    );
    let token = args.token.as_deref();
    let probe = super::http_client(Duration::from_secs(2), token);
    // Wait for a leader before starting the clock.
    let ready_by = Instant::now() + Duration::from_secs(20);
    while leader_of(&probe, &nodes).await.is_none() {
        if Instant::now() > ready_by {
            return Err(format!("no leader among {nodes:?} within 20 s"));
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }

    let key_prefix = format!("check-{run_id}-");
    let features = probe_features(
        &probe,
        &nodes,
        &format!("{key_prefix}probe"),
        Duration::from_secs(20),
    )
    .await?;
    if args.workload == WorkloadKind::Cas && !features.revisions {
        return Err(
            "--workload cas needs compare-and-set: this cluster's writes answer no index \
             (a server without revisions)"
                .into(),
        );
    }
    println!(
        "workload {}; idempotency keys {}; consistency=lease reads {}",
        args.workload.as_str(),
        if features.idempotency {
            "honoured: a write of unknown outcome is sent again with its key"
        } else {
            "not honoured by this cluster: writes of unknown outcome are not retried"
        },
        if features.lease {
            "accepted: a quarter of the reads ask for them"
        } else {
            "refused (400): every read uses the default consistency"
        }
    );
    let workload = Rc::new(Workload {
        nodes: nodes.clone(),
        clients: args.clients,
        keys: args.keys,
        key_prefix,
        rate: args.rate,
        request_timeout: args.request_timeout,
        seed,
        token: args.token.clone(),
        kind: args.workload,
        idempotent: features.idempotency,
        lease_reads: features.lease,
        retry_for: (args.request_timeout * 4).max(Duration::from_secs(10)),
    });
    let counters = Rc::new(Counters::default());
    let start = Instant::now();
    let until = start + args.duration;
    let clients = join_all((0..args.clients as u64).map(|id| {
        let (w, c) = (workload.clone(), counters.clone());
        async move { w.run_client(id, start, until, c).await }
    }));
    let leaders: LeaderSamples = Rc::default();
    let first = leader_of(&probe, &nodes).await.map(|l| l + 1);
    leaders.borrow_mut().push((Duration::ZERO, first));
    let progress = {
        let (c, nodes, leaders) = (counters.clone(), nodes.clone(), leaders.clone());
        let probe = probe.clone();
        // On a terminal, a bar over the run's seconds; the lines below print above it.
        let bar = crate::progress::items(args.duration.as_secs(), "workload", "s");
        async move {
            let mut last = 0;
            // A line a second while the workload runs.
            while Instant::now() + Duration::from_secs(1) < until {
                actix_web::rt::time::sleep(Duration::from_secs(1)).await;
                let leader = leader_of(&probe, &nodes).await;
                leaders
                    .borrow_mut()
                    .push((start.elapsed(), leader.map(|l| l + 1)));
                let ops = c.ops.get();
                let text = format!(
                    "[{:>4.0}s] {ops:>7} ops ({:>5}/s), {:>5} unknown, {:>5} failed, leader {}",
                    start.elapsed().as_secs_f64(),
                    ops - last,
                    c.unknown.get(),
                    c.failed.get(),
                    leader.map_or("none".to_owned(), |l| format!("n{}", l + 1))
                );
                if bar.is_hidden() {
                    println!("{text}");
                } else {
                    bar.println(text);
                    bar.set_position(start.elapsed().as_secs());
                }
                last = ops;
            }
            bar.finish_and_clear();
        }
    };
    let mut nemesis = Nemesis::new(kinds.clone(), SmallRng::seed_from_u64(seed ^ 0x5eed), token);
    if let Some(lib) = &faketime {
        nemesis = nemesis.with_clock(lib, args.clock_drift);
    }
    let faults = async {
        match local.as_mut() {
            Some(cluster) => nemesis.run(cluster, start, until).await,
            None => Ok(()),
        }
    };
    let (histories, fault_result, ()) =
        futures_util::future::join3(clients, faults, progress).await;
    let mut trouble = Vec::new();
    if let Err(e) = fault_result {
        // The faults stopped early; the history is still worth checking.
        println!("nemesis stopped early: {e}");
        trouble.push(format!("nemesis stopped early: {e}"));
    }
    let mut ops: Vec<Op> = histories.into_iter().flatten().collect();
    if features.lease {
        println!("{} reads sent with consistency=lease", counters.lease.get());
    }
    let events: Vec<FaultEvent> = nemesis.events.clone();
    if let Some(cluster) = local.as_mut() {
        if let Err(e) = nemesis.heal(cluster).await {
            trouble.push(format!("could not heal every fault: {e}"));
        }
    }

    // After healing: the replicas converge, and a final linearizable read of every key joins
    // the history (an acknowledged write that was lost shows up here at the latest).
    let converge = converged(&nodes, Duration::from_secs(30), token).await;
    let reader = super::http_client(args.request_timeout, token);
    let final_client = args.clients as u64;
    let reads_by = Instant::now() + Duration::from_secs(60);
    let mut unread = Vec::new();
    for k in 0..args.keys {
        let key = workload.key(k);
        let mut read = false;
        for attempt in 0..20 {
            if Instant::now() > reads_by {
                break;
            }
            let base = &nodes[(k + attempt) % nodes.len()];
            let op = perform(
                &reader,
                base,
                final_client,
                OpInput::Get { key: key.clone() },
                start,
            )
            .await;
            read = op.succeeded();
            ops.push(op);
            if read {
                break;
            }
            actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        }
        if !read {
            unread.push(key);
        }
    }
    if !unread.is_empty() {
        // Without a final read a lost write could go unnoticed: the run cannot pass.
        trouble.push(format!(
            "final reads unavailable for {} keys (e.g. {}): lost writes cannot be ruled out",
            unread.len(),
            unread[0]
        ));
    }
    let counters = (args.workload == WorkloadKind::Cas).then(|| {
        let keys: Vec<String> = (0..args.keys).map(|k| workload.key(k)).collect();
        counter_summary(&ops, &keys, final_client)
    });
    if let Some(c) = &counters {
        for (key, value, acked, unknown) in &c.wrong {
            trouble.push(format!(
                "counter {key} ended at {value}, but {acked} increments were acknowledged and \
                 {unknown} had an unknown outcome"
            ));
        }
    }
    let leaders = leaders.borrow().clone();
    let run = Run {
        counters: counters.as_ref(),
        ops: &ops,
        workload_clients: args.clients as u64,
        events: &events,
        leaders: &leaders,
        converge: &converge,
        trouble: &trouble,
        start,
    };
    let ok = report(&args, &run, run_dir.as_deref(), &run_id)?;
    drop(local);
    if ok {
        if let Some(dir) = run_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
    Ok(ok)
}

/// Of the 100 ms windows inside `events`, how many saw at least one operation called in them
/// succeed: (with a success, all).
fn windows_with_success(ops: &[Op], events: &[&FaultEvent]) -> (usize, usize) {
    let window = Duration::from_millis(100);
    let (mut lit, mut all) = (0, 0);
    for e in events {
        let mut from = e.from;
        while from + window <= e.to {
            let to = from + window;
            all += 1;
            let any = ops.iter().any(|o| {
                let t = Duration::from_nanos(o.call.max(0) as u64);
                o.succeeded() && t >= from && t < to
            });
            lit += usize::from(any);
            from = to;
        }
    }
    (lit, all)
}

/// (time, leader's node number) samples, once a second.
type LeaderSamples = Rc<RefCell<Vec<(Duration, Option<usize>)>>>;

/// Search steps allowed per key before the verdict is "undecided".
const CHECK_STEPS_PER_KEY: u64 = 200_000_000;

/// What a run produced, for the report.
struct Run<'a> {
    /// The workload's operations, then the final reads (client id `workload_clients`).
    ops: &'a [Op],
    workload_clients: u64,
    events: &'a [FaultEvent],
    /// What went wrong besides the verdict (the run fails if anything did).
    trouble: &'a [String],
    /// (time, leader's node number) once a second.
    leaders: &'a [(Duration, Option<usize>)],
    converge: &'a Result<(u64, String), String>,
    start: Instant,
    /// The counters of a `cas` run.
    counters: Option<&'a CounterSummary>,
}

/// Print the figures and the verdict, write the history and the SVG timeline; returns whether
/// the run passed.
fn report(
    args: &CheckArgs,
    run: &Run,
    run_dir: Option<&std::path::Path>,
    run_id: &str,
) -> Result<bool, String> {
    let (all_ops, events, converge, start) = (run.ops, run.events, run.converge, run.start);
    // Figures describe the workload; the final reads only join the check.
    let workload_ops: Vec<Op> = all_ops
        .iter()
        .filter(|o| o.client_id < run.workload_clients)
        .cloned()
        .collect();
    let ops = &workload_ops[..];
    let history = args
        .history
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("kvstore-check-{run_id}.jsonl")));
    std::fs::write(&history, to_json_lines(all_ops))
        .map_err(|e| format!("cannot write {}: {e}", history.display()))?;
    let count = |f: &dyn Fn(&Op) -> bool| ops.iter().filter(|o| f(o)).count();
    let sets = count(&|o| matches!(o.input, OpInput::Set { .. }));
    let gets = count(&|o| matches!(o.input, OpInput::Get { .. }));
    let dels = count(&|o| matches!(o.input, OpInput::Delete { .. }));
    let unknown = count(&|o| o.output.unknown);
    let failed = count(&|o| o.output.failed);
    let elapsed = start.elapsed();
    println!();
    println!(
        "history: {} ({} ops: {} by the workload, {} final reads)",
        history.display(),
        all_ops.len(),
        ops.len(),
        all_ops.len() - ops.len()
    );
    println!(
        "ops: {sets} set, {gets} get, {dels} delete; {unknown} with unknown outcome \
         (timeouts, lost connections, answers that say so), {failed} failed for certain \
         (refused connections, errors that say nothing was applied; left out of the check)"
    );
    let retried = count(&|o| o.output.retries > 0);
    let retried_unknown = count(&|o| o.output.retries > 0 && o.output.unknown);
    let unknown_writes = count(&|o| o.output.unknown && o.input.is_write());
    println!(
        "idempotent retries: {retried} writes sent again with their Idempotency-Key after an \
         unknown outcome, {retried_unknown} of them still unknown at their deadline; \
         {unknown_writes} writes with unknown outcome in all"
    );
    if let Some(c) = run.counters {
        let verdict = if !c.wrong.is_empty() {
            format!("WRONG on {} counters", c.wrong.len())
        } else if c.value == c.acked {
            "equal".to_owned()
        } else {
            format!("within [{}, {}]", c.acked, c.acked + c.unknown)
        };
        println!(
            "counters: final value {} for {} acknowledged increments ({} unknown): {verdict}{}",
            c.value,
            c.acked,
            c.unknown,
            if c.unread.is_empty() {
                String::new()
            } else {
                format!("; {} counters not read at the end", c.unread.len())
            }
        );
    }
    let availability = |f: &dyn Fn(&Op) -> bool| {
        let all: Vec<&Op> = ops.iter().filter(|o| f(o)).collect();
        let ok = all.iter().filter(|o| o.succeeded()).count();
        (ok, all.len())
    };
    let (ok, all) = availability(&|_| true);
    let (succeeded, attempted) = (ok, all);
    println!(
        "availability: {:.1}% of operations succeeded ({ok}/{all})",
        100.0 * ok as f64 / all.max(1) as f64
    );
    let mut lat: Vec<f64> = ops
        .iter()
        .filter(|o| o.succeeded())
        .map(|o| (o.ret - o.call) as f64 / 1e6)
        .collect();
    lat.sort_by(|a, b| a.total_cmp(b));
    println!(
        "latency of successful ops (ms): p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
        percentile(&lat, 0.5),
        percentile(&lat, 0.9),
        percentile(&lat, 0.99),
        lat.last().copied().unwrap_or(0.0)
    );
    if !events.is_empty() {
        println!("faults ({}):", events.len());
        for e in events {
            let (ok, all) = availability(&|o: &Op| {
                let t = Duration::from_nanos(o.call.max(0) as u64);
                t >= e.from && t < e.to
            });
            println!(
                "  {:>6.1}s-{:>6.1}s {:<9} {}; {}/{} ops succeeded meanwhile",
                e.from.as_secs_f64(),
                e.to.as_secs_f64(),
                e.kind.as_str(),
                e.what,
                ok,
                all
            );
        }
    }
    let mut kinds: Vec<FaultKind> = events.iter().map(|e| e.kind).collect();
    kinds.sort();
    kinds.dedup();
    if !kinds.is_empty() {
        println!(
            "by fault kind (ops: share of operations called during the faults that succeeded; \
             time: share of 100 ms windows during them with at least one success; recovery: \
             from the heal until every running node applied what was committed then):"
        );
    }
    for kind in kinds {
        let evs: Vec<&FaultEvent> = events.iter().filter(|e| e.kind == kind).collect();
        let (ok, all) = availability(&|o: &Op| {
            let t = Duration::from_nanos(o.call.max(0) as u64);
            evs.iter().any(|e| t >= e.from && t < e.to)
        });
        let (lit, windows) = windows_with_success(ops, &evs);
        let mut rec: Vec<f64> = evs
            .iter()
            .filter_map(|e| e.recovered)
            .map(|d| d.as_secs_f64() * 1000.0)
            .collect();
        rec.sort_by(|a, b| a.total_cmp(b));
        let unrecovered = evs.iter().filter(|e| e.recovered.is_none()).count();
        println!(
            "  {:<9}: {} faults; ops {:.1}% ({ok}/{all}); time {:.1}% ({lit}/{windows} windows); \
             recovery median {:.0} ms, max {:.0} ms{}",
            kind.as_str(),
            evs.len(),
            100.0 * ok as f64 / all.max(1) as f64,
            100.0 * lit as f64 / windows.max(1) as f64,
            percentile(&rec, 0.5),
            rec.last().copied().unwrap_or(0.0),
            if unrecovered > 0 {
                format!(", {unrecovered} not within 10 s")
            } else {
                String::new()
            }
        );
    }
    let converged_ok = match converge {
        Ok((index, digest)) => {
            println!("replicas converged: applied index {index}, digest {digest}");
            true
        }
        Err(e) => {
            println!("replicas did NOT converge after the faults healed: {e}");
            false
        }
    };
    let checking = Instant::now();
    let spinner = crate::progress::spinner("checking the history for linearizability");
    let verdict = check_history_within(all_ops, CHECK_STEPS_PER_KEY);
    spinner.finish_and_clear();
    let mut failing = Vec::new();
    let took = checking.elapsed();
    let linearizable = match verdict {
        CheckResult::Linearizable => {
            println!(
                "verdict: LINEARIZABLE ({} ops checked in {:.0?}; run took {:.0?})",
                all_ops.len(),
                took,
                elapsed
            );
            true
        }
        CheckResult::Violation { key, ops: key_ops } => {
            let small = shrink(&key_ops);
            failing = small.clone();
            println!(
                "verdict: NOT LINEARIZABLE on key {key} ({} of its ops; checked in {took:.0?})",
                key_ops.len()
            );
            println!(
                "smallest failing sub-history ({} ops, times in ms since start):",
                small.len()
            );
            for o in &small {
                let ret = if o.ret == i64::MAX {
                    "      ?".to_owned()
                } else {
                    format!("{:>7.1}", o.ret as f64 / 1e6)
                };
                println!(
                    "  client {:>3}  {:>7.1} .. {ret}  {}  ->  {}",
                    o.client_id,
                    o.call as f64 / 1e6,
                    serde_json::to_string(&o.input).unwrap_or_default(),
                    serde_json::to_string(&o.output).unwrap_or_default()
                );
            }
            false
        }
        CheckResult::Undecided { key } => {
            println!(
                "verdict: UNDECIDED: the check of key {key} did not finish within its budget \
                 ({CHECK_STEPS_PER_KEY} steps); try fewer clients or more keys"
            );
            false
        }
    };
    let svg_path = history.with_extension("svg");
    let svg = timeline_svg(ops, events, run.leaders, &failing, elapsed);
    match std::fs::write(&svg_path, svg) {
        Ok(()) => println!("timeline: {}", svg_path.display()),
        Err(e) => println!("timeline not written ({}): {e}", svg_path.display()),
    }
    for t in run.trouble {
        println!("FAILED: {t}");
    }
    let ok = linearizable && converged_ok && run.trouble.is_empty();
    // One summary line, last.
    println!(
        "check: {}: {} ops ({succeeded}/{attempted} succeeded), {} faults, {}, replicas {}, in \
         {:.1} s",
        if ok { "PASSED" } else { "FAILED" },
        all_ops.len(),
        events.len(),
        if linearizable {
            "linearizable"
        } else {
            "NOT linearizable (or undecided)"
        },
        if converged_ok {
            "converged"
        } else {
            "did NOT converge"
        },
        elapsed.as_secs_f64(),
    );
    if !ok {
        if let Some(dir) = run_dir {
            println!("node logs kept in {}", dir.display());
        }
    }
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_the_usual_units() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("abc").is_err());
    }

    #[test]
    fn arguments_parse_and_conflict_as_documented() {
        let a = CheckArgs::try_parse_from([
            "kvstore check",
            "--local",
            "3",
            "--nemesis",
            "kill,pause,partition",
            "--duration",
            "20s",
        ])
        .unwrap();
        assert_eq!(a.local, Some(3));
        assert_eq!(
            a.nemesis,
            [FaultKind::Kill, FaultKind::Pause, FaultKind::Partition]
        );
        let a = CheckArgs::try_parse_from(["kvstore check", "--nodes", "http://a:1,http://b:2"])
            .unwrap();
        assert_eq!(a.nodes, ["http://a:1", "http://b:2"]);
        assert!(CheckArgs::try_parse_from([
            "kvstore check",
            "--nodes",
            "http://a:1",
            "--local",
            "3"
        ])
        .is_err());
        assert!(CheckArgs::try_parse_from(["kvstore check", "--nemesis", "flood"]).is_err());
        let a = CheckArgs::try_parse_from(["kvstore check", "--local", "3", "--nemesis", "clock"])
            .unwrap();
        assert_eq!((a.nemesis[0], a.clock_drift), (FaultKind::Clock, 0.05));
        let a = CheckArgs::try_parse_from(["kvstore check", "--clock-drift", "0.3"]).unwrap();
        assert_eq!(a.clock_drift, 0.3);
        assert!(CheckArgs::try_parse_from(["kvstore check", "--clock-drift", "1.5"]).is_err());
    }
}
