//! `kvstore get|set|delete|status|member|leader|backup`: the command-line client of a running
//! cluster (edge layer).
//!
//! - this file: the commands and options as clap parses them, and [`main`], which runs one
//!   command on an actix `System` and turns its outcome into an exit status.
//! - [`client`]: the endpoint-following HTTP client (`--endpoints`, `--token`, `--cacert`,
//!   `--timeout`): tries the endpoints in order, moves on when one is down or answers 503,
//!   follows a leader hint; every answer it reads is bounded.
//! - [`output`]: [`output::CliError`] and the exit statuses (0 ok, 1 not found / failed
//!   precondition / refused / bad download, 2 usage, 3 unavailable), text and JSON printing.
//! - [`commands`]: `get`, `set`, `delete`, `member ...`, `leader transfer`.
//! - [`status`]: `status`, one row per member from `GET /cluster` and each member's `/health`.
//! - [`backup`]: `backup --out FILE`, `GET /admin/snapshot` streamed to disk and checked.
//!
//! The client only speaks the public HTTP API: it must never read a data directory or reach
//! Raft state any other way, and it never retries a request on a node that answered it
//! (only the next endpoint, after that one was unreachable or unavailable).

pub mod backup;
pub mod client;
pub mod commands;
pub mod output;
pub mod status;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use output::{CliError, Output};

/// The subcommands this module runs (`kvstore help` too: the overview of every command).
pub const COMMANDS: &[&str] = &[
    "get", "set", "delete", "status", "member", "leader", "backup", "help",
];

/// The options only the client has (the server has none of these names), so that
/// `kvstore --endpoints URL get KEY` is a client command too.
pub const CLIENT_OPTIONS: &[&str] = &[
    "--endpoints",
    "--token",
    "--cacert",
    "--output",
    "--timeout",
];

/// Whether `kvstore ARG ...` runs the client ([`main`]): ARG is one of [`COMMANDS`] or one of
/// [`CLIENT_OPTIONS`] (also as `--option=value`). None of these ever started a server (it takes
/// no positional argument and has no such flag), so nothing that starts one changes meaning.
pub fn is_command(arg: &std::ffi::OsStr) -> bool {
    let Some(arg) = arg.to_str() else {
        return false;
    };
    let name = arg.split_once('=').map_or(arg, |(name, _)| name);
    COMMANDS.contains(&arg) || CLIENT_OPTIONS.contains(&name)
}

const TOP_HELP: &str = "\
Commands of the node itself:
  kvstore [FLAGS]          start a node (no command; see `kvstore --help` for its flags)
  kvstore check ...        run a workload under faults and check linearizability
  kvstore verify ...       check a stopped node's data directory offline
  kvstore restore ...      make a fresh data directory from a backup file

Exit status: 0 ok, 1 not found / failed precondition / refused (auth) / bad download,
2 usage error, 3 unavailable (no endpoint answered, no leader, timeout).

Examples:
  kvstore set name luffy
  echo -n 'from stdin' | kvstore set note
  kvstore get name
  kvstore --endpoints http://10.0.0.1:8080,http://10.0.0.2:8080 status
  kvstore --output json get name
  kvstore member add n4 http://10.0.0.4:8080
  kvstore leader transfer n2
  kvstore backup --out backup.snap";

/// Client of a raft-kv-store cluster.
#[derive(Debug, Parser)]
#[command(
    name = "kvstore",
    version,
    about = "Client of a raft-kv-store cluster: read and write keys, show and change the cluster, back it up",
    after_help = TOP_HELP,
    disable_help_subcommand = false
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes (before or after the command's name).
#[derive(Debug, Clone, clap::Args)]
pub struct Global {
    /// Nodes to talk to, tried in order (one that is down or has no leader: the next).
    #[arg(
        long,
        global = true,
        env = "KVSTORE_ENDPOINTS",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:8080",
        value_name = "URL,URL"
    )]
    pub endpoints: Vec<String>,
    /// Client token, sent as `Authorization: Bearer` (nodes with --client-tokens-file).
    #[arg(long, global = true, env = "KVSTORE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// CA bundle (PEM) to trust for https:// endpoints.
    #[arg(long, global = true, env = "KVSTORE_CACERT", value_name = "FILE")]
    pub cacert: Option<PathBuf>,
    /// `text` for people, `json` (one line per answer) for scripts.
    #[arg(long, global = true, value_enum, default_value_t = Output::Text)]
    pub output: Output,
    /// Longest wait for one node's answer, in seconds.
    #[arg(long, global = true, default_value_t = 10.0, value_name = "SECS",
          value_parser = parse_secs)]
    pub timeout: f64,
}

