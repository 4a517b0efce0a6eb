//! One step of a batch on a build node — `sync`, `build`, `tar` or
//! `upload` — as the dispatch Lambda sends it through SSM Run Command, and
//! what SSM says about it afterwards.
//!
//! A [`StepCommand`] is made only of validated values: a [`Step`], a
//! [`BucketName`] (S3's naming rules) and a [`BatchKey`]
//! (`plans/<execution>/<platform>/<batch>.json`, each part one of the
//! `keys` newtypes). Whatever the state machine hands the dispatch Lambda is
//! parsed into these first, so a hostile value (`;`, `$(…)`, backticks, a
//! newline, `..`) is refused before any command exists.
//!
//! # The SSM document contract
//!
//! The project's Command document ([`ssm_document`], schema 2.2) takes the
//! [`StepCommand::parameters`] — `step`, `bucket`, `batchKey`, `execution`,
//! `platform`, each exactly one validated value, and `executionTimeout` —
//! and runs, on Linux only:
//!
//! ```text
//! /opt/ebfleet/bin/ebfleet-node <step> --bucket <bucket> --batch <batchKey> \
//!     --execution <execution> --platform <platform>
//! ```
//!
//! with each value as its own argv entry ([`StepCommand::argv`]). The
//! values never become shell text: every string parameter is declared with
//! `interpolationType: ENV_VAR`, so SSM Agent (3.3.2746.0 or later) hands
//! it to the script as the environment variable `SSM_<name>`, and the script
//! only ever expands them double-quoted (`"$SSM_bucket"`). The script names
//! no `{{ parameter }}` at all (a test checks it); the only `{{ }}` in the
//! document is `executionTimeout` in the plugin's `timeoutSeconds`, a number.
//! An agent too old to set the variables makes the script stop with an
//! error instead of falling back to interpolation. Each parameter also has
//! an `allowedPattern` (or `allowedValues`) that SSM checks before sending,
//! a second fence behind the validation here.
//!
//! The node reads the batch file at `batchKey` and refuses one whose
//! execution or platform differ from the arguments.
//!
//! # Reading SSM's answer
//!
//! [`classify`] maps GetCommandInvocation's `Status`, `StatusDetails` and
//! `ResponseCode` to a [`CommandStatus`]: still running, succeeded, or
//! failed with a [`FailureReason`] the state machine can branch on.

use crate::names::{ExecutionName, PlatformName, MAX_EXECUTION_NAME, MAX_PLATFORM_NAME};
use crate::{layout, names};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

mod document;
mod status;

pub use document::ssm_document;
pub use status::{classify, CommandStatus, FailureReason};

/// Where the bootstrap installs the node agent.
pub const NODE_PROGRAM: &str = "/opt/ebfleet/bin/ebfleet-node";

/// SSM's ceiling for `aws:runShellScript`'s `timeoutSeconds` (48 hours).
pub const MAX_EXECUTION_TIMEOUT_SECS: u32 = 172_800;

/// Longest batch index accepted in a key, in digits.
const MAX_BATCH_DIGITS: usize = 9;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    /// `value` is shown escaped (`{:?}`) and cut to 100 characters, so a
    /// hostile value cannot forge log lines.
    #[error("invalid S3 bucket name {value:?}: {reason}")]
    InvalidBucket { value: String, reason: String },
    #[error("invalid batch key {value:?}: {reason}")]
    InvalidBatchKey { value: String, reason: String },
    #[error("unknown step {value:?} (expected sync, build, tar or upload)")]
    UnknownStep { value: String },
    #[error("execution timeout of {secs} s for step {step} is outside 1..={MAX_EXECUTION_TIMEOUT_SECS} s")]
    InvalidTimeout { step: Step, secs: u32 },
    #[error("invalid task token ({len} characters): {reason}")]
    InvalidTaskToken { len: usize, reason: String },
}

/// `value` for an error message: at most 100 characters (`Debug` escapes it).
fn shown(value: &str) -> String {
    const SHOWN: usize = 100;
    if value.chars().count() > SHOWN {
        let mut v: String = value.chars().take(SHOWN).collect();
        v.push('…');
        v
    } else {
        value.to_string()
    }
}

// ------------------------------------------------------------------ steps

/// One step of a batch, in the order the state machine runs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Step {
    /// Download the batch's already-built dependency closure and sources.
    Sync,
    /// `eb --robot` on the batch's easyconfigs.
    Build,
    /// One tarball per newly installed module.
    Tar,
    /// Tarballs, module files, sources, logs, then the batch manifest.
    Upload,
}

