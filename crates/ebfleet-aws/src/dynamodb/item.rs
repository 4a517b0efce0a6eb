//! A [`ModuleRecord`] as a DynamoDB item, and back, through serde_dynamo.
//!
//! The item goes through a private flat struct, not the record's own serde
//! form: the attribute names are the table's schema (conditions and queries
//! name them, see [`attr`]) and the items already stored fix them, so they
//! are spelled out here once, flat (`tarball_key`, `lease_expires`, ...) so
//! the console shows them as columns and a condition can name any of them.
//! Numbers are `N`, everything else `S`; an absent optional field is an
//! absent attribute. The platform and module are not stored twice: they are
//! read back from `pk` and `sk`.
//!
//! Reading is strict: a missing required attribute, a wrong type, a number
//! that does not parse or half of a group (a tarball without its size) is
//! an [`ItemError`] naming the attribute, never a default.

use aws_sdk_dynamodb::types::AttributeValue;
use ebfleet_core::layout::{module_from_sk, platform_from_pk};
use ebfleet_core::record::{Lease, ModuleRecord, RecordedError, Status, Tarball};
use ebfleet_core::sizing::BuildUsage;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// A DynamoDB item.
pub type Item = HashMap<String, AttributeValue>;

/// The attribute names of a module item.
pub mod attr {
    pub const PK: &str = "pk";
    pub const SK: &str = "sk";
    pub const STATUS: &str = "status";
    pub const EASYCONFIG_SHA256: &str = "easyconfig_sha256";
    pub const TARBALL_KEY: &str = "tarball_key";
    pub const TARBALL_SIZE: &str = "tarball_size";
    pub const TARBALL_SHA256: &str = "tarball_sha256";
    pub const TARBALL_VERSION_ID: &str = "tarball_version_id";
    pub const TARBALL_SIGNATURE: &str = "tarball_signature";
    pub const MODULE_FILE_KEY: &str = "module_file_key";
    pub const EB_VERSION: &str = "eb_version";
    pub const INSTANCE_TYPE: &str = "instance_type";
    pub const ARCHSPEC: &str = "archspec";
    pub const DURATION_S: &str = "duration_s";
    pub const PEAK_MEMORY_MIB: &str = "peak_memory_mib";
    pub const CPU_S: &str = "cpu_s";
    pub const CPUS: &str = "cpus";
    pub const ATTEMPTS: &str = "attempts";
    pub const ERROR_CLASS: &str = "error_class";
    pub const ERROR_MESSAGE: &str = "error_message";
    pub const ERROR_LOG_KEY: &str = "error_log_key";
    pub const EXECUTION: &str = "execution";
    pub const BATCH: &str = "batch";
    pub const CREATED: &str = "created";
    pub const UPDATED: &str = "updated";
    pub const LEASE_OWNER: &str = "lease_owner";
    pub const LEASE_EXPIRES: &str = "lease_expires";
    pub const VERSION: &str = "version";
    /// Of a wake-up item: the units that ended, the scheduler's token.
    pub const WAKE_COUNT: &str = "ended";
    pub const WAKE_TOKEN: &str = "task_token";
}

/// Why an item is not a module record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("attribute {attribute}: {problem}")]
pub struct ItemError {
    pub attribute: String,
    pub problem: String,
}

fn bad(attribute: &str, problem: impl Into<String>) -> ItemError {
    ItemError {
        attribute: attribute.to_string(),
        problem: problem.into(),
    }
}

/// A module item as stored: one field per attribute of [`attr`], named
/// alike. Status and error class are text parsed here, so that a bad one
/// is reported with its value.
#[derive(Serialize, Deserialize)]
struct Flat {
    pk: String,
    sk: String,
    status: String,
    easyconfig_sha256: String,
    tarball_key: Option<String>,
    tarball_size: Option<u64>,
    tarball_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tarball_version_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tarball_signature: Option<String>,
    module_file_key: Option<String>,
    eb_version: Option<String>,
    instance_type: Option<String>,
    archspec: Option<String>,
    duration_s: Option<u64>,
    peak_memory_mib: Option<u64>,
    cpu_s: Option<u64>,
    cpus: Option<u32>,
    attempts: u32,
    error_class: Option<String>,
    error_message: Option<String>,
    error_log_key: Option<String>,
    execution: Option<String>,
    batch: Option<u32>,
    created: u64,
    updated: u64,
    lease_owner: Option<String>,
    lease_expires: Option<u64>,
    version: u64,
}

