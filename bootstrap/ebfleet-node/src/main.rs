//! `ebfleet-node`: one step of a batch on a build node. The work is in the
//! library; this parses the command line, sets up logging (human, on
//! stderr, `RUST_LOG` to tune) and prints the step's result as one JSON
//! line on stdout.

use anyhow::Result;
use clap::Parser;
use ebfleet_aws::sfn::{SfnError, StepFunctions};
use ebfleet_core::step::Step;
use ebfleet_node::cli::{run_step, Cli, Command, HeartbeatArgs};
use ebfleet_node::heartbeat::beat_until;
use std::process::ExitCode;
use std::time::Duration;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    match run(cli).await {
        Ok(result) => {
            println!("{result}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ebfleet-node: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<serde_json::Value> {
    let (step, args) = match cli.command {
        Command::Sync(a) => (Step::Sync, a),
        Command::Build(a) => (Step::Build, a),
        Command::Tar(a) => (Step::Tar, a),
        Command::Upload(a) => (Step::Upload, a),
        Command::Heartbeat(a) => return heartbeat(&a).await,
    };
    Ok(run_step(step, &args).await?)
}

/// One beat, or one every `--interval` until the task ends.
async fn heartbeat(args: &HeartbeatArgs) -> Result<serde_json::Value> {
    let conf = ebfleet_aws::load_config().await;
    let sfn = StepFunctions::from_conf(&conf);
    let Some(secs) = args.interval else {
        sfn.heartbeat(&args.task_token).await?;
        return Ok(serde_json::json!({"heartbeats": 1}));
    };
    let every = Duration::from_secs(secs.max(1));
    match beat_until(&sfn, &args.task_token, every, std::future::pending()).await {
        Ok(n) => Ok(serde_json::json!({"heartbeats": n})),
        // The task ended: the normal way for the loop to stop.
        Err(SfnError::TaskTimedOut { .. } | SfnError::TaskDoesNotExist { .. }) => {
            Ok(serde_json::json!({"task_ended": true}))
        }
        Err(e) => Err(e.into()),
    }
}