impl Step {
    pub const ALL: [Step; 4] = [Step::Sync, Step::Build, Step::Tar, Step::Upload];

    /// The node's subcommand and the value of the `step` parameter.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Sync => "sync",
            Step::Build => "build",
            Step::Tar => "tar",
            Step::Upload => "upload",
        }
    }

    /// How long the step may run on the node before SSM stops it
    /// (`Execution Timed Out`). A build batch gets the longest.
    pub fn default_timeout_secs(self) -> u32 {
        match self {
            Step::Sync => 2 * 3600,
            Step::Build => 24 * 3600,
            Step::Tar => 2 * 3600,
            Step::Upload => 3 * 3600,
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Step {
    type Err = StepError;
    fn from_str(s: &str) -> Result<Self, StepError> {
        Step::ALL
            .into_iter()
            .find(|step| step.as_str() == s)
            .ok_or_else(|| StepError::UnknownStep { value: shown(s) })
    }
}

// ------------------------------------------------------------------ bucket

fn check_bucket(s: &str) -> Result<(), String> {
    if !(3..=63).contains(&s.len()) {
        return Err("must be 3 to 63 characters long".into());
    }
    if let Some(b) = s
        .bytes()
        .find(|&b| !(b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-'))
    {
        return Err(if b.is_ascii_graphic() {
            format!("'{}' is not allowed (only a-z 0-9 . -)", b as char)
        } else {
            format!("byte 0x{b:02x} is not allowed (only a-z 0-9 . -)")
        });
    }
    let alnum = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_alphanumeric());
    if !alnum(s.as_bytes().first()) || !alnum(s.as_bytes().last()) {
        return Err("must begin and end with a letter or digit".into());
    }
    if s.contains("..") {
        return Err("must not contain two adjacent periods".into());
    }
    let parts: Vec<&str> = s.split('.').collect();
    if parts.len() == 4
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err("must not be formatted as an IP address".into());
    }
    for prefix in ["xn--", "sthree-", "amzn-s3-demo-"] {
        if s.starts_with(prefix) {
            return Err(format!("the prefix {prefix} is reserved"));
        }
    }
    for suffix in ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"] {
        if s.ends_with(suffix) {
            return Err(format!("the suffix {suffix} is reserved"));
        }
    }
    Ok(())
}

/// An S3 general purpose bucket name, checked against S3's naming rules:
/// 3–63 characters of `a-z 0-9 . -`, beginning and ending with a letter or
/// digit, no `..`, not an IP address, none of the reserved prefixes
/// (`xn--`, `sthree-`, `amzn-s3-demo-`) or suffixes (`-s3alias`,
/// `--ol-s3`, `.mrap`, `--x-s3`, `--table-s3`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BucketName(String);

impl BucketName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for BucketName {
    type Err = StepError;
    fn from_str(s: &str) -> Result<Self, StepError> {
        check_bucket(s).map_err(|reason| StepError::InvalidBucket {
            value: shown(s),
            reason,
        })?;
        Ok(BucketName(s.to_string()))
    }
}

impl TryFrom<String> for BucketName {
    type Error = StepError;
    fn try_from(s: String) -> Result<Self, StepError> {
        s.parse()
    }
}

impl From<BucketName> for String {
    fn from(b: BucketName) -> String {
        b.0
    }
}

impl fmt::Display for BucketName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// ------------------------------------------------------------------ batch key

/// The S3 key of one batch file, `plans/<execution>/<platform>/<batch>.json`
/// ([`layout::batch_key`]), with its parts validated: the execution and the
/// platform are [`ExecutionName`] and [`PlatformName`], the batch a decimal
/// number without leading zeros. Parsing accepts only the exact key
/// [`layout::batch_key`] would write for those parts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BatchKey {
    key: String,
    execution: ExecutionName,
    platform: PlatformName,
    batch: usize,
}