fn parse_secs(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 86_400.0 => Ok(v),
        _ => Err(format!("{s:?} is not a number of seconds in (0, 86400]")),
    }
}

impl Global {
    pub fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout)
    }
}

/// How `get` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Consistency {
    /// Through the leader's read index: sees every write acknowledged before it.
    Linearizable,
    /// The answering node's own map: fast, possibly behind.
    Stale,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the value of KEY (exit 1 if there is none).
    #[command(
        after_help = "Examples:\n  kvstore get name\n  kvstore get name --consistency stale\n  kvstore --output json get name"
    )]
    Get {
        key: String,
        #[arg(long, value_enum, default_value_t = Consistency::Linearizable)]
        consistency: Consistency,
    },
    /// Store VALUE under KEY; without VALUE (or with `-`) the value is read from stdin, exactly
    /// (a trailing newline is kept).
    #[command(
        after_help = "Examples:\n  kvstore set name luffy\n  printf %s \"$TOKEN\" | kvstore set secret\n  kvstore set config - < config.json\n\nA value over the server's limit (--max-value-bytes, default 1 MiB) is refused (exit 2)."
    )]
    Set {
        key: String,
        #[arg(allow_hyphen_values = true)]
        value: Option<String>,
        /// The write's `Idempotency-Key` (default: a fresh one). Re-running a write whose
        /// outcome is unknown with the key it printed applies it at most once.
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// Delete KEY (exit 1 if there was none).
    #[command(after_help = "Example:\n  kvstore delete name")]
    Delete {
        key: String,
        /// The write's `Idempotency-Key` (default: a fresh one); see `set`.
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// A table of every member: role, state, term, leader, commit/applied, lag, last contact.
    #[command(
        after_help = "Examples:\n  kvstore status\n  kvstore --endpoints http://127.0.0.1:8081,http://127.0.0.1:8082 status\n  kvstore status --output json\n\nA member that does not answer is shown as `down`; exit 3 only if no endpoint answered."
    )]
    Status,
    /// List, add, remove or promote members.
    #[command(subcommand)]
    Member(MemberCommand),
    /// Leadership.
    #[command(subcommand)]
    Leader(LeaderCommand),
    /// Save a consistent snapshot of the map to FILE (GET /admin/snapshot).
    #[command(
        after_help = "Example:\n  kvstore --endpoints http://10.0.0.1:8080,http://10.0.0.2:8080 backup --out kv.snap\n\nThe download goes to FILE.part, is checked against its length and CRC-32, synced, then\nrenamed to FILE. Restore it with `kvstore restore --from FILE ...`. Exit 1 on a bad download."
    )]
    Backup {
        /// Where to write the snapshot.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum MemberCommand {
    /// The members of the cluster (from the leader when one is known).
    #[command(after_help = "Example:\n  kvstore member list")]
    List,
    /// Add a member (a learner, promoted to voter once it has caught up unless --learner).
    #[command(
        after_help = "Examples:\n  kvstore member add n4 http://10.0.0.4:8080\n  kvstore member add n5 http://10.0.0.5:8080 --learner"
    )]
    Add {
        id: String,
        url: String,
        /// Keep it a learner (not counted in quorums).
        #[arg(long)]
        learner: bool,
    },
    /// Remove a member.
    #[command(after_help = "Example:\n  kvstore member remove n3")]
    Remove { id: String },
    /// Promote a learner to voter (refused while it lags: exit 1).
    #[command(after_help = "Example:\n  kvstore member promote n5")]
    Promote { id: String },
}

