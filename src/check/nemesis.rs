//! The faults `kvstore check --local` injects while the workload runs: SIGKILL and restart of a
//! node (the leader half of the time), SIGSTOP/SIGCONT of the leader, network partitions
//! through the nodes' fault layer (`POST /admin/faults`): the leader isolated, a majority and a
//! minority, a bridge node that sees both halves, flapping links, and lossy links (drops,
//! duplicates and delays everywhere); and membership changes through `/cluster`: leadership
//! handed to a random voter, or a node (the leader half of the time) removed, wiped, and joined
//! again as a new node that is promoted once caught up; and clock skew: a node (the leader
//! half of the time) restarted under libfaketime with its monotonic clock at a rate within
//! `--clock-drift` of real time (0.95-1.05 by default, inside the clock assumption of the
//! lease reads, whose bound is 10%), handed the leadership half of the time, later restarted
//! with the real clock.
//!
//! I/O: signals through [`LocalCluster`] and HTTP to the admin route. Each fault is undone
//! before the next starts, and [`Nemesis::heal`] undoes whatever is active.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::ValueEnum;
use rand::rngs::SmallRng;
use rand::Rng;
use serde_json::{json, Value};

use super::local::LocalCluster;

/// A kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, ValueEnum)]
pub enum FaultKind {
    /// SIGKILL a node (the leader half of the time), restart it a moment later.
    Kill,
    /// SIGSTOP the leader for a moment, then SIGCONT: it wakes up believing it still leads.
    Pause,
    /// Cut links with the nodes' fault layer: isolate the leader, split majority/minority,
    /// a bridge, flapping links, or lossy links (drop, duplicate, delay).
    Partition,
    /// Change the membership: hand leadership to a random voter, or remove a node (the leader
    /// half of the time), wipe it and let it join again (learner, then voter).
    Membership,
    /// Restart a node (the leader half of the time) under libfaketime, its monotonic clock
    /// running slower or faster than real time (within --clock-drift), half the time make it
    /// the leader; later restart it with the real clock.
    Clock,
}

impl FaultKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::Pause => "pause",
            FaultKind::Partition => "partition",
            FaultKind::Membership => "membership",
            FaultKind::Clock => "clock",
        }
    }
}

/// One injected fault: when it started and ended (since the run's start) and what it was.
#[derive(Debug, Clone)]
pub struct FaultEvent {
    pub kind: FaultKind,
    pub from: Duration,
    pub to: Duration,
    pub what: String,
    /// From the heal until every running node had applied what was committed at the heal
    /// (`None`: not within 10 s).
    pub recovered: Option<Duration>,
}

/// Injects faults into a local cluster.
pub struct Nemesis {
    kinds: Vec<FaultKind>,
    rng: SmallRng,
    client: awc::Client,
    pub events: Vec<FaultEvent>,
    /// libfaketime and the largest |rate - 1| of the clock fault.
    clock: Option<(PathBuf, f64)>,
}

/// Where Debian's `libfaketime` package puts the library (`KVSTORE_FAKETIME_LIB` overrides).
const FAKETIME_PATHS: [&str; 3] = [
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/faketime/libfaketime.so.1",
];

/// The libfaketime library the clock fault preloads, if installed.
pub fn faketime_lib() -> Option<PathBuf> {
    let env = std::env::var_os("KVSTORE_FAKETIME_LIB").map(PathBuf::from);
    env.into_iter()
        .chain(FAKETIME_PATHS.iter().map(PathBuf::from))
        .find(|p| p.is_file())
}

/// The rate of node `url`'s monotonic clock, measured: a stale read waiting for an index that
/// will never be applied times out after 1 s of the node's clock (`MIN_INDEX_WAIT` in
/// `api::kv`), which takes 1 s / rate of real time. `None` if it did not answer so.
async fn measure_rate(client: &awc::Client, url: &str) -> Option<f64> {
    let t0 = Instant::now();
    let res = client
        .get(format!(
            "{url}/get?key=check-clock-probe&consistency=stale&minIndex=999999999999"
        ))
        .send()
        .await
        .ok()?;
    let real = t0.elapsed().as_secs_f64();
    (res.status() == 503 && (0.5..2.0).contains(&real)).then(|| 1.0 / real)
}

