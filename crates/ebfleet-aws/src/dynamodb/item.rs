//! A [`ModuleRecord`] as a DynamoDB item, and back.
//!
//! Written by hand rather than through serde: the attribute names are the
//! table's schema (conditions and queries name them), so they are spelled
//! out here once, flat (`tarball_key`, `lease_expires`, ...) so the console
//! shows them as columns and a condition can name any of them. Numbers are
//! `N`, everything else `S`; an absent optional field is an absent
//! attribute. The platform and module are not stored twice: they are read
//! back from `pk` and `sk`.
//!
//! Reading is strict: a missing required attribute, a wrong type, a number
//! that does not parse or half of a group (a tarball without its size) is
//! an [`ItemError`] naming the attribute, never a default.

use aws_sdk_dynamodb::types::AttributeValue;
use ebfleet_core::record::{ErrorClass, Lease, ModuleRecord, RecordedError, Status, Tarball};
use std::collections::HashMap;
use std::str::FromStr;

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
    pub const MODULE_FILE_KEY: &str = "module_file_key";
    pub const EB_VERSION: &str = "eb_version";
    pub const INSTANCE_TYPE: &str = "instance_type";
    pub const ARCHSPEC: &str = "archspec";
    pub const DURATION_S: &str = "duration_s";
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
    pub attribute: &'static str,
    pub problem: String,
}