#[derive(Debug, Subcommand)]
pub enum LeaderCommand {
    /// Hand leadership to ID (default: the most caught-up voter); answered once it leads.
    #[command(after_help = "Examples:\n  kvstore leader transfer n2\n  kvstore leader transfer")]
    Transfer { id: Option<String> },
}

/// Run the client with `args` (starting at the command's name, e.g. `["get", "k"]`).
pub fn main(args: Vec<OsString>) -> ExitCode {
    // Help goes to stdout (exit 0); usage errors to stderr (exit 2).
    let cli: Cli = match crate::config::parse_command("kvstore", args) {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let output = cli.global.output;
    let system = actix_web::rt::System::new();
    let outcome = system.block_on(run(cli));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            output::print_error(&e, output);
            ExitCode::from(e.code())
        }
    }
}

async fn run(cli: Cli) -> Result<(), CliError> {
    let client = client::Client::new(&cli.global)?;
    let out = cli.global.output;
    match cli.command {
        Command::Get { key, consistency } => commands::get(&client, out, &key, consistency).await,
        Command::Set {
            key,
            value,
            idempotency_key,
        } => commands::set(&client, out, &key, value, idempotency_key).await,
        Command::Delete {
            key,
            idempotency_key,
        } => commands::delete(&client, out, &key, idempotency_key).await,
        Command::Status => status::run(&client, out).await,
        Command::Member(m) => commands::member(&client, out, m).await,
        Command::Leader(LeaderCommand::Transfer { id }) => {
            commands::transfer(&client, out, id).await
        }
        Command::Backup { out: file } => backup::run(&client, out, &file).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn options_go_before_or_after_the_command_and_endpoints_split_on_commas() {
        let cli = Cli::try_parse_from([
            "kvstore",
            "--endpoints",
            "http://a:1,http://b:2",
            "get",
            "k",
            "--output",
            "json",
            "--timeout",
            "2.5",
        ])
        .unwrap();
        assert_eq!(cli.global.endpoints, ["http://a:1", "http://b:2"]);
        assert_eq!(cli.global.output, Output::Json);
        assert_eq!(cli.global.timeout(), Duration::from_millis(2500));
        assert!(
            matches!(cli.command, Command::Get { ref key, consistency: Consistency::Linearizable } if key == "k")
        );
    }

    #[test]
    fn a_value_may_start_with_a_dash_and_may_be_omitted() {
        let cli = Cli::try_parse_from(["kvstore", "set", "k", "-5"]).unwrap();
        assert!(matches!(cli.command, Command::Set { value: Some(ref v), .. } if v == "-5"));
        let cli = Cli::try_parse_from(["kvstore", "set", "k"]).unwrap();
        assert!(matches!(cli.command, Command::Set { value: None, .. }));
    }

    #[test]
    fn usage_errors_are_errors_and_help_is_not() {
        let e = Cli::try_parse_from(["kvstore", "get"]).unwrap_err();
        assert!(e.use_stderr());
        let e = Cli::try_parse_from(["kvstore", "--timeout", "0", "status"]).unwrap_err();
        assert!(e.use_stderr());
        let e = Cli::try_parse_from(["kvstore", "help"]).unwrap_err();
        assert!(!e.use_stderr());
        let e = Cli::try_parse_from(["kvstore", "member", "add", "--help"]).unwrap_err();
        assert!(!e.use_stderr());
        assert!(e.to_string().contains("kvstore member add n4"), "{e}");
    }

    #[test]
    fn only_client_commands_are_dispatched_here() {
        for c in COMMANDS {
            assert!(is_command(std::ffi::OsStr::new(c)));
        }
        for option in ["--endpoints", "--output=json", "--token=x", "--timeout"] {
            assert!(is_command(std::ffi::OsStr::new(option)), "{option}");
        }
        let server = crate::config::Cli::command();
        for option in CLIENT_OPTIONS {
            let name = &option[2..];
            assert!(
                server.get_arguments().all(|a| a.get_long() != Some(name)),
                "the server has {option} too"
            );
        }
        for other in [
            "check", "verify", "restore", "--port", "--help", "--end", "",
        ] {
            assert!(!is_command(std::ffi::OsStr::new(other)), "{other}");
        }
    }
}