/// `/health` of `url`, if it answers.
async fn health(client: &awc::Client, url: &str) -> Option<Value> {
    let mut res = client.get(format!("{url}/health")).send().await.ok()?;
    let body = res.body().await.ok()?;
    serde_json::from_slice(&body).ok()
}

/// The index of the node that says it is the leader in the highest term (an isolated old
/// leader may still say so in an older one), whatever URLs the nodes advertise.
pub async fn leader_of(client: &awc::Client, urls: &[String]) -> Option<usize> {
    let mut best: Option<(u64, usize)> = None;
    for (i, u) in urls.iter().enumerate() {
        let Some(h) = health(client, u).await else {
            continue;
        };
        let term = h["term"].as_u64().unwrap_or(0);
        if h["state"] == "leader" && best.is_none_or(|(t, _)| term > t) {
            best = Some((term, i));
        }
    }
    best.map(|(_, i)| i)
}

/// Wait (up to `within`) until `url` answers `/health`.
async fn wait_up(client: &awc::Client, url: &str, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if health(client, url).await.is_some() {
            return true;
        }
        sleep(Duration::from_millis(20)).await;
    }
    false
}

/// How long until every running node has applied what was committed when this was called
/// (up to 10 s).
async fn caught_up(client: &awc::Client, cluster: &LocalCluster) -> Option<Duration> {
    let t0 = Instant::now();
    let urls: Vec<String> = (0..cluster.len())
        .filter(|i| cluster.is_running(*i))
        .map(|i| cluster.url(i))
        .collect();
    let mut target = 0;
    for u in &urls {
        if let Some(h) = health(client, u).await {
            target = target.max(h["commitIndex"].as_u64().unwrap_or(0));
        }
    }
    while t0.elapsed() < Duration::from_secs(10) {
        let mut all = true;
        for u in &urls {
            let applied = health(client, u)
                .await
                .and_then(|h| h["store"]["appliedIndex"].as_u64())
                .unwrap_or(0);
            all &= applied >= target;
        }
        if all {
            return Some(t0.elapsed());
        }
        sleep(Duration::from_millis(20)).await;
    }
    None
}

/// `POST url` with a JSON body: (status, JSON answer; 0 and null when unanswered).
async fn post_json(client: &awc::Client, url: &str, body: Option<Value>) -> (u16, Value) {
    let sent = match body {
        Some(b) => client.post(url).send_json(&b).await,
        None => client.post(url).send().await,
    };
    answer(sent).await
}

/// `DELETE url`: (status, JSON answer).
async fn delete(client: &awc::Client, url: &str) -> (u16, Value) {
    answer(client.delete(url).send().await).await
}

/// `GET url`: (status, JSON answer).
async fn get_json(client: &awc::Client, url: &str) -> (u16, Value) {
    answer(client.get(url).send().await).await
}