impl BatchKey {
    pub fn new(execution: &ExecutionName, platform: &PlatformName, batch: usize) -> Self {
        BatchKey {
            key: layout::batch_key(execution, platform, batch),
            execution: execution.clone(),
            platform: platform.clone(),
            batch,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.key
    }

    pub fn execution(&self) -> &ExecutionName {
        &self.execution
    }

    pub fn platform(&self) -> &PlatformName {
        &self.platform
    }

    pub fn batch(&self) -> usize {
        self.batch
    }
}

fn parse_batch_key(s: &str) -> Result<BatchKey, String> {
    // Longest possible key: bounds the work on a hostile input.
    const MAX: usize = "plans///.json".len() + MAX_EXECUTION_NAME + MAX_PLATFORM_NAME + 9;
    if s.len() > MAX {
        return Err(format!("longer than {MAX} bytes"));
    }
    let rest = s
        .strip_prefix("plans/")
        .ok_or("not plans/<execution>/<platform>/<batch>.json: must start with plans/")?;
    let rest = rest
        .strip_suffix(".json")
        .ok_or("not plans/<execution>/<platform>/<batch>.json: must end with .json")?;
    let parts: Vec<&str> = rest.split('/').collect();
    let [execution, platform, batch] = parts[..] else {
        return Err("not plans/<execution>/<platform>/<batch>.json: wrong number of parts".into());
    };
    let execution: ExecutionName = execution
        .parse()
        .map_err(|e: names::KeyError| e.to_string())?;
    let platform: PlatformName = platform
        .parse()
        .map_err(|e: names::KeyError| e.to_string())?;
    if batch.is_empty()
        || batch.len() > MAX_BATCH_DIGITS
        || !batch.bytes().all(|b| b.is_ascii_digit())
        || (batch.len() > 1 && batch.starts_with('0'))
    {
        return Err(format!(
            "batch {:?} is not a number of at most {MAX_BATCH_DIGITS} digits without leading zeros",
            shown(batch)
        ));
    }
    let batch: usize = batch
        .parse()
        .map_err(|e: std::num::ParseIntError| e.to_string())?;
    let key = BatchKey::new(&execution, &platform, batch);
    // By construction the same string; checked so the layout cannot drift
    // from `layout::batch_key` unnoticed.
    if key.key != s {
        return Err(format!("not the layout's key, which is {}", key.key));
    }
    Ok(key)
}

impl FromStr for BatchKey {
    type Err = StepError;
    fn from_str(s: &str) -> Result<Self, StepError> {
        parse_batch_key(s).map_err(|reason| StepError::InvalidBatchKey {
            value: shown(s),
            reason,
        })
    }
}

impl TryFrom<String> for BatchKey {
    type Error = StepError;
    fn try_from(s: String) -> Result<Self, StepError> {
        s.parse()
    }
}

impl From<BatchKey> for String {
    fn from(k: BatchKey) -> String {
        k.key
    }
}

impl fmt::Display for BatchKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key)
    }
}

// ------------------------------------------------------------------ command

/// Names of the SSM document's parameters (see the module documentation).
pub mod param {
    pub const STEP: &str = "step";
    pub const BUCKET: &str = "bucket";
    pub const BATCH_KEY: &str = "batchKey";
    pub const EXECUTION: &str = "execution";
    pub const PLATFORM: &str = "platform";
    pub const EXECUTION_TIMEOUT: &str = "executionTimeout";
    pub const TASK_TOKEN: &str = "taskToken";
}

/// Longest Step Functions task token.
pub const MAX_TASK_TOKEN: usize = 2048;

/// A Step Functions task token the node completes its step with: 1 to
/// [`MAX_TASK_TOKEN`] characters of `A-Z a-z 0-9 + / = _ . -` (base64 and
/// its URL-safe variant). It reaches the node as an environment variable,
/// never on its command line, and is never logged whole.
#[derive(Clone, PartialEq, Eq)]
pub struct TaskToken(String);

impl TaskToken {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for TaskToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TaskToken({} characters)", self.0.len())
    }
}

impl FromStr for TaskToken {
    type Err = StepError;
    fn from_str(s: &str) -> Result<Self, StepError> {
        let bad = |reason: &str| StepError::InvalidTaskToken {
            len: s.len(),
            reason: reason.into(),
        };
        if s.is_empty() || s.len() > MAX_TASK_TOKEN {
            return Err(bad("not 1 to 2048 characters"));
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+/=_.-".contains(&b))
        {
            return Err(bad("only A-Z a-z 0-9 + / = _ . - are allowed"));
        }
        Ok(TaskToken(s.to_string()))
    }
}

/// One step of one batch, ready for the SSM document. The execution and the
/// platform are those of the batch key, so they cannot disagree with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepCommand {
    step: Step,
    bucket: BucketName,
    batch_key: BatchKey,
    execution_timeout_secs: u32,
    task_token: Option<TaskToken>,
}