/// The `u32` attributes of [`Flat`]; every other number is a `u64`.
const U32: [&str; 3] = [attr::ATTEMPTS, attr::BATCH, attr::CPUS];

/// The item of `r`, keys included.
pub fn to_item(r: &ModuleRecord) -> Item {
    let (t, e, l) = (r.tarball.as_ref(), r.last_error.as_ref(), r.lease.as_ref());
    let u = r.usage.as_ref();
    let flat = Flat {
        pk: r.pk(),
        sk: r.sk(),
        status: r.status.to_string(),
        easyconfig_sha256: r.easyconfig_sha256.clone(),
        tarball_key: t.map(|t| t.key.clone()),
        tarball_size: t.map(|t| t.size),
        tarball_sha256: t.map(|t| t.sha256.clone()),
        tarball_version_id: t.and_then(|t| t.version_id.clone()),
        tarball_signature: t.and_then(|t| t.signature.clone()),
        module_file_key: r.module_file_key.clone(),
        eb_version: r.eb_version.clone(),
        instance_type: r.instance_type.clone(),
        archspec: r.archspec.clone(),
        duration_s: r.duration_s,
        peak_memory_mib: u.map(|u| u.peak_memory_mib),
        cpu_s: u.map(|u| u.cpu_s),
        cpus: u.map(|u| u.cpus),
        attempts: r.attempts,
        error_class: e.map(|e| e.class.to_string()),
        error_message: e.map(|e| e.message.clone()),
        error_log_key: e.and_then(|e| e.log_key.clone()),
        execution: r.execution.clone(),
        batch: r.batch,
        created: r.created,
        updated: r.updated,
        lease_owner: l.map(|l| l.owner.clone()),
        lease_expires: l.map(|l| l.expires),
        version: r.version,
    };
    let mut item: Item = serde_dynamo::to_item(flat).expect("strings and numbers serialize");
    // serde_dynamo writes None as NULL; here it is an absent attribute.
    item.retain(|_, v| !v.is_null());
    item
}

/// `item` as `T`, whose fields are named after attributes.
pub(crate) fn read<T: DeserializeOwned>(item: &Item) -> Result<T, ItemError> {
    // serde_dynamo would read NULL as None; nothing here writes NULL.
    if let Some(name) = item.iter().find_map(|(k, v)| v.is_null().then_some(k)) {
        return Err(bad(name, "NULL where a string or number belongs"));
    }
    let value = serde_dynamo::AttributeValue::from(AttributeValue::M(item.clone()));
    let de = serde_dynamo::Deserializer::from_attribute_value(value);
    serde_path_to_error::deserialize(de).map_err(|e| named(item, e))
}

/// A serde_dynamo error as an [`ItemError`]: its text names neither the
/// attribute (`serde_path_to_error` finds it) nor the value found.
fn named(item: &Item, e: serde_path_to_error::Error<serde_dynamo::Error>) -> ItemError {
    let text = e.inner().to_string();
    // serde reports a missing field on the struct, by name.
    if let Some(name) = text
        .strip_prefix("missing field `")
        .and_then(|t| t.strip_suffix('`'))
    {
        return bad(name, "missing");
    }
    let name = e.path().to_string();
    let width = U32.iter().find(|a| **a == name).map_or("u64", |_| "u32");
    let problem = match (item.get(&name), text.as_str()) {
        (Some(AttributeValue::N(v)), t) if t.starts_with("Failed to parse") => {
            format!("{v:?} is not a {width}")
        }
        (Some(v), "Expected num") => format!("expected a number (N), found {v:?}"),
        (Some(v), "Expected string") => format!("expected a string (S), found {v:?}"),
        _ => text,
    };
    bad(&name, problem)
}

/// The usage attributes, when all three are there.
pub(crate) fn usage(
    peak_memory_mib: Option<u64>,
    cpu_s: Option<u64>,
    cpus: Option<u32>,
) -> Option<BuildUsage> {
    let ((peak_memory_mib, cpu_s), cpus) = peak_memory_mib.zip(cpu_s).zip(cpus)?;
    Some(BuildUsage {
        peak_memory_mib,
        cpu_s,
        cpus,
    })
}

pub(crate) fn parse_status(v: &str) -> Option<Status> {
    [
        Status::Planned,
        Status::Building,
        Status::Built,
        Status::Failed,
    ]
    .into_iter()
    .find(|st| st.to_string() == v)
}