async fn answer<S>(
    sent: Result<awc::ClientResponse<S>, awc::error::SendRequestError>,
) -> (u16, Value)
where
    S: futures_util::Stream<Item = Result<actix_web::web::Bytes, actix_web::error::PayloadError>>
        + Unpin,
{
    let Ok(mut res) = sent else {
        return (0, Value::Null);
    };
    let status = res.status().as_u16();
    let body = res.body().limit(64 * 1024).await.unwrap_or_default();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

async fn sleep(d: Duration) {
    actix_web::rt::time::sleep(d).await;
}

impl Nemesis {
    /// With `token`, its requests to `/admin/faults` carry it (an admin token is needed there
    /// when the nodes have client tokens).
    pub fn new(kinds: Vec<FaultKind>, rng: SmallRng, token: Option<&str>) -> Nemesis {
        let client = super::http_client(Duration::from_secs(2), token);
        Nemesis {
            kinds,
            rng,
            client,
            events: Vec::new(),
            clock: None,
        }
    }

    /// Enable the clock fault: preload `lib`, rates within 1 ± `drift`.
    pub fn with_clock(mut self, lib: &Path, drift: f64) -> Nemesis {
        self.clock = Some((lib.to_owned(), drift));
        self
    }

    /// Set node `i`'s cut links to the nodes in `to` (by index); empty heals it.
    async fn cut(&self, cluster: &LocalCluster, i: usize, to: &[usize]) -> Result<(), String> {
        let rules: Vec<Value> = to
            .iter()
            .map(|j| json!({"peer": cluster.peer_url(*j), "cut": true}))
            .collect();
        self.post_rules(cluster, i, json!({ "rules": rules })).await
    }

    /// Replace node `i`'s fault rules.
    async fn post_rules(
        &self,
        cluster: &LocalCluster,
        i: usize,
        rules: Value,
    ) -> Result<(), String> {
        let url = format!("{}/admin/faults", cluster.url(i));
        let res = self
            .client
            .post(url)
            .send_json(&rules)
            .await
            .map_err(|e| format!("fault layer of n{}: {e}", i + 1))?;
        if !res.status().is_success() {
            return Err(format!(
                "fault layer of n{} answered {}",
                i + 1,
                res.status()
            ));
        }
        Ok(())
    }

    /// Cut every link between the two sides (both ways); nodes in neither side keep theirs.
    async fn split(&self, cluster: &LocalCluster, a: &[usize], b: &[usize]) -> Result<(), String> {
        for i in 0..cluster.len() {
            let other: Vec<usize> = if a.contains(&i) {
                b.to_vec()
            } else if b.contains(&i) {
                a.to_vec()
            } else {
                Vec::new()
            };
            self.cut(cluster, i, &other).await?;
        }
        Ok(())
    }

    /// Clear every running node's rules, retrying (a node just restarted may not listen yet).
    async fn heal_links(&self, cluster: &LocalCluster) -> Result<(), String> {
        for i in (0..cluster.len()).filter(|i| cluster.is_running(*i)) {
            let mut last = String::new();
            let healed = 'tries: {
                for _ in 0..50 {
                    match self.cut(cluster, i, &[]).await {
                        Ok(()) => break 'tries true,
                        Err(e) => last = e,
                    }
                    sleep(Duration::from_millis(100)).await;
                }
                false
            };
            if !healed {
                return Err(format!("cannot heal n{}'s links: {last}", i + 1));
            }
        }
        Ok(())
    }

    /// Inject faults one after another until `until`; `start` is the run's start.
    pub async fn run(
        &mut self,
        cluster: &mut LocalCluster,
        start: Instant,
        until: Instant,
    ) -> Result<(), String> {
        if self.kinds.is_empty() {
            sleep(until.saturating_duration_since(Instant::now())).await;
            return Ok(());
        }
        let urls = cluster.urls();
        let n = cluster.len();
        loop {
            let calm = Duration::from_millis(self.rng.gen_range(800..2000));
            if Instant::now() + calm >= until {
                break;
            }
            sleep(calm).await;
            let hold = Duration::from_millis(self.rng.gen_range(800..2500));
            let hold = hold.min(until.saturating_duration_since(Instant::now()));
            let kind = self.kinds[self.rng.gen_range(0..self.kinds.len())];
            let leader = leader_of(&self.client, &urls).await;
            let target = match leader {
                Some(l) if self.rng.gen_bool(0.5) => l,
                _ => self.rng.gen_range(0..n),
            };
            let from = start.elapsed();
            let what = match kind {
                FaultKind::Kill => {
                    cluster.kill(target);
                    sleep(hold).await;
                    cluster.restart(target)?;
                    if !wait_up(&self.client, &cluster.url(target), Duration::from_secs(10)).await {
                        return Err(format!("n{} did not come back after a kill", target + 1));
                    }
                    format!("killed n{} for {} ms", target + 1, hold.as_millis())
                }
                FaultKind::Pause => {
                    let target = leader.unwrap_or(target);
                    cluster.pause(target);
                    sleep(hold).await;
                    cluster.resume(target);
                    format!("paused n{} for {} ms", target + 1, hold.as_millis())
                }
                FaultKind::Partition => {
                    let what = self.partition(cluster, leader, target, hold).await;
                    self.heal_links(cluster).await?;
                    what?
                }
                FaultKind::Membership => self.membership(cluster, leader, target, hold).await?,
                FaultKind::Clock => {
                    let hold = (hold * 2).min(until.saturating_duration_since(Instant::now()));
                    self.skew(cluster, leader, target, hold).await?
                }
            };
            let to = start.elapsed();
            let recovered = caught_up(&self.client, cluster).await;
            self.events.push(FaultEvent {
                kind,
                from,
                to,
                what,
                recovered,
            });
        }
        Ok(())
    }

    /// One partition scenario, held for `hold`.
    async fn partition(
        &mut self,
        cluster: &LocalCluster,
        leader: Option<usize>,
        target: usize,
        hold: Duration,
    ) -> Result<String, String> {
        let n = cluster.len();
        let all: Vec<usize> = (0..n).collect();
        let others = |x: usize| all.iter().copied().filter(|j| *j != x).collect::<Vec<_>>();
        match self.rng.gen_range(0..5) {
            4 => {
                // A bad network everywhere: loss, delay, duplicates on every link.
                let drop = self.rng.gen_range(0.05..0.3);
                let dup = self.rng.gen_range(0.0..0.1);
                let delay = self.rng.gen_range(5..40);
                for i in 0..n {
                    let rule = json!({"rules": [{"peer": "*", "drop": drop, "duplicate": dup,
                                                 "delayMs": [0, delay]}]});
                    self.post_rules(cluster, i, rule).await?;
                }
                sleep(hold).await;
                Ok(format!(
                    "lossy links: {:.0}% dropped, {:.0}% duplicated, 0-{delay} ms delay, for {} ms",
                    drop * 100.0,
                    dup * 100.0,
                    hold.as_millis()
                ))
            }
            0 => {
                let l = leader.unwrap_or(target);
                self.split(cluster, &[l], &others(l)).await?;
                sleep(hold).await;
                Ok(format!(
                    "isolated n{} (leader) for {} ms",
                    l + 1,
                    hold.as_millis()
                ))
            }
            1 => {
                // A random minority (at most half, rounded down) against the rest.
                let mut shuffled = all.clone();
                for i in (1..n).rev() {
                    shuffled.swap(i, self.rng.gen_range(0..=i));
                }
                let k = self.rng.gen_range(1..=(n / 2).max(1));
                let (minority, majority) = shuffled.split_at(k);
                self.split(cluster, minority, majority).await?;
                sleep(hold).await;
                Ok(format!(
                    "split {:?} | {:?} for {} ms",
                    minority.iter().map(|i| i + 1).collect::<Vec<_>>(),
                    majority.iter().map(|i| i + 1).collect::<Vec<_>>(),
                    hold.as_millis()
                ))
            }
            2 if n >= 3 => {
                // A bridge: `target` talks to everyone; the rest split into two halves that
                // cannot talk to each other.
                let rest = others(target);
                let (a, b) = rest.split_at(rest.len() / 2);
                self.split(cluster, a, b).await?;
                sleep(hold).await;
                Ok(format!(
                    "bridge n{} between {:?} and {:?} for {} ms",
                    target + 1,
                    a.iter().map(|i| i + 1).collect::<Vec<_>>(),
                    b.iter().map(|i| i + 1).collect::<Vec<_>>(),
                    hold.as_millis()
                ))
            }
            _ => {
                // Flapping: the target's links go down and up every 100-300 ms.
                let until = Instant::now() + hold;
                let mut flips = 0;
                while Instant::now() < until {
                    self.split(cluster, &[target], &others(target)).await?;
                    sleep(Duration::from_millis(self.rng.gen_range(100..300))).await;
                    self.heal_links(cluster).await?;
                    sleep(Duration::from_millis(self.rng.gen_range(100..300))).await;
                    flips += 1;
                }
                Ok(format!(
                    "flapped n{}'s links {flips} times over {} ms",
                    target + 1,
                    hold.as_millis()
                ))
            }
        }
    }

    /// One membership change: a leadership transfer, or a node removed, wiped, held out for
    /// `hold`, and joined again (waiting until it is a voter). A change the cluster refuses
    /// (409: one in progress, or no quorum would be left) is recorded as such, not an error.
    async fn membership(
        &mut self,
        cluster: &mut LocalCluster,
        leader: Option<usize>,
        target: usize,
        hold: Duration,
    ) -> Result<String, String> {
        let n = cluster.len();
        let Some(via) = (0..n).find(|i| cluster.is_running(*i) && Some(*i) != leader) else {
            return Ok("no running follower to ask; nothing changed".into());
        };
        let via_url = cluster.url(via);
        if self.rng.gen_bool(0.4) {
            let to = (0..n)
                .filter(|i| Some(*i) != leader)
                .nth(self.rng.gen_range(0..n - 1));
            let body = match to {
                Some(t) => json!({ "id": format!("n{}", t + 1) }),
                None => json!({}),
            };
            let (status, answer) = post_json(
                &self.client,
                &format!("{via_url}/cluster/leader"),
                Some(body),
            )
            .await;
            return Ok(format!(
                "leadership transfer to {}: {status} {}",
                to.map_or("any voter".into(), |t| format!("n{}", t + 1)),
                answer["message"].as_str().unwrap_or_default()
            ));
        }
        let id = format!("n{}", target + 1);
        let (status, answer) =
            delete(&self.client, &format!("{via_url}/cluster/members/{id}")).await;
        // A 503 may say the removal "may or may not have been applied": ask the cluster.
        if status != 200 && !self.removed_anyway(cluster, target, &id).await {
            return Ok(format!(
                "removal of {id} refused: {status} {}",
                answer["message"].as_str().unwrap_or_default()
            ));
        }
        cluster.kill_and_wipe(target)?;
        sleep(hold).await;
        let via = (0..n)
            .find(|i| *i != target && cluster.is_running(*i))
            .ok_or("no running node to join through")?;
        cluster.join(target, &cluster.url(via))?;
        // Back as a voter (the joining node promotes itself once caught up).
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (_, view) = get_json(&self.client, &format!("{}/cluster", cluster.url(via))).await;
            let voter = view["members"].as_array().is_some_and(|ms| {
                ms.iter()
                    .any(|m| m["id"] == id.as_str() && m["role"] == "voter")
            });
            if voter {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{id} did not become a voter again within 30 s: {view}"
                ));
            }
            sleep(Duration::from_millis(50)).await;
        }
        Ok(format!(
            "removed {id}{}, wiped it, joined it again after {} ms",
            if leader == Some(target) {
                " (leader)"
            } else {
                ""
            },
            hold.as_millis()
        ))
    }

    /// After a removal of `id` (node `target`) that was not acknowledged: whether it was
    /// applied anyway, by the view of a leader other than `target` that has committed its
    /// latest configuration (polled for up to 10 s; `false` if none says so by then).
    async fn removed_anyway(&self, cluster: &LocalCluster, target: usize, id: &str) -> bool {
        let urls = cluster.urls();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(l) = leader_of(&self.client, &urls)
                .await
                .filter(|l| *l != target)
            {
                let (_, view) = get_json(&self.client, &format!("{}/cluster", urls[l])).await;
                let committed = view["changeInProgress"] == false
                    && matches!(
                        (view["commitIndex"].as_u64(), view["configIndex"].as_u64()),
                        (Some(commit), Some(config)) if commit >= config
                    );
                if let (true, Some(ms)) = (committed, view["members"].as_array()) {
                    return !ms.iter().any(|m| m["id"] == id);
                }
            }
            sleep(Duration::from_millis(100)).await;
        }
        false
    }

    /// Run node `target` under libfaketime at a random rate for about `hold`, half the time
    /// as the leader, then restart it with the real clock.
    async fn skew(
        &mut self,
        cluster: &mut LocalCluster,
        leader: Option<usize>,
        target: usize,
        hold: Duration,
    ) -> Result<String, String> {
        let Some((lib, drift)) = self.clock.clone() else {
            return Ok("skipped: libfaketime is not installed".into());
        };
        let t0 = Instant::now();
        let d = self.rng.gen_range(drift * 0.2..=drift);
        let rate = if self.rng.gen_bool(0.5) {
            1.0 - d
        } else {
            1.0 + d
        };
        let rate = (rate * 1000.0).round() / 1000.0;
        let name = format!("n{}", target + 1);
        cluster.restart_with_clock(target, &lib, rate)?;
        if !wait_up(&self.client, &cluster.url(target), Duration::from_secs(10)).await {
            return Err(format!("{name} did not come up under libfaketime"));
        }
        let mut led = String::new();
        if self.rng.gen_bool(0.5) {
            // Let the skewed node lead: its lease (if any) is timed by its own clock. A transfer
            // needs a leader and a caught-up target: try for up to 3 s.
            let urls = cluster.urls();
            let deadline = Instant::now() + Duration::from_secs(3);
            let mut last = 0;
            led = loop {
                if leader_of(&self.client, &urls).await == Some(target) {
                    break ", made leader".to_owned();
                }
                if Instant::now() > deadline {
                    break format!(", not made leader ({last})");
                }
                let via = (0..cluster.len())
                    .find(|i| *i != target && cluster.is_running(*i))
                    .unwrap_or(target);
                let url = format!("{}/cluster/leader", cluster.url(via));
                last = post_json(&self.client, &url, Some(json!({ "id": name })))
                    .await
                    .0;
                sleep(Duration::from_millis(200)).await;
            };
        }
        let measured = match measure_rate(&self.client, &cluster.url(target)).await {
            // Closer to 1 than to the rate asked for: the clock was not faked.
            // (A timer firing late on a loaded machine makes it look slower: a hint only.)
            Some(m) if (m - 1.0).abs() < 0.002 && (rate - 1.0).abs() > 0.02 => {
                format!("measured x{m:.3}: apparently not faked")
            }
            Some(m) => format!("measured x{m:.3}"),
            None => "not measured".into(),
        };
        sleep(hold.saturating_sub(t0.elapsed())).await;
        cluster.kill(target);
        cluster.restart(target)?;
        if !wait_up(&self.client, &cluster.url(target), Duration::from_secs(10)).await {
            return Err(format!("{name} did not come back with the real clock"));
        }
        Ok(format!(
            "{name}{} ran its clock at x{rate:.3} ({measured}){led} for {} ms, then restarted \
             with the real clock",
            if leader == Some(target) {
                " (leader)"
            } else {
                ""
            },
            t0.elapsed().as_millis()
        ))
    }

    /// Undo every fault: heal links, resume, restart.
    pub async fn heal(&mut self, cluster: &mut LocalCluster) -> Result<(), String> {
        cluster.heal()?;
        for i in 0..cluster.len() {
            wait_up(&self.client, &cluster.url(i), Duration::from_secs(10)).await;
        }
        self.heal_links(cluster).await
    }
}
