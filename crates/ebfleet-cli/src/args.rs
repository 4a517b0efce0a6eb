//! Command-line arguments.

use clap::{Args, Parser, Subcommand};
use ebfleet_core::Arch;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "ebfleet",
    version,
    about = "Plan and build the newest EasyBuild stack for every platform"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Plan what each platform must build: its build graph, in dependency order (and in batches).
    Plan(PlanArgs),
    /// Resolve targets like `eb --dry-run --robot`: each closure in build order.
    Resolve(ResolveArgs),
    /// Read every easyconfig and report what the robot sees (or what failed).
    Parse(ParseArgs),
    /// List the easyconfigs the toolchain policy chooses.
    Latest(LatestArgs),
    /// List the platforms.
    Platforms(PlatformsArgs),
    /// Print a shell completion script, e.g. `ebfleet completions bash > /etc/bash_completion.d/ebfleet`.
    Completions(CompletionsArgs),
    /// Start a run of the deployed stack (and follow it with --wait).
    Run(RunArgs),
    /// What a run built, failed, skipped, and what is still running, per platform.
    Status(StatusArgs),
    /// Print (or save) the EasyBuild logs of a module's last build on a platform.
    Logs(LogsArgs),
    /// Install built modules and what they load into an EasyBuild prefix.
    Pull(PullArgs),
    /// Write a run's report: a static HTML page with each platform's table, failures and graph.
    Report(ReportArgs),
}

/// Where the deployed stack is, and how to reach AWS (the aws CLI's options).
#[derive(Args, Debug, Clone)]
pub struct AwsArgs {
    #[command(flatten)]
    pub at: StackArgs,
    /// How to print: JSON, an aligned table, or tab-separated text.
    #[arg(long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// The deployed stack, and how to reach AWS.
#[derive(Args, Debug, Clone)]
pub struct StackArgs {
    /// The CloudFormation stack ebfleet was deployed as.
    #[arg(long, env = "EBFLEET_STACK", default_value = "ebfleet")]
    pub stack: String,
    /// A named profile of the AWS config and credentials files.
    #[arg(long)]
    pub profile: Option<String>,
    /// The AWS Region (else the profile's or AWS_REGION).
    #[arg(long)]
    pub region: Option<String>,
    /// Send every call to this URL (a local emulator) instead of AWS.
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Json,
    Table,
    Text,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub aws: AwsArgs,
    /// Only these platforms (full name or `cpu[_gpu]`; repeatable) [default: every platform].
    #[arg(long = "platform")]
    pub platform: Vec<String>,
    /// Allowed toolchain names, comma separated [default: the stack's].
    #[arg(long, value_delimiter = ',')]
    pub toolchains: Vec<String>,
    #[command(flatten)]
    pub select: SelectArgs,
    /// The run's (execution's) name [default: run-<UTC time>-full].
    #[arg(long)]
    pub name: Option<String>,
    /// Build modules again that failed before from the same easyconfig,
    /// EasyBuild and dependencies (failure memory holds them otherwise).
    #[arg(long)]
    pub retry_failed: bool,
    /// Start even when another run is going on (leases keep them from building a module twice).
    #[arg(long)]
    pub force: bool,
    /// Follow the run until it ends, then print its status.
    #[arg(long)]
    pub wait: bool,
    /// Seconds between looks at the run while waiting (its modules are
    /// counted every 10th look).
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    pub poll: u64,
}

/// Which run.
#[derive(Args, Debug, Clone)]
pub struct ExecutionArgs {
    /// The run's execution name or ARN [default: the newest run].
    #[arg(long, value_name = "NAME|ARN", conflicts_with = "last")]
    pub execution: Option<String>,
    /// The newest run (the default).
    #[arg(long)]
    pub last: bool,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    pub aws: AwsArgs,
    #[command(flatten)]
    pub execution: ExecutionArgs,
    /// Only these platforms (repeatable).
    #[arg(long = "platform")]
    pub platform: Vec<String>,
}

#[derive(Args, Debug)]
pub struct LogsArgs {
    #[command(flatten)]
    pub aws: AwsArgs,
    /// The module, `Name/version`.
    pub module: String,
    /// The platform (full name, e.g. amzn-2023_graviton-3).
    #[arg(long)]
    pub platform: String,
    /// The logs of this run [default: the run of the module's last attempt].
    #[arg(long, value_name = "NAME")]
    pub execution: Option<String>,
    /// Save the log files into this directory instead of printing them.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct PullArgs {
    #[command(flatten)]
    pub aws: AwsArgs,
    /// The platform (full name, e.g. amzn-2023_graviton-3).
    #[arg(long)]
    pub platform: String,
    /// The EasyBuild prefix to install into (`software/`, `modules/all/`); it
    /// must be the path the stack was built under (module files and RPATHs hold it).
    #[arg(long, value_name = "DIR")]
    pub prefix: PathBuf,
    /// Modules, `Name/version` (what they load comes too).
    #[arg(required = true)]
    pub modules: Vec<String>,
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    #[command(flatten)]
    pub aws: AwsArgs,
    #[command(flatten)]
    pub execution: ExecutionArgs,
    /// The directory to write `index.html` (and the failed builds' logs) into.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Args, Debug, Clone)]
pub struct TreeArgs {
    /// Easyconfigs directory (`<letter>/<Name>/<file>.eb`).
    #[arg(long, env = "EBFLEET_EASYCONFIGS", value_name = "DIR")]
    pub easyconfigs: PathBuf,
    /// Search the toolchain hierarchy bottom up, as `eb --minimal-toolchains`.
    #[arg(long)]
    pub minimal_toolchains: bool,
    /// Parse cache: easyconfigs parsed before, by content digest
    /// [default: $XDG_CACHE_HOME/ebfleet/parse-cache.bin, or under ~/.cache].
    #[arg(long, env = "EBFLEET_PARSE_CACHE", value_name = "FILE")]
    pub parse_cache: Option<PathBuf>,
    /// Neither read nor write the parse cache.
    #[arg(long)]
    pub no_cache: bool,
}

impl TreeArgs {
    /// The parse cache file to use, if any.
    pub fn cache_file(&self) -> Option<PathBuf> {
        if self.no_cache {
            return None;
        }
        if let Some(f) = &self.parse_cache {
            return Some(f.clone());
        }
        let home = |v: &str| {
            std::env::var_os(v)
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
        };
        let dir = home("XDG_CACHE_HOME").or_else(|| home("HOME").map(|h| h.join(".cache")))?;
        Some(dir.join("ebfleet").join("parse-cache.bin"))
    }
}

#[derive(Args, Debug, Clone)]
pub struct PolicyArgs {
    /// Allowed toolchain names, comma separated (`SYSTEM` is the system toolchain).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "SYSTEM,GCCcore,GCC,gompi,gfbf,foss"
    )]
    pub toolchains: Vec<String>,
    #[command(flatten)]
    pub select: SelectArgs,
}