fn bad(attribute: &'static str, problem: impl Into<String>) -> ItemError {
    ItemError {
        attribute,
        problem: problem.into(),
    }
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// The item of `r`, keys included.
pub fn to_item(r: &ModuleRecord) -> Item {
    let mut item = Item::new();
    let mut put = |k: &str, v: AttributeValue| {
        item.insert(k.to_string(), v);
    };
    put(attr::PK, s(r.pk()));
    put(attr::SK, s(r.sk()));
    put(attr::STATUS, s(r.status.to_string()));
    put(attr::EASYCONFIG_SHA256, s(&r.easyconfig_sha256));
    if let Some(t) = &r.tarball {
        put(attr::TARBALL_KEY, s(&t.key));
        put(attr::TARBALL_SIZE, n(t.size));
        put(attr::TARBALL_SHA256, s(&t.sha256));
    }
    for (k, v) in [
        (attr::MODULE_FILE_KEY, &r.module_file_key),
        (attr::EB_VERSION, &r.eb_version),
        (attr::INSTANCE_TYPE, &r.instance_type),
        (attr::ARCHSPEC, &r.archspec),
        (attr::EXECUTION, &r.execution),
    ] {
        if let Some(v) = v {
            put(k, s(v));
        }
    }
    if let Some(d) = r.duration_s {
        put(attr::DURATION_S, n(d));
    }
    put(attr::ATTEMPTS, n(r.attempts));
    if let Some(e) = &r.last_error {
        put(attr::ERROR_CLASS, s(e.class.as_str()));
        put(attr::ERROR_MESSAGE, s(&e.message));
        if let Some(k) = &e.log_key {
            put(attr::ERROR_LOG_KEY, s(k));
        }
    }
    if let Some(b) = r.batch {
        put(attr::BATCH, n(b));
    }
    put(attr::CREATED, n(r.created));
    put(attr::UPDATED, n(r.updated));
    if let Some(l) = &r.lease {
        put(attr::LEASE_OWNER, s(&l.owner));
        put(attr::LEASE_EXPIRES, n(l.expires));
    }
    put(attr::VERSION, n(r.version));
    item
}

/// The string attribute `name`, if present.
pub(crate) fn opt_s<'a>(item: &'a Item, name: &'static str) -> Result<Option<&'a str>, ItemError> {
    match item.get(name) {
        None => Ok(None),
        Some(AttributeValue::S(v)) => Ok(Some(v)),
        Some(other) => Err(bad(
            name,
            format!("expected a string (S), found {}", kind(other)),
        )),
    }
}

fn req_s<'a>(item: &'a Item, name: &'static str) -> Result<&'a str, ItemError> {
    opt_s(item, name)?.ok_or_else(|| bad(name, "missing"))
}

/// The number attribute `name`, if present, as `T`.
pub(crate) fn opt_n<T: FromStr>(item: &Item, name: &'static str) -> Result<Option<T>, ItemError> {
    match item.get(name) {
        None => Ok(None),
        Some(AttributeValue::N(v)) => v.parse().map(Some).map_err(|_| {
            bad(
                name,
                format!("{v:?} is not a {}", std::any::type_name::<T>()),
            )
        }),
        Some(other) => Err(bad(
            name,
            format!("expected a number (N), found {}", kind(other)),
        )),
    }
}

fn req_n<T: FromStr>(item: &Item, name: &'static str) -> Result<T, ItemError> {
    opt_n(item, name)?.ok_or_else(|| bad(name, "missing"))
}

fn kind(v: &AttributeValue) -> &'static str {
    match v {
        AttributeValue::S(_) => "a string (S)",
        AttributeValue::N(_) => "a number (N)",
        AttributeValue::B(_) => "binary (B)",
        AttributeValue::Bool(_) => "a boolean (BOOL)",
        AttributeValue::Null(_) => "NULL",
        AttributeValue::M(_) => "a map (M)",
        AttributeValue::L(_) => "a list (L)",
        AttributeValue::Ss(_) | AttributeValue::Ns(_) | AttributeValue::Bs(_) => "a set",
        _ => "an unknown type",
    }
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

/// Either all of a group's attributes or none; `first` is the one that
/// decides, `rest` must follow it.
fn group_complete(
    item: &Item,
    first: &'static str,
    rest: &[&'static str],
) -> Result<bool, ItemError> {
    let present = item.contains_key(first);
    for &other in rest {
        match (present, item.contains_key(other)) {
            (true, false) => return Err(bad(other, format!("missing while {first} is set"))),
            (false, true) => return Err(bad(first, format!("missing while {other} is set"))),
            _ => {}
        }
    }
    Ok(present)
}

/// The record of an item [`to_item`] wrote.
pub fn from_item(item: &Item) -> Result<ModuleRecord, ItemError> {
    let pk = req_s(item, attr::PK)?;
    let platform = ebfleet_core::layout::platform_from_pk(pk)
        .ok_or_else(|| bad(attr::PK, format!("{pk:?} is not PLATFORM#<platform>")))?;
    let sk = req_s(item, attr::SK)?;
    let module = ebfleet_core::layout::module_from_sk(sk)
        .ok_or_else(|| bad(attr::SK, format!("{sk:?} is not MODULE#<Name>/<version>")))?;
    let status_text = req_s(item, attr::STATUS)?;
    let status = parse_status(status_text)
        .ok_or_else(|| bad(attr::STATUS, format!("{status_text:?} is not a status")))?;
    let tarball = if group_complete(
        item,
        attr::TARBALL_KEY,
        &[attr::TARBALL_SIZE, attr::TARBALL_SHA256],
    )? {
        Some(Tarball {
            key: req_s(item, attr::TARBALL_KEY)?.to_string(),
            size: req_n(item, attr::TARBALL_SIZE)?,
            sha256: req_s(item, attr::TARBALL_SHA256)?.to_string(),
        })
    } else {
        None
    };
    let last_error = if group_complete(item, attr::ERROR_CLASS, &[attr::ERROR_MESSAGE])? {
        let class_text = req_s(item, attr::ERROR_CLASS)?;
        Some(RecordedError {
            class: ErrorClass::from_str(class_text).map_err(|e| bad(attr::ERROR_CLASS, e))?,
            message: req_s(item, attr::ERROR_MESSAGE)?.to_string(),
            log_key: opt_s(item, attr::ERROR_LOG_KEY)?.map(str::to_string),
        })
    } else {
        if item.contains_key(attr::ERROR_LOG_KEY) {
            return Err(bad(attr::ERROR_CLASS, "missing while error_log_key is set"));
        }
        None
    };
    let lease = if group_complete(item, attr::LEASE_OWNER, &[attr::LEASE_EXPIRES])? {
        Some(Lease {
            owner: req_s(item, attr::LEASE_OWNER)?.to_string(),
            expires: req_n(item, attr::LEASE_EXPIRES)?,
        })
    } else {
        None
    };
    let text = |name| opt_s(item, name).map(|v| v.map(str::to_string));
    Ok(ModuleRecord {
        platform: platform.to_string(),
        module: module.to_string(),
        status,
        easyconfig_sha256: req_s(item, attr::EASYCONFIG_SHA256)?.to_string(),
        tarball,
        module_file_key: text(attr::MODULE_FILE_KEY)?,
        eb_version: text(attr::EB_VERSION)?,
        instance_type: text(attr::INSTANCE_TYPE)?,
        archspec: text(attr::ARCHSPEC)?,
        duration_s: opt_n(item, attr::DURATION_S)?,
        attempts: req_n(item, attr::ATTEMPTS)?,
        last_error,
        execution: text(attr::EXECUTION)?,
        batch: opt_n(item, attr::BATCH)?,
        created: req_n(item, attr::CREATED)?,
        updated: req_n(item, attr::UPDATED)?,
        lease,
        version: req_n(item, attr::VERSION)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = "amzn-2023_graviton-3";
    const M: &str = "zlib/1.3.1-GCCcore-13.3.0";

    fn built() -> ModuleRecord {
        ModuleRecord {
            status: Status::Built,
            tarball: Some(Tarball {
                key: format!("{P}/software/{M}.tar.zst"),
                size: 123_456,
                sha256: "b".repeat(64),
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
