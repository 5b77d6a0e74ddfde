//! The `kvstore` binary: parse settings, start logging, run one node until SIGINT/SIGTERM (or
//! until a fatal error ends the process, see `kvstore::fatal`). With `--join` on an empty node
//! it first asks the cluster who its members are, and once serving asks to be added (see
//! `kvstore::join`).
//! `kvstore check ...` instead runs the linearizability checker against a cluster, and
//! `kvstore verify --data-dir DIR` checks a stopped node's data directory offline, and
//! `kvstore restore --from FILE --data-dir DIR ...` makes a new one from a backup.
//! `kvstore get|set|delete|status|member|leader|backup` (and `kvstore help`) are the client
//! of a running cluster (`kvstore::cli`).

use std::process::ExitCode;

use kvstore::config::{Config, Parsed};
use kvstore::join::{self, JoinTarget};
use kvstore::startup::{self, Node, StartError};
use kvstore::telemetry;

/// mimalloc instead of glibc's malloc: most requests allocate and free many small buffers on
/// several threads, where glibc's arenas spent ~15% of the leader's CPU (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if argv.get(1).is_some_and(|a| a == "check") {
        return kvstore::check::command::main(argv[2..].to_vec());
    }
    if argv.get(1).is_some_and(|a| kvstore::cli::is_command(a)) {
        return kvstore::cli::main(argv[1..].to_vec());
    }
    if argv.get(1).is_some_and(|a| a == "verify") {
        return kvstore::verify::main(argv[2..].to_vec());
    }
    if argv.get(1).is_some_and(|a| a == "restore") {
        return kvstore::restore::main(argv[2..].to_vec());
    }
    let config = match Config::parse_from(argv) {
        Ok(Parsed::Run(c)) => *c,
        Ok(Parsed::Print(text)) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("error: {}", e.to_string().trim_start_matches("error: "));
            return ExitCode::from(2);
        }
    };
    // From here on a fatal error at run time logs one line and ends the process.
    match telemetry::init(config.log_format) {
        Ok(guard) => kvstore::fatal::exit_on_fatal(guard),
        Err(e) => {
            eprintln!("error: cannot start the log writer thread: {e}");
            return ExitCode::FAILURE;
        }
    }
    let system = actix_web::rt::System::new();
    let outcome = system.block_on(async {
        let joining = match &config.join {
            Some(_) if startup::has_state(&config) => {
                tracing::info!("this node has data; ignoring JOIN and resuming");
                None
            }
            Some(url) => {
                let tls = match (&config.tls_ca, url.starts_with("https://")) {
                    (Some(ca), true) => Some(
                        kvstore::tls::client_config(ca, None)
                            .map_err(|e| StartError::Join(format!("cannot join: {e}")))?,
                    ),
                    _ => None,
                };
                let target = JoinTarget {
                    url: url.clone(),
                    tls,
                    token: std::env::var("KVSTORE_TOKEN")
                        .ok()
                        .filter(|t| !t.is_empty()),
                };
                tracing::info!(join = %url, "joining the cluster of {url}");
                let view = join::fetch_cluster(&target)
                    .await
                    .map_err(StartError::Join)?;
                Some((target, view))
            }
            None => None,
        };
        let node = Node::bind_joining(&config, joining.as_ref().map(|(_, v)| v))?;
        let scheme = if config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        tracing::info!(
            node_id = %config.node_id,
            workers = config.workers,
            url = %node.url,
            "kvstore listening on {scheme}://{}",
            node.addr
        );
        if let (Some(addr), Some(url)) = (node.peer_addr, &node.peer_url) {
            let scheme = if config.peer_tls.is_some() {
                "https (mutual TLS)"
            } else {
                "http"
            };
            tracing::info!(url = %url, "peer listener (/raft/*) on {addr}, {scheme}");
        }
        if let Some((target, view)) = joining {
            actix_web::rt::spawn(join::add_and_promote(
                target,
                view.cluster_id,
                config.node_id.clone(),
                node.raft_url.clone(),
                config.learner,
            ));
        }
        let addr = node.addr.to_string();
        node.run()
            .await
            .map_err(|source| StartError::Listen { addr, source })
    });
    let code = match outcome {
        Ok(()) => {
            tracing::info!("kvstore stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    };
    kvstore::fatal::flush_logs(); // flush queued log lines before exiting
    code
}