/// What to build beside the toolchains: floors, names, an easystack.
#[derive(Args, Debug, Clone)]
pub struct SelectArgs {
    /// Lowest toolchain generation, e.g. `foss>=2023a` (repeatable).
    #[arg(long = "floor", value_name = "TC>=VERSION")]
    pub floors: Vec<String>,
    /// Only these software names (`*` wildcards; repeatable).
    #[arg(long)]
    pub include: Vec<String>,
    /// Not these software names (`*` wildcards; repeatable).
    #[arg(long)]
    pub exclude: Vec<String>,
    /// Build what this EasyBuild easystack file lists instead of the latest.
    #[arg(long, value_name = "FILE")]
    pub easystack: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct PlatformFileArgs {
    /// Platforms file (TOML); the shipped defaults otherwise.
    #[arg(long, env = "EBFLEET_PLATFORMS", value_name = "FILE")]
    pub platforms_file: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct PlanArgs {
    #[command(flatten)]
    pub tree: TreeArgs,
    #[command(flatten)]
    pub policy: PolicyArgs,
    #[command(flatten)]
    pub platforms: PlatformFileArgs,
    /// Plan only these platforms (full name or `cpu[_gpu]`; repeatable).
    #[arg(long = "platform")]
    pub platform: Vec<String>,
    /// What each platform has built: JSON `{"<platform>": ["Name/version", ...]}`.
    #[arg(long, value_name = "FILE")]
    pub built: Option<PathBuf>,
    /// Take what each platform has built, and how long its builds took
    /// (for --estimate), from the deployed stack's records (--stack …), as
    /// a run would.
    #[arg(long, conflicts_with = "built")]
    pub recorded: bool,
    #[command(flatten)]
    pub at: StackArgs,
    /// Most modules in one batch.
    #[arg(long, default_value_t = 50)]
    pub max_batch: usize,
    /// Print the whole plan as JSON.
    #[arg(long)]
    pub json: bool,
    /// Write the build graph of each platform as Graphviz.
    #[arg(long, value_name = "FILE")]
    pub dot: Option<PathBuf>,
    /// Estimate each platform's run: node-hours, makespan and dollars, by
    /// simulating the pipeline's scheduler (the `platforms[].estimate` of --json).
    #[arg(long)]
    pub estimate: bool,
    /// Build times for --estimate: `{"default_s", "by_name", "by_module"}` [default: the shipped model].
    #[arg(long, value_name = "FILE", requires = "estimate")]
    pub durations: Option<PathBuf>,
    /// Nodes per platform for --estimate (the stack's NodesPerPlatform).
    #[arg(long, default_value_t = 32, requires = "estimate")]
    pub nodes: u32,
    /// USD per node-hour for --estimate: `{"<platform>" or "<cpu>": price}`.
    #[arg(long, value_name = "FILE", requires = "estimate")]
    pub prices: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ResolveArgs {
    #[command(flatten)]
    pub tree: TreeArgs,
    /// Architecture to resolve for.
    #[arg(long, default_value = "x86_64")]
    pub arch: Arch,
    /// JSON array of `{"target", "module", "closure"}` or `{"target", "error"}`.
    #[arg(long)]
    pub json: bool,
    /// Read more targets from this file, one per line (`#` comments).
    #[arg(long, value_name = "FILE")]
    pub targets_file: Option<PathBuf>,
    /// Easyconfig file names (found in the tree) or paths.
    pub targets: Vec<String>,
}

#[derive(Args, Debug)]
pub struct ParseArgs {
    #[command(flatten)]
    pub tree: TreeArgs,
    #[arg(long, default_value = "x86_64")]
    pub arch: Arch,
    /// One JSON line per file.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct LatestArgs {
    #[command(flatten)]
    pub tree: TreeArgs,
    #[command(flatten)]
    pub policy: PolicyArgs,
    #[arg(long, default_value = "x86_64")]
    pub arch: Arch,
    /// Include CUDA variants.
    #[arg(long)]
    pub cuda: bool,
}

#[derive(Args, Debug)]
pub struct PlatformsArgs {
    #[command(flatten)]
    pub platforms: PlatformFileArgs,
    #[arg(long)]
    pub json: bool,
}
