//! The `kvstore` binary: parse settings, start logging, run one node until SIGINT/SIGTERM (or
//! until a fatal error ends the process, see `kvstore::fatal`).
//! `kvstore check ...` instead runs the linearizability checker against a cluster, and
//! `kvstore verify --data-dir DIR` checks a stopped node's data directory offline.

use std::process::ExitCode;

use kvstore::config::{Config, Parsed};
use kvstore::startup::Node;
use kvstore::telemetry;

fn main() -> ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if argv.get(1).is_some_and(|a| a == "check") {
        return kvstore::check::command::main(argv[2..].to_vec());
    }
    if argv.get(1).is_some_and(|a| a == "verify") {
        return kvstore::verify::main(argv[2..].to_vec());
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
    kvstore::fatal::exit_on_fatal(telemetry::init(config.log_format));
    let system = actix_web::rt::System::new();
    let outcome = system.block_on(async {
        let node = Node::bind(&config)?;
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
        let addr = node.addr.to_string();
        node.run()
            .await
            .map_err(|source| kvstore::startup::StartError::Listen { addr, source })
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
