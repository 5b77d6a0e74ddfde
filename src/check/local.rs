//! A throwaway local cluster for `kvstore check --local N`: N `kvstore` processes on free
//! loopback ports, each with its own data directory under one run directory, started with
//! `KVSTORE_FAULTS=1` so their fault layer can be switched. With a TLS directory, every node
//! serves HTTPS on its client port and Raft on a separate peer port with mutual TLS.
//!
//! A node can be restarted under libfaketime ([`LocalCluster::restart_with_clock`]): its
//! monotonic clock (and wall clock) then runs at a given rate of real time.
//!
//! I/O: processes and signals. Every process is owned by its `Child` handle and killed when the
//! cluster is dropped, whatever happened. It never decides what fault to inject.

use std::fs::{self, File};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The running processes, by node index.
pub struct LocalCluster {
    bin: PathBuf,
    dir: PathBuf,
    ports: Vec<u16>,
    /// Peer ports, when the nodes run with TLS (`tls`).
    peer_ports: Vec<u16>,
    /// The certificates (`ca.pem`, `nI.pem`, `nI-key.pem`): TLS on both listeners.
    tls: Option<PathBuf>,
    procs: Vec<Option<Child>>,
    paused: Vec<bool>,
    /// Nodes running under libfaketime (restarted normally by [`LocalCluster::heal`]).
    skewed: Vec<bool>,
    /// This run's own cluster id, so a node left over from another run on the same ports is
    /// refused rather than merged.
    cluster_id: String,
}

/// `n` distinct free ports: every listener is held until all are picked, so the OS cannot
/// hand out the same port twice.
fn free_ports(n: usize) -> Result<Vec<u16>, String> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("cannot find a free port: {e}"))?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("cannot find a free port: {e}"))
}

fn signal(child: &Child, sig: libc::c_int) {
    // SAFETY: kill(2) on our own child's pid; no memory is shared.
    unsafe {
        libc::kill(child.id() as libc::pid_t, sig);
    }
}

impl LocalCluster {
    /// Start `n` nodes of `bin`, with data and logs under `dir`. Waits until each accepts
    /// connections; picks new ports if one was taken meanwhile.
    /// With `tls` (a directory of certificates), TLS on both listeners.
    pub fn start(
        bin: &Path,
        n: usize,
        dir: &Path,
        tls: Option<&Path>,
    ) -> Result<LocalCluster, String> {
        if let Some(tls) = tls {
            for f in std::iter::once("ca.pem".to_owned())
                .chain((1..=n).flat_map(|i| [format!("n{i}.pem"), format!("n{i}-key.pem")]))
            {
                if !tls.join(&f).is_file() {
                    return Err(format!(
                        "{} is missing (scripts/gen-certs.sh {} {n} makes it)",
                        tls.join(&f).display(),
                        tls.display()
                    ));
                }
            }
        }
        let mut last = String::new();
        for _ in 0..5 {
            let mut ports = free_ports(if tls.is_some() { 2 * n } else { n })?;
            let peer_ports = ports.split_off(n);
            let mut c = LocalCluster {
                bin: bin.to_owned(),
                dir: dir.to_owned(),
                ports,
                peer_ports,
                tls: tls.map(Path::to_owned),
                procs: (0..n).map(|_| None).collect(),
                paused: vec![false; n],
                skewed: vec![false; n],
                cluster_id: format!("check-{}", uuid::Uuid::new_v4().simple()),
            };
            match (0..n).try_for_each(|i| c.spawn(i)) {
                Ok(()) => match c.wait_listening(Duration::from_secs(20)) {
                    Ok(()) => return Ok(c),
                    Err(e) => last = e,
                },
                Err(e) => last = e,
            }
            // Start over on new ports with empty data (the nodes are killed by `drop`).
            drop(c);
            for i in 0..n {
                let _ = fs::remove_dir_all(dir.join(format!("n{}-data", i + 1)));
            }
        }
        Err(format!("could not start a local cluster: {last}"))
    }

    /// Base URL of node `i` (its client port).
    pub fn url(&self, i: usize) -> String {
        match self.tls {
            Some(_) => format!("https://127.0.0.1:{}", self.ports[i]),
            None => format!("http://127.0.0.1:{}", self.ports[i]),
        }
    }

