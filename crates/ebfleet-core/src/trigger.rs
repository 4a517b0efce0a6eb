//! The S3 trigger: which new easyconfig an EventBridge `Object Created`
//! event names, what execution it starts, and when it waits for the running
//! one instead.
//!
//! Rule: at most one execution runs at a time. A change that lands while
//! one runs is recorded as pending ([`decide`] answers
//! [`TriggerDecision::Defer`]); the end of that execution starts one
//! follow-up with every pending key ([`on_execution_end`]). So a burst of
//! uploads costs one extra execution, not one per file, and two executions
//! never plan the same change against each other.
//!
//! Nothing an event carries fails the trigger: a key that is not an
//! easyconfig, not under `easyconfigs/`, badly encoded or invalid is
//! [`Ignored`] with a reason to log.
//!
//! The execution input, [`ExecutionInput`], is what the state machine and
//! the plan Lambda read: `{execution, platforms?, changed_keys?, mode,
//! options?}`.

use crate::checksum::sha256_hex;
use crate::layout::EASYCONFIGS_PREFIX;
use crate::names::{EasyconfigKey, ExecutionName, KeyError, PlatformName};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// The EventBridge `detail-type` of a new object.
pub const OBJECT_CREATED: &str = "Object Created";

/// The most bytes of keys an execution input carries in `changed_keys`.
/// Past it the follow-up plans everything (`mode: full`, a superset), so
/// the input stays far below Step Functions' 256 KiB payload limit
/// ([`crate::wire::STATE_PAYLOAD_LIMIT`]) whatever lands in the bucket —
/// a whole easyconfigs release is ~12,000 files.
pub const CHANGED_KEYS_BUDGET: usize = 64 * 1024;

// ---------------------------------------------------------------------------
// The event.

/// An S3 event delivered by EventBridge; only what the trigger reads.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ObjectCreatedEvent {
    #[serde(rename = "detail-type", default)]
    pub detail_type: Option<String>,
    pub detail: ObjectCreatedDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ObjectCreatedDetail {
    pub bucket: BucketRef,
    pub object: ObjectRef,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BucketRef {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ObjectRef {
    /// As the event carries it (possibly percent-encoded).
    pub key: String,
}

/// Why an event starts nothing. Keys and names are shown escaped and cut
/// to 100 characters, so a hostile key cannot forge log lines.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Ignored {
    #[error("not an S3 Object Created event: {0}")]
    Malformed(String),
    #[error("event is {0}, not \"Object Created\"")]
    NotObjectCreated(String),
    #[error("object in bucket {found}, not {expected:?}")]
    OtherBucket { found: String, expected: String },
    #[error("key {0} is not under {EASYCONFIGS_PREFIX}")]
    NotUnderPrefix(String),
    #[error("key {0} is not an .eb file")]
    NotEasyconfig(String),
    #[error("key {key} is not percent-encoded correctly: {reason}")]
    BadEncoding { key: String, reason: &'static str },
    #[error(transparent)]
    Invalid(KeyError),
    #[error("execution status {0} is not an end")]
    NotEnded(String),
}

/// `s` escaped (`{:?}`) and cut to 100 characters.
fn shown(s: &str) -> String {
    const SHOWN: usize = 100;
    if s.chars().count() > SHOWN {
        let cut: String = s.chars().take(SHOWN).collect();
        format!("{cut:?}…")
    } else {
        format!("{s:?}")
    }
}

impl ObjectCreatedEvent {
    /// Read the event Lambda received; anything else is
    /// [`Ignored::Malformed`].
    pub fn from_value(event: serde_json::Value) -> Result<Self, Ignored> {
        serde_json::from_value(event).map_err(|e| Ignored::Malformed(e.to_string()))
    }

    /// The easyconfig the event adds to `bucket`, or why it is ignored.
    ///
    /// S3 percent-encodes keys in its events (`libsigc%2B%2B`); the key is
    /// decoded, then validated as an [`EasyconfigKey`]. A `+` is kept as a
    /// `+`: in S3's form encoding it stands for a space, which no valid key
    /// holds, while a literal `+` (common in software names) arrives either
    /// as `%2B` or, from senders that do not encode, as `+`; both read right.
    pub fn easyconfig_key(&self, bucket: &str) -> Result<EasyconfigKey, Ignored> {
        if let Some(t) = self.detail_type.as_deref().filter(|t| *t != OBJECT_CREATED) {
            return Err(Ignored::NotObjectCreated(shown(t)));
        }
        if self.detail.bucket.name != bucket {
            return Err(Ignored::OtherBucket {
                found: shown(&self.detail.bucket.name),
                expected: bucket.to_string(),
            });
        }
        let raw = &self.detail.object.key;
        let key = percent_decode(raw).map_err(|reason| Ignored::BadEncoding {
            key: shown(raw),
            reason,
        })?;
        if !key.starts_with(EASYCONFIGS_PREFIX) {
            return Err(Ignored::NotUnderPrefix(shown(&key)));
        }
        if !key.ends_with(".eb") {
            return Err(Ignored::NotEasyconfig(shown(&key)));
        }
        EasyconfigKey::try_from(key).map_err(Ignored::Invalid)
    }
}

/// The easyconfig an EventBridge event adds to `bucket`, or why it starts
/// nothing.
pub fn changed_key(event: serde_json::Value, bucket: &str) -> Result<EasyconfigKey, Ignored> {
    ObjectCreatedEvent::from_value(event)?.easyconfig_key(bucket)
}

/// `%XX` decoded; the result must be UTF-8. Nothing else is touched.
fn percent_decode(s: &str) -> Result<String, &'static str> {
    if !s.contains('%') {
        return Ok(s.to_string());
    }
    let hex = |b: u8| (b as char).to_digit(16);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            ) else {
                return Err("'%' not followed by two hex digits");
            };
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "decodes to bytes that are not UTF-8")
}

