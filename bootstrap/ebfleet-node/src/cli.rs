//! The command line. The SSM document runs exactly
//! `ebfleet-node <step> --bucket B --batch KEY --execution E --platform P`
//! (`ebfleet_core::step::StepCommand::argv`); every other option is
//! optional, with an environment variable beside it.

use crate::context::{Context, NodeError};
use crate::envfile::NodeEnv;
use crate::heartbeat::{Heartbeat, DEFAULT_INTERVAL};
use crate::job::Job;
use crate::layout::{Layout, DEFAULT_ROOT};
use crate::transfer::UploadOptions;
use clap::{Args, Parser, Subcommand};
use ebfleet_aws::s3::Store;
use ebfleet_aws::sfn::StepFunctions;
use ebfleet_core::step::Step;
use std::path::PathBuf;
use std::time::Duration;

/// Where the bootstrap writes the node's settings.
pub const DEFAULT_ENV_FILE: &str = "/etc/ebfleet/node.env";

#[derive(Debug, Parser)]
#[command(
    name = "ebfleet-node",
    version,
    about = "Sync, build, tar and upload one ebfleet batch on a build node"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Download the batch's easyconfigs, the modules it needs and known sources.
    Sync(StepArgs),
    /// Run EasyBuild on each module of the batch.
    Build(StepArgs),
    /// Pack each newly built module as a .tar.zst.
    Tar(StepArgs),
    /// Upload tarballs, module files, sources and logs, then the manifest.
    Upload(StepArgs),
    /// Send SendTaskHeartbeat for a task token, once or every --interval.
    Heartbeat(HeartbeatArgs),
}

#[derive(Debug, Clone, Args)]
pub struct StepArgs {
    /// The bucket.
    #[arg(long)]
    pub bucket: String,
    /// The batch file's key, plans/<execution>/<platform>/<batch>.json.
    #[arg(long)]
    pub batch: String,
    #[arg(long)]
    pub execution: String,
    #[arg(long)]
    pub platform: String,
    /// The node's root: software/, modules/, sources/, ... (EasyBuild's installpath).
    #[arg(long, env = "EBFLEET_NODE_ROOT", default_value = DEFAULT_ROOT)]
    pub root: PathBuf,
    /// The node's settings (KEY=VALUE lines written by the bootstrap).
    #[arg(long, env = "EBFLEET_NODE_ENV", default_value = DEFAULT_ENV_FILE)]
    pub env_file: PathBuf,
    /// Downloads or uploads in flight at once.
    #[arg(long, env = "EBFLEET_NODE_JOBS", default_value_t = 8)]
    pub jobs: usize,
    /// Send heartbeats for this Step Functions task token while the step runs.
    #[arg(long, env = "EBFLEET_TASK_TOKEN", hide_env_values = true)]
    pub task_token: Option<String>,
    /// Seconds between heartbeats.
    #[arg(long, env = "EBFLEET_HEARTBEAT_INTERVAL", default_value_t = DEFAULT_INTERVAL.as_secs())]
    pub heartbeat_interval: u64,
    /// Files from this size (bytes) are uploaded in parts.
    #[arg(long, env = "EBFLEET_MULTIPART_THRESHOLD", default_value_t = UploadOptions::default().multipart_threshold)]
    pub multipart_threshold: u64,
    /// The smallest part of a multipart upload, in bytes (S3: at least 5 MiB).
    #[arg(long, env = "EBFLEET_PART_SIZE", default_value_t = UploadOptions::default().part_size)]
    pub part_size: u64,
}

#[derive(Debug, Clone, Args)]
pub struct HeartbeatArgs {
    #[arg(long, env = "EBFLEET_TASK_TOKEN", hide_env_values = true)]
    pub task_token: String,
    /// Keep beating every this many seconds until the task ends.
    #[arg(long)]
    pub interval: Option<u64>,
}

impl StepArgs {
    /// Validate everything before any work: the job's values, then the
    /// node's settings.
    pub fn context(&self, conf: &ebfleet_aws::SdkConfig) -> Result<Context, NodeError> {
        let job = Job::parse(&self.bucket, &self.batch, &self.execution, &self.platform)?;
        let node = NodeEnv::load_or_empty(&self.env_file)?;
        if let Some(p) = node
            .get("EBFLEET_PLATFORM")
            .filter(|p| *p != job.platform().as_str())
        {
            return Err(NodeError::WrongPlatform {
                file: self.env_file.clone(),
                node: p.to_string(),
                job: job.platform().to_string(),
            });
        }
        Ok(Context {
            store: Store::from_conf(conf, job.bucket.as_str()),
            kms: ebfleet_aws::kms::Kms::from_conf(conf),
            job,
            layout: Layout::new(&self.root),
            node,
            jobs: self.jobs.max(1),
            upload: UploadOptions {
                multipart_threshold: self.multipart_threshold,
                part_size: self.part_size.max(5 << 20),
                concurrency: self.jobs.clamp(1, 8),
            },
        })
    }
}

/// The error name a step's failure reaches Step Functions with.
pub const STEP_FAILED: &str = "ebfleet.StepFailed";