/// The module of a module item's sort key.
pub(crate) fn module_of(sk: &str) -> Result<&str, ItemError> {
    module_from_sk(sk)
        .ok_or_else(|| bad(attr::SK, format!("{sk:?} is not MODULE#<Name>/<version>")))
}

/// Attributes written together: the required ones all or none, the
/// optional ones only with them.
const GROUPS: [(&[&str], &[&str]); 4] = [
    (
        &[attr::TARBALL_KEY, attr::TARBALL_SIZE, attr::TARBALL_SHA256],
        &[],
    ),
    (
        &[attr::ERROR_CLASS, attr::ERROR_MESSAGE],
        &[attr::ERROR_LOG_KEY],
    ),
    (&[attr::LEASE_OWNER, attr::LEASE_EXPIRES], &[]),
    (&[attr::PEAK_MEMORY_MIB, attr::CPU_S, attr::CPUS], &[]),
];

/// The record of an item [`to_item`] wrote.
pub fn from_item(item: &Item) -> Result<ModuleRecord, ItemError> {
    for (required, optional) in GROUPS {
        let set = required
            .iter()
            .chain(optional)
            .find(|a| item.contains_key(**a));
        if let (Some(set), Some(missing)) = (set, required.iter().find(|a| !item.contains_key(**a)))
        {
            return Err(bad(missing, format!("missing while {set} is set")));
        }
    }
    let f: Flat = read(item)?;
    let platform = platform_from_pk(&f.pk)
        .ok_or_else(|| bad(attr::PK, format!("{:?} is not PLATFORM#<platform>", f.pk)))?;
    let status = parse_status(&f.status)
        .ok_or_else(|| bad(attr::STATUS, format!("{:?} is not a status", f.status)))?;
    // The groups are whole: each is Some in every field or in none.
    let last_error = match f.error_class.zip(f.error_message) {
        Some((class, message)) => Some(RecordedError {
            class: class
                .parse()
                .map_err(|e: String| bad(attr::ERROR_CLASS, e))?,
            message,
            log_key: f.error_log_key,
        }),
        None => None,
    };
    Ok(ModuleRecord {
        platform: platform.to_string(),
        module: module_of(&f.sk)?.to_string(),
        status,
        easyconfig_sha256: f.easyconfig_sha256,
        tarball: (f.tarball_key.zip(f.tarball_size).zip(f.tarball_sha256)).map(
            |((key, size), sha256)| Tarball {
                key,
                size,
                sha256,
                version_id: f.tarball_version_id,
                signature: f.tarball_signature,
            },
        ),
        module_file_key: f.module_file_key,
        eb_version: f.eb_version,
        instance_type: f.instance_type,
        archspec: f.archspec,
        duration_s: f.duration_s,
        usage: usage(f.peak_memory_mib, f.cpu_s, f.cpus),
        attempts: f.attempts,
        last_error,
        execution: f.execution,
        batch: f.batch,
        created: f.created,
        updated: f.updated,
        lease: (f.lease_owner.zip(f.lease_expires))
            .map(|(owner, expires)| Lease { owner, expires }),
        version: f.version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ebfleet_core::record::ErrorClass;

    fn s(v: impl Into<String>) -> AttributeValue {
        AttributeValue::S(v.into())
    }

    fn n(v: impl ToString) -> AttributeValue {
        AttributeValue::N(v.to_string())
    }

    const P: &str = "amzn-2023_graviton-3";
    const M: &str = "zlib/1.3.1-GCCcore-13.3.0";

    fn built() -> ModuleRecord {
        ModuleRecord {
            status: Status::Built,
            tarball: Some(Tarball {
                key: format!("{P}/software/{M}.tar.zst"),
                size: 123_456,
                sha256: "b".repeat(64),
                version_id: Some("v1".into()),
                signature: Some("c2lnbmF0dXJl".into()),
            }),
            module_file_key: Some(format!("{P}/modules/all/{M}.lua")),
            eb_version: Some("5.4.1".into()),
            instance_type: Some("c7g.4xlarge".into()),
            archspec: Some("neoverse_v1".into()),
            duration_s: Some(42),
            attempts: 2,
            execution: Some("arn:aws:states:eu-west-1:123456789012:execution:ebfleet:run-1".into()),
            batch: Some(3),
            updated: 1_100,
            version: 7,
            ..ModuleRecord::new(P, M, &"a".repeat(64), 1_000)
        }
    }

    fn failed() -> ModuleRecord {
        ModuleRecord {
            status: Status::Failed,
            attempts: 1,
            last_error: Some(RecordedError {
                class: ErrorClass::CompileError,
                message: "make: *** [all] Error 2\n\"quoted\" ünïcode".into(),
                log_key: Some(format!("{P}/logs/{M}/eb.log")),
            }),
            execution: Some("run-2".into()),
            batch: Some(0),
            version: 1,
            ..ModuleRecord::new(P, M, &"c".repeat(64), 2_000)
        }
    }

    fn leased() -> ModuleRecord {
        ModuleRecord {
            status: Status::Building,
            lease: Some(Lease {
                owner: ebfleet_core::record::lease_owner("run-3", 1),
                expires: u64::MAX,
            }),
            version: 2,
            ..ModuleRecord::new(P, "zlib/.1.3", &"d".repeat(64), 3_000)
        }
    }

    #[test]
    fn records_round_trip() {
        let mut failed_no_log = failed();
        failed_no_log.last_error.as_mut().unwrap().log_key = None;
        for r in [
            built(),
            failed(),
            failed_no_log,
            leased(),
            ModuleRecord::new(P, M, "", 0),
        ] {
            let item = to_item(&r);
            assert_eq!(from_item(&item).unwrap(), r, "{item:?}");
        }
    }

    #[test]
    fn what_a_build_used_is_three_attributes_written_together() {
        let r = ModuleRecord {
            usage: Some(BuildUsage {
                peak_memory_mib: 2048,
                cpu_s: 500,
                cpus: 16,
            }),
            ..built()
        };
        let item = to_item(&r);
        assert_eq!(
            [attr::PEAK_MEMORY_MIB, attr::CPU_S, attr::CPUS].map(|a| item[a].clone()),
            [n(2048), n(500), n(16)]
        );
        assert_eq!(from_item(&item).unwrap(), r);
        let mut half = item.clone();
        half.remove(attr::CPUS);
        let e = from_item(&half).unwrap_err();
        assert_eq!(e.attribute, attr::CPUS, "{e}");
    }

    fn literal(attributes: &[(&str, AttributeValue)]) -> Item {
        attributes
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    /// Items as the hand-written codec before serde_dynamo wrote them, and
    /// tables hold them: they read back, and are written, unchanged.
    #[test]
    fn items_of_the_old_codec_read_back_identically() {
        let run_1 = "arn:aws:states:eu-west-1:123456789012:execution:ebfleet:run-1";
        let item = literal(&[
            ("pk", s(format!("PLATFORM#{P}"))),
            ("sk", s(format!("MODULE#{M}"))),
            ("status", s("built")),
            ("easyconfig_sha256", s("a".repeat(64))),
            ("tarball_key", s(format!("{P}/software/{M}.tar.zst"))),
            ("tarball_size", n("123456")),
            ("tarball_sha256", s("b".repeat(64))),
            ("module_file_key", s(format!("{P}/modules/all/{M}.lua"))),
            ("eb_version", s("5.4.1")),
            ("instance_type", s("c7g.4xlarge")),
            ("archspec", s("neoverse_v1")),
            ("duration_s", n("42")),
            ("attempts", n("2")),
            ("error_class", s("compile_error")),
            (
                "error_message",
                s("make: *** [all] Error 2\n\"quoted\" ünïcode"),
            ),
            ("error_log_key", s(format!("{P}/logs/{M}/eb.log"))),
            ("execution", s(run_1)),
            ("batch", n("3")),
            ("created", n("1000")),
            ("updated", n("1100")),
            ("lease_owner", s("run-3#batch-1")),
            ("lease_expires", n("18446744073709551615")),
            ("version", n("7")),
        ]);
        // Items from before Record promoted tarballs name no version and
        // no signature.
        let full = ModuleRecord {
            last_error: failed().last_error,
            lease: leased().lease,
            tarball: built().tarball.map(|t| Tarball {
                version_id: None,
                signature: None,
                ..t
            }),
            ..built()
        };
        assert_eq!(from_item(&item).unwrap(), full);
        assert_eq!(to_item(&full), item);
        let bare = literal(&[
            ("pk", s(format!("PLATFORM#{P}"))),
            ("sk", s(format!("MODULE#{M}"))),
            ("status", s("planned")),
            ("easyconfig_sha256", s("")),
            ("attempts", n("0")),
            ("created", n("0")),
            ("updated", n("0")),
            ("version", n("0")),
        ]);
        let new = ModuleRecord::new(P, M, "", 0);
        assert_eq!(from_item(&bare).unwrap(), new);
        assert_eq!(to_item(&new), bare);
    }

    #[test]
    fn items_have_the_designed_shape() {
        let item = to_item(&built());
        assert_eq!(item[attr::PK], s(format!("PLATFORM#{P}")));
        assert_eq!(item[attr::SK], s(format!("MODULE#{M}")));
        assert_eq!(item[attr::STATUS], s("built"));
        assert_eq!(item[attr::TARBALL_SIZE], n(123_456));
        assert_eq!(item[attr::VERSION], n(7));
        assert!(!item.contains_key(attr::LEASE_OWNER));
        assert!(!item.contains_key(attr::ERROR_CLASS));
        assert!(!item.contains_key("platform") && !item.contains_key("module"));
        let item = to_item(&leased());
        assert_eq!(item[attr::LEASE_EXPIRES], n(u64::MAX));
        assert_eq!(item[attr::STATUS], s("building"));
        assert_eq!(to_item(&failed())[attr::ERROR_CLASS], s("compile_error"));
    }

    fn error_of(edit: impl FnOnce(&mut Item)) -> ItemError {
        let mut item = to_item(&built());
        edit(&mut item);
        from_item(&item).unwrap_err()
    }

    #[test]
    fn garbled_items_name_the_attribute() {
        type Edit = Box<dyn FnOnce(&mut Item)>;
        let cases: Vec<(Edit, &str, &str)> = vec![
            (
                Box::new(|i| {
                    i.remove(attr::VERSION);
                }),
                "version",
                "missing",
            ),
            (
                Box::new(|i| {
                    i.remove(attr::PK);
                }),
                "pk",
                "missing",
            ),
            (
                Box::new(|i| {
                    i.insert(attr::PK.into(), s("RUN#x"));
                }),
                "pk",
                "PLATFORM#",
            ),
            (
                Box::new(|i| {
                    i.insert(attr::SK.into(), s("MODULE#"));
                }),
                "sk",
                "MODULE#",
            ),
            (
                Box::new(|i| {
                    i.insert(attr::STATUS.into(), s("done"));
                }),
                "status",
                "\"done\"",
            ),
            (
                Box::new(|i| {
                    i.insert(attr::ATTEMPTS.into(), n("-1"));
                }),
                "attempts",
                "\"-1\"",
            ),
            (
                Box::new(|i| {
                    i.insert(attr::CREATED.into(), s("1000"));
                }),
                "created",
                "expected a number",
            ),
            (
                Box::new(|i| {
                    i.insert(attr::EB_VERSION.into(), n(5));
                }),
                "eb_version",
                "expected a string",
            ),
            (
                Box::new(|i| {
                    i.insert(attr::BATCH.into(), n(5_000_000_000u64));
                }),
                "batch",
                "\"5000000000\" is not a u32",
            ),
            (
                Box::new(|i| {
                    i.insert(attr::ARCHSPEC.into(), AttributeValue::Null(true));
                }),
                "archspec",
                "NULL",
            ),
            (
                Box::new(|i| {
                    i.remove(attr::TARBALL_SIZE);
                }),
                "tarball_size",
                "missing while tarball_key",
            ),
            (
                Box::new(|i| {
                    i.remove(attr::TARBALL_KEY);
                }),
                "tarball_key",
                "missing while tarball_size",
            ),
            (
                Box::new(|i| {
                    i.insert(attr::LEASE_EXPIRES.into(), n(5));
                }),
                "lease_owner",
                "missing",
            ),
            (
                Box::new(|i| {
                    i.insert(attr::ERROR_CLASS.into(), s("oom"));
                    i.insert(attr::ERROR_MESSAGE.into(), s("x"));
                }),
                "error_class",
                "unknown error class \"oom\"",
            ),
            (
                Box::new(|i| {
                    i.insert(attr::ERROR_LOG_KEY.into(), s("k"));
                }),
                "error_class",
                "missing while error_log_key",
            ),
        ];
        for (edit, attribute, problem) in cases {
            let err = error_of(edit);
            assert_eq!(err.attribute, attribute, "{err}");
            assert!(err.to_string().contains(problem), "{err}");
            assert!(
                err.to_string()
                    .starts_with(&format!("attribute {attribute}: ")),
                "{err}"
            );
        }
    }
}