// ---------------------------------------------------------------------------
// The execution input.

/// What an execution plans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Every easyconfig: the schedule, a manual run, or too many changes.
    Full,
    /// Only `changed_keys` and what they need.
    Changed,
}

/// An execution input that does not hold together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error("execution {0}: mode changed needs a non-empty changed_keys")]
    NoChangedKeys(ExecutionName),
    #[error("execution {0}: changed_keys given with mode full")]
    KeysWithFull(ExecutionName),
    #[error("execution {0}: platforms is empty (leave it out for every platform)")]
    NoPlatforms(ExecutionName),
    #[error("execution {0}: options.easystack given with changed_keys")]
    EasystackWithChanged(ExecutionName),
    #[error("execution {execution}: options.{field}: {problem}")]
    BadOption {
        execution: ExecutionName,
        field: &'static str,
        problem: String,
    },
}

/// The planner's options of a run started by hand (`ebfleet run`), in
/// place of the stack's defaults: each list left empty keeps the default.
/// Plain strings here; the plan Lambda parses them (a bad floor or an
/// unknown toolchain fails the plan, with the reason, before any instance
/// starts).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunOptions {
    /// Allowed toolchain names (`--toolchains`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub toolchains: Vec<String>,
    /// `foss>=2023a` (`--floor`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub floors: Vec<String>,
    /// Software names or `*` patterns (`--include`, `--exclude`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// Easyconfig file names to build instead of the latest of everything
    /// (an easystack's, read by `ebfleet run --easystack`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub easystack: Vec<String>,
}

/// Longest string an option may hold, in bytes: names and patterns are
/// short; the input as a whole must fit a Step Functions payload.
pub const MAX_OPTION_BYTES: usize = 256;

impl RunOptions {
    pub fn is_empty(&self) -> bool {
        self == &RunOptions::default()
    }