/// Run one step; its result as JSON. The arguments are validated before
/// any AWS client, file or process exists. With a task token the step
/// beats while it runs and then completes the Step Functions task itself,
/// with its result or its error ([`STEP_FAILED`]).
pub async fn run_step(step: Step, args: &StepArgs) -> Result<serde_json::Value, NodeError> {
    let conf = ebfleet_aws::load_config().await;
    let sfn = args
        .task_token
        .as_ref()
        .map(|token| (StepFunctions::from_conf(&conf), token.clone()));
    let heartbeat = sfn.as_ref().map(|(sfn, token)| {
        Heartbeat::start(
            sfn.clone(),
            token.clone(),
            Duration::from_secs(args.heartbeat_interval.max(1)),
        )
    });
    let result = run_step_with(step, args, &conf).await;
    if let Some(hb) = heartbeat {
        let _ = hb.stop().await;
    }
    if let Some((sfn, token)) = &sfn {
        let reported = match &result {
            Ok(value) => sfn.succeed(token, &callback_output(step, value)).await,
            Err(e) => sfn.fail(token, STEP_FAILED, &e.to_string()).await,
        };
        if let Err(e) = reported {
            // Step Functions still learns it: the heartbeat stops, and SSM's
            // status-change event reports the command's end.
            tracing::error!(error = %e, "completing the Step Functions task failed");
        }
    }
    result
}

async fn run_step_with(
    step: Step,
    args: &StepArgs,
    conf: &ebfleet_aws::SdkConfig,
) -> Result<serde_json::Value, NodeError> {
    Job::parse(&args.bucket, &args.batch, &args.execution, &args.platform)?;
    let ctx = args.context(conf)?;
    match step {
        Step::Sync => crate::sync::run(&ctx).await.map(to_json),
        Step::Build => crate::build::run(&ctx).await.map(to_json),
        Step::Tar => crate::pack::run(&ctx).await.map(to_json),
        Step::Upload => crate::upload::run(&ctx).await.map(to_json),
    }
}

/// What a step hands Step Functions: its result when it fits a state's
/// input comfortably, else only that it succeeded (the manifest and the
/// node's own JSON output hold the rest).
pub fn callback_output(step: Step, result: &serde_json::Value) -> serde_json::Value {
    const MAX: usize = 64 * 1024;
    let fits = serde_json::to_string(result).is_ok_and(|s| s.len() <= MAX);
    if fits {
        serde_json::json!({"step": step.as_str(), "result": result})
    } else {
        serde_json::json!({"step": step.as_str(), "result": null, "truncated": true})
    }
}

fn to_json<T: serde::Serialize>(v: T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ebfleet_core::step::StepCommand;

    #[test]
    fn the_ssm_documents_command_line_parses() {
        for step in Step::ALL {
            let cmd = StepCommand::parse(
                step.as_str(),
                "ebfleet-bucket",
                "plans/run-1/amzn-2023_graviton-3/12.json",
            )
            .unwrap();
            let cli = Cli::try_parse_from(cmd.argv()).unwrap();
            let (parsed, args) = match cli.command {
                Command::Sync(a) => (Step::Sync, a),
                Command::Build(a) => (Step::Build, a),
                Command::Tar(a) => (Step::Tar, a),
                Command::Upload(a) => (Step::Upload, a),
                Command::Heartbeat(_) => panic!("heartbeat"),
            };
            assert_eq!(parsed, step);
            assert_eq!(args.bucket, "ebfleet-bucket");
            assert_eq!(args.batch, "plans/run-1/amzn-2023_graviton-3/12.json");
            assert_eq!(args.execution, "run-1");
            assert_eq!(args.platform, "amzn-2023_graviton-3");
            let job =
                Job::parse(&args.bucket, &args.batch, &args.execution, &args.platform).unwrap();
            assert_eq!(job.batch(), 12);
        }
    }

    #[test]
    fn a_node_set_up_for_another_platform_refuses_the_batch() {
        let dir = tempfile::tempdir().unwrap();
        let env_file = dir.path().join("node.env");
        std::fs::write(&env_file, "EBFLEET_PLATFORM=amzn-2023_graviton-3\n").unwrap();
        let cli = Cli::try_parse_from([
            "ebfleet-node",
            "sync",
            "--bucket",
            "b-1",
            "--batch",
            "plans/run-1/amzn-2023_epyc-gen-4/0.json",
            "--execution",
            "run-1",
            "--platform",
            "amzn-2023_epyc-gen-4",
            "--env-file",
            env_file.to_str().unwrap(),
        ])
        .unwrap();
        let Command::Sync(args) = cli.command else {
            panic!()
        };
        let conf = ebfleet_aws::SdkConfig::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .build();
        let err = args.context(&conf).unwrap_err().to_string();
        assert!(
            err.contains("set up for platform amzn-2023_graviton-3"),
            "{err}"
        );
        std::fs::write(&env_file, "EBFLEET_PLATFORM=amzn-2023_epyc-gen-4\n").unwrap();
        let ctx = args.context(&conf).unwrap();
        assert_eq!(ctx.job.platform().as_str(), "amzn-2023_epyc-gen-4");
    }

    #[test]
    fn the_four_values_are_required() {
        assert!(Cli::try_parse_from(["ebfleet-node", "sync", "--bucket", "b-1"]).is_err());
        let cli = Cli::try_parse_from([
            "ebfleet-node",
            "heartbeat",
            "--task-token",
            "t",
            "--interval",
            "30",
        ])
        .unwrap();
        assert!(matches!(
            cli.command,
            Command::Heartbeat(HeartbeatArgs {
                interval: Some(30),
                ..
            })
        ));
    }
}