    /// The URL at which the other nodes reach node `i`'s Raft routes (as listed in their
    /// PEERS, and as fault rules name it): its peer port with TLS, else its client URL.
    pub fn peer_url(&self, i: usize) -> String {
        match self.tls {
            Some(_) => format!("https://127.0.0.1:{}", self.peer_ports[i]),
            None => self.url(i),
        }
    }

    /// Every node's base URL.
    pub fn urls(&self) -> Vec<String> {
        (0..self.ports.len()).map(|i| self.url(i)).collect()
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.ports.len()
    }

    /// True for a cluster of no nodes.
    pub fn is_empty(&self) -> bool {
        self.ports.is_empty()
    }

    /// Where node `i` writes its log lines.
    pub fn log_path(&self, i: usize) -> PathBuf {
        self.dir.join(format!("n{}.log", i + 1))
    }

    fn spawn(&mut self, i: usize) -> Result<(), String> {
        self.spawn_with(i, &[])
    }

    /// Start node `i` with `extra` environment on top of its usual settings.
    fn spawn_with(&mut self, i: usize, extra: &[(&str, String)]) -> Result<(), String> {
        let peers: Vec<String> = (0..self.len())
            .filter(|j| *j != i)
            .map(|j| self.peer_url(j))
            .collect();
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path(i))
            .map_err(|e| format!("cannot open {}: {e}", self.log_path(i).display()))?;
        let err = log
            .try_clone()
            .map_err(|e| format!("cannot open the log: {e}"))?;
        let mut cmd = Command::new(&self.bin);
        let parent = std::process::id();
        // SAFETY: prctl and getppid in the child between fork and exec, async-signal-safe, no
        // allocation: the node dies with this process even if it is SIGKILLed and cannot clean
        // up (and does not start at all if this process already died).
        unsafe {
            cmd.pre_exec(move || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if libc::getppid() as u32 != parent {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
        cmd.env_clear();
        // The one setting passed through: a cluster checked with `--token` needs its tokens.
        if let Some(tokens) = std::env::var_os("KVSTORE_CLIENT_TOKENS_FILE") {
            cmd.env("KVSTORE_CLIENT_TOKENS_FILE", tokens);
        }
        let child = cmd
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("NODE_ID", format!("n{}", i + 1))
            .env("PORT", self.ports[i].to_string())
            .env("KVSTORE_HOST", "127.0.0.1")
            .env("PEERS", peers.join(","))
            .env(
                "KVSTORE_DATA_DIR",
                self.dir.join(format!("n{}-data", i + 1)),
            )
            .env("KVSTORE_CLUSTER_ID", &self.cluster_id)
            .env("KVSTORE_FAULTS", "1")
            .env("KVSTORE_REQUEST_TIMEOUT_MS", "2000")
            .envs(self.tls_env(i))
            .envs(extra.iter().map(|(k, v)| (*k, v)))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.bin.display()))?;
        self.procs[i] = Some(child);
        self.paused[i] = false;
        self.skewed[i] = extra.iter().any(|(k, _)| *k == "LD_PRELOAD");
        Ok(())
    }

    /// The TLS settings of node `i` (none without a TLS directory).
    fn tls_env(&self, i: usize) -> Vec<(&'static str, PathBuf)> {
        let Some(dir) = &self.tls else {
            return Vec::new();
        };
        let (cert, key) = (
            dir.join(format!("n{}.pem", i + 1)),
            dir.join(format!("n{}-key.pem", i + 1)),
        );
        vec![
            ("KVSTORE_TLS_CERT", cert.clone()),
            ("KVSTORE_TLS_KEY", key.clone()),
            ("KVSTORE_TLS_CA", dir.join("ca.pem")),
            (
                "KVSTORE_PEER_PORT",
                PathBuf::from(self.peer_ports[i].to_string()),
            ),
            ("KVSTORE_PEER_TLS_CERT", cert),
            ("KVSTORE_PEER_TLS_KEY", key),
            ("KVSTORE_PEER_CA", dir.join("ca.pem")),
        ]
    }