    /// Each string is short, printable and not empty; an easystack entry
    /// is an easyconfig file name (`*.eb`, no directory).
    fn check(&self) -> Result<(), (&'static str, String)> {
        let fields: [(&'static str, &Vec<String>); 5] = [
            ("toolchains", &self.toolchains),
            ("floors", &self.floors),
            ("include", &self.include),
            ("exclude", &self.exclude),
            ("easystack", &self.easystack),
        ];
        for (field, values) in fields {
            for v in values {
                let problem = if v.trim().is_empty() {
                    Some("an empty entry".to_string())
                } else if v.len() > MAX_OPTION_BYTES {
                    Some(format!("an entry longer than {MAX_OPTION_BYTES} bytes"))
                } else if v.chars().any(char::is_control) {
                    Some(format!("{} holds a control character", shown(v)))
                } else if field == "easystack" && (!v.ends_with(".eb") || v.contains('/')) {
                    Some(format!("{} is not an easyconfig file name", shown(v)))
                } else {
                    None
                };
                if let Some(problem) = problem {
                    return Err((field, problem));
                }
            }
        }
        Ok(())
    }
}

/// The state machine's input, `{execution, platforms?, changed_keys?, mode?}`,
/// valid by construction and on deserialisation: `mode` left out is
/// `changed` when keys are given, else `full` (a run started by hand with
/// `{}` or `{"platforms": [...]}`); `changed` mode has keys,
/// `full` mode has none, `platforms` is absent (every platform) or not
/// empty. Keys are sorted and unique.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawInput")]
pub struct ExecutionInput {
    execution: ExecutionName,
    #[serde(skip_serializing_if = "Option::is_none")]
    platforms: Option<Vec<PlatformName>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    changed_keys: Option<Vec<EasyconfigKey>>,
    mode: Mode,
    #[serde(skip_serializing_if = "RunOptions::is_empty")]
    options: RunOptions,
    /// Build modules failure memory holds ([`crate::failure_memory`]).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    retry_failed: bool,
}

#[derive(Deserialize)]
struct RawInput {
    execution: ExecutionName,
    #[serde(default)]
    platforms: Option<Vec<PlatformName>>,
    #[serde(default)]
    changed_keys: Option<Vec<EasyconfigKey>>,
    #[serde(default)]
    mode: Option<Mode>,
    #[serde(default)]
    options: RunOptions,
    #[serde(default)]
    retry_failed: bool,
}

impl TryFrom<RawInput> for ExecutionInput {
    type Error = InputError;
    fn try_from(raw: RawInput) -> Result<Self, InputError> {
        let RawInput {
            execution,
            platforms,
            changed_keys,
            mode,
            options,
            retry_failed,
        } = raw;
        if platforms.as_ref().is_some_and(Vec::is_empty) {
            return Err(InputError::NoPlatforms(execution));
        }
        let mode = mode.unwrap_or(match changed_keys {
            Some(_) => Mode::Changed,
            None => Mode::Full,
        });
        let changed_keys = match (mode, changed_keys) {
            (Mode::Full, None) => None,
            (Mode::Full, Some(_)) => return Err(InputError::KeysWithFull(execution)),
            (Mode::Changed, Some(k)) if !k.is_empty() => Some(sorted_unique(k)),
            (Mode::Changed, _) => return Err(InputError::NoChangedKeys(execution)),
        };
        ExecutionInput {
            execution,
            platforms: platforms
                .map(|p| p.into_iter().collect::<BTreeSet<_>>().into_iter().collect()),
            changed_keys,
            mode,
            options: RunOptions::default(),
            retry_failed,
        }
        .with_options(options)
    }
}

fn sorted_unique(keys: impl IntoIterator<Item = EasyconfigKey>) -> Vec<EasyconfigKey> {
    keys.into_iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// Bytes the keys take in the input's JSON, roughly (quotes and commas).
fn keys_bytes(keys: &[EasyconfigKey]) -> usize {
    keys.iter().map(|k| k.as_str().len() + 3).sum()
}

impl ExecutionInput {
    /// Plan everything, on every platform.
    pub fn full(execution: ExecutionName) -> Self {
        ExecutionInput {
            execution,
            platforms: None,
            changed_keys: None,
            mode: Mode::Full,
            options: RunOptions::default(),
            retry_failed: false,
        }
    }

    /// Plan `keys` and what they need; `None` when there is no key. Keys
    /// over [`CHANGED_KEYS_BUDGET`] make it a full run (a superset) so the
    /// input always fits a Step Functions payload.
    pub fn for_changes(
        execution: ExecutionName,
        keys: impl IntoIterator<Item = EasyconfigKey>,
    ) -> Option<Self> {
        let keys = sorted_unique(keys);
        if keys.is_empty() {
            return None;
        }
        if keys_bytes(&keys) > CHANGED_KEYS_BUDGET {
            return Some(ExecutionInput::full(execution));
        }
        Some(ExecutionInput {
            execution,
            platforms: None,
            changed_keys: Some(keys),
            mode: Mode::Changed,
            options: RunOptions::default(),
            retry_failed: false,
        })
    }

    /// Only these platforms (`None`: every platform). An empty list means
    /// every platform too, never none.
    pub fn with_platforms(mut self, platforms: impl IntoIterator<Item = PlatformName>) -> Self {
        let p: Vec<PlatformName> = platforms
            .into_iter()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        self.platforms = (!p.is_empty()).then_some(p);
        self
    }

    pub fn execution(&self) -> &ExecutionName {
        &self.execution
    }

    /// The planner's options, for a full run; `Err` when they do not hold
    /// together (an easystack with changed keys, a bad entry).
    pub fn with_options(mut self, options: RunOptions) -> Result<Self, InputError> {
        if let Err((field, problem)) = options.check() {
            return Err(InputError::BadOption {
                execution: self.execution,
                field,
                problem,
            });
        }
        if self.changed_keys.is_some() && !options.easystack.is_empty() {
            return Err(InputError::EasystackWithChanged(self.execution));
        }
        self.options = options;
        Ok(self)
    }

    /// Build what failed before from the same inputs too.
    pub fn with_retry_failed(mut self, retry_failed: bool) -> Self {
        self.retry_failed = retry_failed;
        self
    }

    pub fn retry_failed(&self) -> bool {
        self.retry_failed
    }

    /// The planner's options the run asks for (empty: the stack's).
    pub fn options(&self) -> &RunOptions {
        &self.options
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// `None`: every platform.
    pub fn platforms(&self) -> Option<&[PlatformName]> {
        self.platforms.as_deref()
    }

    /// The keys of a `changed` run, sorted and unique; empty for `full`.
    pub fn changed_keys(&self) -> &[EasyconfigKey] {
        self.changed_keys.as_deref().unwrap_or_default()
    }
}

// ---------------------------------------------------------------------------
// Execution names.

/// `YYYYMMDDTHHMMSSZ` of a Unix time, UTC.
fn utc_stamp(unix: u64) -> String {
    let t = crate::clock::UtcTime::from_unix(unix);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

/// `<prefix>-<UTC time>-full`, or `<prefix>-<UTC time>-changed-<hash>` with
/// the first 8 hex digits of the sha256 of the sorted, unique `changed`
/// keys; the prefix is cut so the name fits [`crate::names::MAX_EXECUTION_NAME`].
///
/// Unique enough: two names collide only for the same keys (or two full
/// runs) in the same second, and then Step Functions refuses the second
/// start (`ExecutionAlreadyExists`) — the duplicate delivery S3 events allow
/// is exactly that case, so it starts nothing twice. The time reads in the
/// console and sorts.
pub fn execution_name(
    prefix: &ExecutionName,
    now_unix: u64,
    changed: &[EasyconfigKey],
) -> ExecutionName {
    let tag = if changed.is_empty() {
        "full".to_string()
    } else {
        let keys = sorted_unique(changed.iter().cloned());
        let text = keys
            .iter()
            .map(EasyconfigKey::as_str)
            .collect::<Vec<_>>()
            .join("\n");
        format!("changed-{}", &sha256_hex(text.as_bytes())[..8])
    };
    let suffix = format!("-{}-{tag}", utc_stamp(now_unix));
    let room = crate::names::MAX_EXECUTION_NAME - suffix.len();
    // The prefix is a valid name: ASCII, so any cut is a char boundary, and
    // it still starts with what it started with.
    let p = &prefix.as_str()[..prefix.as_str().len().min(room)];
    format!("{p}{suffix}")
        .parse()
        .expect("a valid prefix, a date and a hex digest make a valid name")
}

// ---------------------------------------------------------------------------
// The follow-up rule.

/// How to name an execution started now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Naming {
    pub prefix: ExecutionName,
    pub now_unix: u64,
}

impl Naming {
    fn input(&self, keys: Vec<EasyconfigKey>) -> Option<ExecutionInput> {
        let probe = ExecutionInput::for_changes(self.name(&[]), keys)?;
        let name = self.name(probe.changed_keys());
        Some(ExecutionInput {
            execution: name,
            ..probe
        })
    }

    fn name(&self, changed: &[EasyconfigKey]) -> ExecutionName {
        execution_name(&self.prefix, self.now_unix, changed)
    }
}

/// What the trigger does with a new key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TriggerDecision {
    /// No execution runs: start this one (every pending key and the new
    /// one), then clear the pending keys.
    Start(ExecutionInput),
    /// One runs: store these as the pending keys (sorted, unique, the new
    /// one included); its end starts the follow-up.
    Defer(Vec<EasyconfigKey>),
}

/// The trigger's rule for `new`, given whether an execution of the state
/// machine is running and the keys already pending.
///
/// Pending keys left over when nothing runs (a follow-up that failed to
/// start) go into the new execution rather than waiting for another end.
pub fn decide(
    running: bool,
    pending: &[EasyconfigKey],
    new: EasyconfigKey,
    naming: &Naming,
) -> TriggerDecision {
    let keys = sorted_unique(pending.iter().cloned().chain([new]));
    if running {
        TriggerDecision::Defer(keys)
    } else {
        // Non-empty: it holds `new`.
        TriggerDecision::Start(naming.input(keys).expect("at least the new key"))
    }
}

/// The follow-up an ending execution starts: one execution with every
/// pending key, or nothing when none is pending or another execution still
/// runs (its own end picks them up). The caller clears the pending keys
/// once it started.
pub fn on_execution_end(
    others_running: bool,
    pending: &[EasyconfigKey],
    naming: &Naming,
) -> Option<ExecutionInput> {
    if others_running {
        return None;
    }
    naming.input(pending.to_vec())
}

mod pending;
pub use pending::{
    key_from_pending_sk, pending_sk, EndStatus, ExecutionEnded, TriggerEvent,
    EXECUTION_STATUS_CHANGE, PENDING_PK, PENDING_TTL_SECS,
};

#[cfg(test)]
mod tests;