impl StepCommand {
    /// The command for `step` of the batch at `batch_key`, with the step's
    /// [default timeout](Step::default_timeout_secs).
    pub fn new(step: Step, bucket: BucketName, batch_key: BatchKey) -> Self {
        StepCommand {
            step,
            bucket,
            batch_key,
            execution_timeout_secs: step.default_timeout_secs(),
            task_token: None,
        }
    }

    /// The same command, completing the Step Functions task `token` when
    /// the step ends.
    pub fn with_task_token(mut self, token: TaskToken) -> Self {
        self.task_token = Some(token);
        self
    }

    pub fn task_token(&self) -> Option<&TaskToken> {
        self.task_token.as_ref()
    }

    /// Parse the three strings a state's input carries; any invalid one is
    /// an error and no command exists.
    pub fn parse(step: &str, bucket: &str, batch_key: &str) -> Result<Self, StepError> {
        Ok(StepCommand::new(
            step.parse()?,
            bucket.parse()?,
            batch_key.parse()?,
        ))
    }

    /// Another execution timeout, in `1..=`[`MAX_EXECUTION_TIMEOUT_SECS`].
    pub fn with_execution_timeout(mut self, secs: u32) -> Result<Self, StepError> {
        if !(1..=MAX_EXECUTION_TIMEOUT_SECS).contains(&secs) {
            return Err(StepError::InvalidTimeout {
                step: self.step,
                secs,
            });
        }
        self.execution_timeout_secs = secs;
        Ok(self)
    }

    pub fn step(&self) -> Step {
        self.step
    }

    pub fn bucket(&self) -> &BucketName {
        &self.bucket
    }

    pub fn batch_key(&self) -> &BatchKey {
        &self.batch_key
    }

    pub fn execution(&self) -> &ExecutionName {
        self.batch_key.execution()
    }

    pub fn platform(&self) -> &PlatformName {
        self.batch_key.platform()
    }

    pub fn batch(&self) -> usize {
        self.batch_key.batch()
    }

    pub fn execution_timeout_secs(&self) -> u32 {
        self.execution_timeout_secs
    }