    /// Wait until every running node accepts TCP connections (or one exits).
    fn wait_listening(&mut self, within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        for i in 0..self.len() {
            loop {
                if let Some(child) = self.procs[i].as_mut() {
                    if let Ok(Some(status)) = child.try_wait() {
                        let log = fs::read_to_string(self.log_path(i)).unwrap_or_default();
                        let tail: String = log.lines().rev().take(5).collect::<Vec<_>>().join("\n");
                        return Err(format!("node n{} exited ({status}): {tail}", i + 1));
                    }
                }
                let addr = ([127, 0, 0, 1], self.ports[i]).into();
                if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(format!("node n{} did not start listening", i + 1));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    }

    /// Is node `i` running (not killed; it may be paused)?
    pub fn is_running(&self, i: usize) -> bool {
        self.procs[i].is_some()
    }

    /// SIGKILL node `i` and reap it.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.procs[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.paused[i] = false;
    }

    /// Start node `i` again on its port and data directory.
    pub fn restart(&mut self, i: usize) -> Result<(), String> {
        if self.procs[i].is_none() {
            self.spawn(i)?;
        }
        Ok(())
    }

    /// SIGKILL node `i` (if running) and start it again under libfaketime (`lib`, the path
    /// of `libfaketime.so.1`) with its clocks running at `rate` times real time: `FAKETIME="+0
    /// xRATE"` (no offset, only the speed) and `FAKETIME_DONT_FAKE_MONOTONIC=0`, so
    /// `CLOCK_MONOTONIC` (Rust's `Instant`) is faked too. [`LocalCluster::restart`] after a
    /// [`LocalCluster::kill`] brings it back with the real clock.
    pub fn restart_with_clock(&mut self, i: usize, lib: &Path, rate: f64) -> Result<(), String> {
        self.kill(i);
        self.spawn_with(
            i,
            &[
                ("LD_PRELOAD", lib.display().to_string()),
                ("FAKETIME", format!("+0 x{rate:.3}")),
                ("FAKETIME_DONT_FAKE_MONOTONIC", "0".to_owned()),
            ],
        )
    }

    /// Is node `i` running under libfaketime?
    pub fn is_skewed(&self, i: usize) -> bool {
        self.skewed[i]
    }

    /// Node `i` was removed from the cluster: SIGKILL it and delete its data directory (a
    /// removed node comes back only as a new, empty one).
    pub fn kill_and_wipe(&mut self, i: usize) -> Result<(), String> {
        self.kill(i);
        let data = self.dir.join(format!("n{}-data", i + 1));
        match fs::remove_dir_all(&data) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(format!("cannot delete {}: {e}", data.display())),
        }
    }

    /// Start node `i` (stopped, with an empty data directory) so that it joins the cluster
    /// through `via` (`KVSTORE_JOIN`) and becomes a voter once caught up.
    pub fn join(&mut self, i: usize, via: &str) -> Result<(), String> {
        if self.procs[i].is_some() {
            return Err(format!("n{} is still running", i + 1));
        }
        self.spawn_with(i, &[("KVSTORE_JOIN", via.to_owned())])
    }

    /// SIGSTOP node `i`: it keeps its sockets but answers nothing until resumed.
    pub fn pause(&mut self, i: usize) {
        if let Some(child) = &self.procs[i] {
            signal(child, libc::SIGSTOP);
            self.paused[i] = true;
        }
    }

    /// SIGCONT node `i`.
    pub fn resume(&mut self, i: usize) {
        if let Some(child) = &self.procs[i] {
            signal(child, libc::SIGCONT);
        }
        self.paused[i] = false;
    }

    /// Resume paused nodes, restart killed ones, and restart those under libfaketime with
    /// the real clock.
    pub fn heal(&mut self) -> Result<(), String> {
        for i in 0..self.len() {
            if self.paused[i] {
                self.resume(i);
            }
            if self.skewed[i] {
                self.kill(i);
            }
            self.restart(i)?;
        }
        Ok(())
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for i in 0..self.len() {
            if let Some(child) = &self.procs[i] {
                signal(child, libc::SIGCONT);
            }
            self.kill(i);
        }
    }
}