    /// The parameters of SendCommand for the project's document: each a
    /// single validated value.
    pub fn parameters(&self) -> BTreeMap<String, Vec<String>> {
        [
            (param::STEP, self.step.as_str().to_string()),
            (param::BUCKET, self.bucket.to_string()),
            (param::BATCH_KEY, self.batch_key.to_string()),
            (param::EXECUTION, self.execution().to_string()),
            (param::PLATFORM, self.platform().to_string()),
            (
                param::EXECUTION_TIMEOUT,
                self.execution_timeout_secs.to_string(),
            ),
            (
                param::TASK_TOKEN,
                self.task_token
                    .as_ref()
                    .map_or(String::new(), |t| t.as_str().to_string()),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), vec![v]))
        .collect()
    }

    /// The argv the document runs on the node, program first.
    pub fn argv(&self) -> Vec<String> {
        vec![
            NODE_PROGRAM.to_string(),
            self.step.as_str().to_string(),
            "--bucket".into(),
            self.bucket.to_string(),
            "--batch".into(),
            self.batch_key.to_string(),
            "--execution".into(),
            self.execution().to_string(),
            "--platform".into(),
            self.platform().to_string(),
        ]
    }

    /// SendCommand's `Comment` (at most 100 characters), shown in the Run
    /// Command console: `ebfleet <step> <platform> batch <n>`.
    pub fn comment(&self) -> String {
        let c = format!(
            "ebfleet {} {} batch {}",
            self.step,
            self.platform(),
            self.batch()
        );
        c.chars().take(100).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> BatchKey {
        s.parse().unwrap()
    }

    fn command(step: Step) -> StepCommand {
        StepCommand::new(
            step,
            "ebfleet-builds".parse().unwrap(),
            key("plans/run-2026-11-24/amzn-2023_graviton-3/7.json"),
        )
    }

    #[test]
    fn steps_parse_print_and_serialise_lowercase() {
        for step in Step::ALL {
            assert_eq!(step.as_str().parse::<Step>().unwrap(), step);
            assert_eq!(
                serde_json::to_value(step).unwrap(),
                serde_json::json!(step.as_str())
            );
        }
        assert_eq!(
            serde_json::from_str::<Step>("\"upload\"").unwrap(),
            Step::Upload
        );
        for bad in ["", "Sync", "BUILD", "sync ", "heartbeat", "sync;reboot"] {
            assert!(
                matches!(bad.parse::<Step>(), Err(StepError::UnknownStep { .. })),
                "{bad:?}"
            );
        }
        assert!(serde_json::from_str::<Step>("\"Build\"").is_err());
    }

    #[test]
    fn bucket_names_follow_s3_rules() {
        for ok in [
            "abc",
            "ebfleet-builds",
            "my.bucket.name",
            "a1-b2.c3",
            &"a".repeat(63),
            "192.168.5.4x",
        ] {
            assert_eq!(ok.parse::<BucketName>().unwrap().as_str(), ok, "{ok:?}");
        }
        for bad in [
            "",
            "ab",
            &"a".repeat(64),
            "Ebfleet",
            "eb_fleet",
            "-ebfleet",
            "ebfleet-",
            ".ebfleet",
            "eb..fleet",
            "192.168.5.4",
            "xn--ebfleet",
            "sthree-ebfleet",
            "amzn-s3-demo-bucket",
            "ebfleet-s3alias",
            "ebfleet--ol-s3",
            "ebfleet.mrap",
            "ebfleet--x-s3",
            "ebfleet--table-s3",
            "eb fleet",
            "eb;fleet",
            "$(id)",
            "`id`",
            "eb\nfleet",
            "eb/fleet",
        ] {
            assert!(
                matches!(
                    bad.parse::<BucketName>(),
                    Err(StepError::InvalidBucket { .. })
                ),
                "{bad:?}"
            );
        }
        let err = "eb;fleet".parse::<BucketName>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid S3 bucket name \"eb;fleet\": ';' is not allowed (only a-z 0-9 . -)"
        );
        assert!(serde_json::from_str::<BucketName>("\"Bad_Bucket\"").is_err());
    }

    #[test]
    fn batch_keys_round_trip_with_the_layout() {
        let e: ExecutionName = "run-2026-11-24".parse().unwrap();
        let p: PlatformName = "amzn-2023_xeon-gen-4_h100".parse().unwrap();
        for batch in [0, 7, 3341, 999_999_999] {
            let k = BatchKey::new(&e, &p, batch);
            assert_eq!(k.as_str(), layout::batch_key(&e, &p, batch));
            let back: BatchKey = k.as_str().parse().unwrap();
            assert_eq!(back, k);
            assert_eq!(
                (back.execution(), back.platform(), back.batch()),
                (&e, &p, batch)
            );
        }
        let json = serde_json::to_string(&BatchKey::new(&e, &p, 3)).unwrap();
        assert_eq!(
            json,
            "\"plans/run-2026-11-24/amzn-2023_xeon-gen-4_h100/3.json\""
        );
        assert_eq!(
            serde_json::from_str::<BatchKey>(&json).unwrap(),
            BatchKey::new(&e, &p, 3)
        );
    }

    #[test]
    fn hostile_batch_keys_are_refused_before_any_command_exists() {
        let good = "plans/run-1/amzn-2023_graviton-3/0.json";
        assert!(StepCommand::parse("build", "ebfleet-builds", good).is_ok());
        for bad in [
            "plans/run-1/amzn-2023_graviton-3/0.json; reboot",
            "plans/run-1;reboot/amzn-2023_graviton-3/0.json",
            "plans/$(id)/amzn-2023_graviton-3/0.json",
            "plans/run-1/$(curl evil)/0.json",
            "plans/`id`/amzn-2023_graviton-3/0.json",
            "plans/run-1/amzn-2023_graviton-3/`id`.json",
            "plans/run-1\n/amzn-2023_graviton-3/0.json",
            "plans/run-1/amzn-2023_graviton-3/0.json\n",
            "plans/run-1/amzn-2023_graviton-3/0\n.json",
            "plans/../amzn-2023_graviton-3/0.json",
            "plans/run-1/../0.json",
            "plans/run-1/amzn-2023_graviton-3/../0.json",
            "plans/run-1/amzn-2023_graviton-3/..json",
            "../plans/run-1/amzn-2023_graviton-3/0.json",
            "/plans/run-1/amzn-2023_graviton-3/0.json",
            "plans//amzn-2023_graviton-3/0.json",
            "plans/run-1/amzn-2023_graviton-3/.json",
            "plans/run-1/amzn-2023_graviton-3/07.json",
            "plans/run-1/amzn-2023_graviton-3/+7.json",
            "plans/run-1/amzn-2023_graviton-3/-1.json",
            "plans/run-1/amzn-2023_graviton-3/1234567890.json",
            "plans/run-1/amzn-2023_graviton-3/0.JSON",
            "plans/run-1/amzn-2023_graviton-3/plan.json",
            "plans/run-1/plan.json",
            "plans/-rf/amzn-2023_graviton-3/0.json",
            "plans/run 1/amzn-2023_graviton-3/0.json",
            "plans/run-1/AMZN-2023_graviton-3/0.json",
            "plans/run-1/amzn-2023_graviton-3/0.json\0",
            "",
        ] {
            let err = bad.parse::<BatchKey>().unwrap_err();
            assert!(matches!(err, StepError::InvalidBatchKey { .. }), "{bad:?}");
            assert!(
                StepCommand::parse("build", "ebfleet-builds", bad).is_err(),
                "{bad:?}"
            );
            assert!(serde_json::from_value::<BatchKey>(serde_json::json!(bad)).is_err());
            // The message shows the value escaped: one line, whatever it holds.
            assert!(!err.to_string().contains('\n'), "{err}");
        }
        let long = format!("plans/{}/amzn-2023_graviton-3/0.json", "a".repeat(10_000));
        let err = long.parse::<BatchKey>().unwrap_err().to_string();
        assert!(err.len() < 400, "{err}");
        // Hostile step and bucket: no command either.
        assert!(StepCommand::parse("build;id", "ebfleet-builds", good).is_err());
        assert!(StepCommand::parse("build", "$(id)", good).is_err());
    }

    #[test]
    fn parameters_are_single_validated_values() {
        let c = command(Step::Build);
        let params = c.parameters();
        let expect = |v: &str| vec![v.to_string()];
        assert_eq!(
            params,
            BTreeMap::from([
                ("step".to_string(), expect("build")),
                ("bucket".to_string(), expect("ebfleet-builds")),
                (
                    "batchKey".to_string(),
                    expect("plans/run-2026-11-24/amzn-2023_graviton-3/7.json")
                ),
                ("execution".to_string(), expect("run-2026-11-24")),
                ("platform".to_string(), expect("amzn-2023_graviton-3")),
                ("executionTimeout".to_string(), expect("86400")),
                ("taskToken".to_string(), expect("")),
            ])
        );
        let token: TaskToken = "AQCEAAAAKgAAAAMAAAAA+/=_.-".parse().unwrap();
        let with = c.clone().with_task_token(token.clone());
        assert_eq!(with.parameters()["taskToken"], expect(token.as_str()));
        assert_eq!(with.argv(), c.argv(), "the token is never an argument");
        assert!(!format!("{token:?}").contains("AQCE"), "never logged whole");
        for bad in ["", "a b", "x;id", "$(id)", &"A".repeat(2049)] {
            assert!(bad.parse::<TaskToken>().is_err(), "{bad:?}");
        }
        assert_eq!(c.execution().as_str(), "run-2026-11-24");
        assert_eq!(c.platform().as_str(), "amzn-2023_graviton-3");
        assert_eq!(c.batch(), 7);
        assert_eq!(
            c.argv(),
            [
                NODE_PROGRAM,
                "build",
                "--bucket",
                "ebfleet-builds",
                "--batch",
                "plans/run-2026-11-24/amzn-2023_graviton-3/7.json",
                "--execution",
                "run-2026-11-24",
                "--platform",
                "amzn-2023_graviton-3",
            ]
        );
        assert_eq!(c.comment(), "ebfleet build amzn-2023_graviton-3 batch 7");
        for step in Step::ALL {
            let c = command(step);
            assert_eq!(c.parameters()["step"], [step.as_str()]);
            assert_eq!(c.execution_timeout_secs(), step.default_timeout_secs());
            assert!(c.execution_timeout_secs() <= MAX_EXECUTION_TIMEOUT_SECS);
        }
    }

    #[test]
    fn execution_timeout_is_bounded() {
        let c = command(Step::Sync).with_execution_timeout(600).unwrap();
        assert_eq!(c.parameters()["executionTimeout"], ["600"]);
        for bad in [0, MAX_EXECUTION_TIMEOUT_SECS + 1] {
            assert_eq!(
                command(Step::Sync).with_execution_timeout(bad).unwrap_err(),
                StepError::InvalidTimeout {
                    step: Step::Sync,
                    secs: bad
                }
            );
        }
        assert!(command(Step::Build)
            .with_execution_timeout(MAX_EXECUTION_TIMEOUT_SECS)
            .is_ok());
    }
}
