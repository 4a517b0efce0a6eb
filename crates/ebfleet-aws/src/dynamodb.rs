//! The table: per platform and module a [`ModuleRecord`] written under the
//! domain's [`WriteCondition`], what a platform has built for the planner,
//! and the run summaries.
//!
//! `ebfleet_core::record` decides what to write and under which condition;
//! this module only translates: `NotExists` is `attribute_not_exists(pk)`,
//! `Unchanged { version }` is `#v = :v` on the `version` attribute, and
//! DynamoDB's `ConditionalCheckFailedException` comes back as
//! [`DynamoError::ConditionFailed`], upon which the caller reads again and
//! asks the domain again.

mod item;
mod pending;
mod summary;

pub use item::{attr, from_item, to_item, Item, ItemError};
pub use pending::TTL;
pub use summary::summary_item;

use crate::call::{call_error, CallError};
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use ebfleet_core::built::{Built, Recorded};
use ebfleet_core::failure_memory::PastFailure;
use ebfleet_core::layout::platform_from_pk;
use ebfleet_core::names::{ExecutionName, KeyError, ModuleName, PlatformName};
use ebfleet_core::record::{ErrorClass, ModuleRecord, Status, WriteCondition};
use ebfleet_core::sizing::BuildProfile;

/// DynamoDB's item size limit, 400 KB.
pub const MAX_ITEM_BYTES: usize = 400 * 1024;

/// What went wrong with an item. Every variant names the table and the
/// item's keys (`sk` is `MODULE#*` for a query over a platform).
#[derive(Debug, thiserror::Error)]
pub enum DynamoError {
    /// The write's condition did not hold: someone wrote the item since it
    /// was read. Read it again and decide again.
    #[error(
        "{table} {pk} {sk}: condition {condition:?} failed, the item changed since it was read"
    )]
    ConditionFailed {
        table: String,
        pk: String,
        sk: String,
        condition: WriteCondition,
    },
    /// A call that failed: throttling, a timeout, a lost connection or a
    /// 5xx still failing after the SDK's own retries (`call.transient`), or
    /// an answer that will not change by asking again (no such table,
    /// access denied, a validation error). Its resource is
    /// `{table} {pk} {sk}`. Boxed, so the error stays as small as the
    /// others (`clippy::result_large_err` in every caller).
    #[error("{call}")]
    Call { table: String, call: Box<CallError> },
    /// The stored item is not a record this code reads.
    #[error("{table} {pk} {sk}: not a module record: {source}")]
    BadItem {
        table: String,
        pk: String,
        sk: String,
        #[source]
        source: ItemError,
    },
    /// A record whose platform or module is not a valid name: never written.
    #[error("{table}: refusing to write record {platform}/{module}: {source}")]
    InvalidName {
        table: String,
        platform: String,
        module: String,
        #[source]
        source: Box<KeyError>,
    },
    #[error(
        "{table} {pk} {sk}: item of {bytes} bytes is over DynamoDB's limit of {MAX_ITEM_BYTES}"
    )]
    TooLarge {
        table: String,
        pk: String,
        sk: String,
        bytes: usize,
    },
    #[error("{table} {pk} {sk}: {source}")]
    Json {
        table: String,
        pk: String,
        sk: String,
        #[source]
        source: serde_json::Error,
    },
}

impl DynamoError {
    /// Whether asking again later may succeed. A failed condition is not
    /// retryable as such: the caller must read and decide again first.
    pub fn is_retryable(&self) -> bool {
        matches!(self, DynamoError::Call { call, .. } if call.transient)
    }

    pub fn table(&self) -> &str {
        match self {
            DynamoError::ConditionFailed { table, .. }
            | DynamoError::Call { table, .. }
            | DynamoError::BadItem { table, .. }
            | DynamoError::InvalidName { table, .. }
            | DynamoError::TooLarge { table, .. }
            | DynamoError::Json { table, .. } => table,
        }
    }
}

/// `ConditionExpression` of a write condition, with its attribute names and
/// values.
pub(crate) struct Condition {
    pub(crate) expression: &'static str,
    pub(crate) names: Vec<(&'static str, &'static str)>,
    pub(crate) values: Vec<(&'static str, AttributeValue)>,
}

impl From<&WriteCondition> for Condition {
    fn from(c: &WriteCondition) -> Self {
        match c {
            WriteCondition::NotExists => Condition {
                expression: "attribute_not_exists(pk)",
                names: vec![],
                values: vec![],
            },
            WriteCondition::Unchanged { version } => Condition {
                expression: "#v = :v",
                names: vec![("#v", attr::VERSION)],
                values: vec![(":v", AttributeValue::N(version.to_string()))],
            },
        }
    }
}

/// The service as [`CallError`]s name it.
const SERVICE: &str = "DynamoDB";

/// The sort key shown in errors of a query over a platform's modules.
const ALL_MODULES: &str = "MODULE#*";

/// The module items' table.
#[derive(Debug, Clone)]
pub struct Records {
    client: Client,
    table: String,
}

impl Records {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Records {
            client,
            table: table.into(),
        }
    }

    /// Records from the shared SDK configuration ([`crate::load_config`]).
    pub fn from_conf(config: &aws_config::SdkConfig, table: impl Into<String>) -> Self {
        Records::new(Client::new(config), table)
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// The SDK error of `op` on the item `pk`/`sk` as a
    /// [`DynamoError::Call`].
    fn error<E>(
        &self,
        op: &'static str,
        pk: &str,
        sk: &str,
        err: SdkError<E, HttpResponse>,
    ) -> DynamoError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let call = call_error(SERVICE, op, self.item(pk, sk), err, &[]);
        self.call(call)
    }

    fn call(&self, call: CallError) -> DynamoError {
        DynamoError::Call {
            table: self.table.clone(),
            call: Box::new(call),
        }
    }

    /// `table pk sk`, as errors name an item.
    fn item(&self, pk: &str, sk: &str) -> String {
        format!("{} {pk} {sk}", self.table)
    }

    fn bad_item(&self, pk: &str, sk: &str, source: ItemError) -> DynamoError {
        DynamoError::BadItem {
            table: self.table.clone(),
            pk: pk.to_string(),
            sk: sk.to_string(),
            source,
        }
    }

    /// The module's record, read consistently (leases are decided on it).
    pub async fn get(
        &self,
        platform: &PlatformName,
        module: &ModuleName,
    ) -> Result<Option<ModuleRecord>, DynamoError> {
        let (pk, sk) = (
            ebfleet_core::layout::platform_pk(platform.as_str()),
            ebfleet_core::layout::module_sk(module.as_str()),
        );
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(attr::PK, AttributeValue::S(pk.clone()))
            .key(attr::SK, AttributeValue::S(sk.clone()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.error("GetItem", &pk, &sk, e))?;
        out.item()
            .map(|i| from_item(i).map_err(|e| self.bad_item(&pk, &sk, e)))
            .transpose()
    }

    /// A query of the `MODULE#` items of partition `pk` (`#pk`, `#sk`
    /// named).
    fn module_items(
        &self,
        pk: &str,
    ) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder {
        self.client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#pk = :pk AND begins_with(#sk, :module)")
            .expression_attribute_names("#pk", attr::PK)
            .expression_attribute_names("#sk", attr::SK)
            .expression_attribute_values(":pk", AttributeValue::S(pk.to_string()))
            .expression_attribute_values(
                ":module",
                AttributeValue::S(ebfleet_core::layout::module_sk("")),
            )
    }

    /// What `platform` has built: each built module and the easyconfig
    /// checksum it was built from, all pages of a query on the platform's
    /// `MODULE#` items filtered to status `built`.
    pub async fn built(&self, platform: &PlatformName) -> Result<Built, DynamoError> {
        Ok(self.recorded(platform).await?.built)
    }

    /// What the planner reads of `platform`'s records: what is built and
    /// from which easyconfig, and the duration of every recorded build;
    /// all pages of one query on the platform's `MODULE#` items, only the
    /// attributes it needs.
    pub async fn recorded(&self, platform: &PlatformName) -> Result<Recorded, DynamoError> {
        let pk = ebfleet_core::layout::platform_pk(platform.as_str());
        let mut pages = self
            .module_items(&pk)
            .projection_expression(
                "#sk, #ec, #status, #duration, #peak, #cpu_s, #cpus, #class, #updated, #eb, #tarball",
            )
            .expression_attribute_names("#status", attr::STATUS)
            .expression_attribute_names("#ec", attr::EASYCONFIG_SHA256)
            .expression_attribute_names("#duration", attr::DURATION_S)
            .expression_attribute_names("#peak", attr::PEAK_MEMORY_MIB)
            .expression_attribute_names("#cpu_s", attr::CPU_S)
            .expression_attribute_names("#cpus", attr::CPUS)
            .expression_attribute_names("#class", attr::ERROR_CLASS)
            .expression_attribute_names("#updated", attr::UPDATED)
            .expression_attribute_names("#eb", attr::EB_VERSION)
            .expression_attribute_names("#tarball", attr::TARBALL_SHA256)
            .into_paginator()
            .send();
        let mut out = Recorded::default();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.error("Query", &pk, ALL_MODULES, e))?;
            let bad = |e| self.bad_item(&pk, ALL_MODULES, e);
            for i in page.items() {
                let e: RecordedEntry = item::read(i).map_err(bad)?;
                let module = item::module_of(&e.sk).map_err(bad)?.to_string();
                if let Some(d) = e.duration_s {
                    out.durations.insert(module.clone(), d);
                    if let Some(usage) = item::usage(e.peak_memory_mib, e.cpu_s, e.cpus) {
                        let profile = BuildProfile {
                            duration_s: d,
                            usage,
                        };
                        out.profiles.insert(module.clone(), profile);
                    }
                }
                match e.status.as_deref().and_then(item::parse_status) {
                    Some(Status::Built) => {
                        out.built_at.insert(module.clone(), e.updated.unwrap_or(0));
                        if let Some(sha) = e.tarball_sha256 {
                            out.tarballs.insert(module.clone(), sha);
                        }
                        out.built.insert(module, e.easyconfig_sha256);
                    }
                    Some(Status::Failed) => {
                        let class = e.error_class.as_deref().map(str::parse::<ErrorClass>);
                        if let (Some(Ok(class)), Some(sha)) = (class, e.easyconfig_sha256) {
                            out.failed.insert(
                                module,
                                PastFailure {
                                    class,
                                    easyconfig_sha256: sha,
                                    at: e.updated.unwrap_or(0),
                                    eb_version: e.eb_version,
                                },
                            );
                        }
                    }
                    _ => {}
                }
            }
        }
        tracing::debug!(table = %self.table, %pk, built = out.built.len(), "read the records");
        Ok(out)
    }

    /// Every module whose lease an owner starting with `owner_prefix`
    /// holds (`<execution>#`: an execution's leases), as (platform, module):
    /// a scan of the whole table, for the sweeper's rare finds.
    pub async fn leased_by(
        &self,
        owner_prefix: &str,
    ) -> Result<Vec<(PlatformName, ModuleName)>, DynamoError> {
        let scope = format!("{}{owner_prefix}*", attr::LEASE_OWNER);
        let mut pages = self
            .client
            .scan()
            .table_name(&self.table)
            .filter_expression("begins_with(#owner, :prefix)")
            .projection_expression("#pk, #sk")
            .expression_attribute_names("#owner", attr::LEASE_OWNER)
            .expression_attribute_names("#pk", attr::PK)
            .expression_attribute_names("#sk", attr::SK)
            .expression_attribute_values(":prefix", AttributeValue::S(owner_prefix.to_string()))
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.error("Scan", &scope, ALL_MODULES, e))?;
            for i in page.items() {
                let key: Key = item::read(i).map_err(|e| self.bad_item(&scope, ALL_MODULES, e))?;
                let bad = |what: &str| {
                    self.bad_item(
                        &key.pk,
                        &key.sk,
                        ItemError {
                            attribute: what.to_string(),
                            problem: "not a module item's key".into(),
                        },
                    )
                };
                let platform = platform_from_pk(&key.pk)
                    .and_then(|p| p.parse().ok())
                    .ok_or_else(|| bad(attr::PK))?;
                let module = item::module_of(&key.sk)
                    .ok()
                    .and_then(|m| m.parse().ok())
                    .ok_or_else(|| bad(attr::SK))?;
                out.push((platform, module));
            }
        }
        Ok(out)
    }

    /// Every module record of `platform`, whole (for the operator's
    /// views), all pages of one query.
    pub async fn modules(&self, platform: &PlatformName) -> Result<Vec<ModuleRecord>, DynamoError> {
        let pk = ebfleet_core::layout::platform_pk(platform.as_str());
        let mut pages = self.module_items(&pk).into_paginator().send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.error("Query", &pk, ALL_MODULES, e))?;
            for i in page.items() {
                out.push(from_item(i).map_err(|e| self.bad_item(&pk, ALL_MODULES, e))?);
            }
        }
        Ok(out)
    }

    /// Write `record` if `condition` holds.
    pub async fn put(
        &self,
        record: &ModuleRecord,
        condition: &WriteCondition,
    ) -> Result<(), DynamoError> {
        let invalid = |source| DynamoError::InvalidName {
            table: self.table.clone(),
            platform: record.platform.clone(),
            module: record.module.clone(),
            source: Box::new(source),
        };
        record.platform.parse::<PlatformName>().map_err(invalid)?;
        record.module.parse::<ModuleName>().map_err(invalid)?;
        let (pk, sk) = (record.pk(), record.sk());
        let c = Condition::from(condition);
        let mut req = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(record)))
            .condition_expression(c.expression);
        for (k, v) in c.names {
            req = req.expression_attribute_names(k, v);
        }
        for (k, v) in c.values {
            req = req.expression_attribute_values(k, v);
        }
        match req.send().await {
            Ok(_) => {
                tracing::debug!(table = %self.table, %pk, %sk, version = record.version, "put");
                Ok(())
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                tracing::info!(table = %self.table, %pk, %sk, ?condition, "condition failed");
                Err(DynamoError::ConditionFailed {
                    table: self.table.clone(),
                    pk,
                    sk,
                    condition: condition.clone(),
                })
            }
            Err(e) => Err(self.error("PutItem", &pk, &sk, e)),
        }
    }
}

impl Records {
    /// The wake-up item's key of `platform` in `execution`.
    fn wake_key(execution: &ExecutionName, platform: &PlatformName) -> (String, String) {
        (
            ebfleet_core::layout::run_pk(execution.as_str()),
            ebfleet_core::layout::wake_sk(platform.as_str()),
        )
    }

    /// How many units of `platform` in `execution` have ended so far.
    pub async fn wake_count(
        &self,
        execution: &ExecutionName,
        platform: &PlatformName,
    ) -> Result<u64, DynamoError> {
        let (pk, sk) = Self::wake_key(execution, platform);
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(attr::PK, AttributeValue::S(pk.clone()))
            .key(attr::SK, AttributeValue::S(sk.clone()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.error("GetItem", &pk, &sk, e))?;
        match out.item() {
            None => Ok(0),
            Some(i) => Ok(item::read::<Wake>(i)
                .map_err(|e| self.bad_item(&pk, &sk, e))?
                .ended),
        }
    }

    /// Leave `token` for the next unit that ends to wake the scheduler
    /// with; how many units have ended so far.
    pub async fn wake_register(
        &self,
        execution: &ExecutionName,
        platform: &PlatformName,
        token: &str,
    ) -> Result<u64, DynamoError> {
        let (pk, sk) = Self::wake_key(execution, platform);
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(attr::PK, AttributeValue::S(pk.clone()))
            .key(attr::SK, AttributeValue::S(sk.clone()))
            .update_expression("SET #token = :token")
            .expression_attribute_names("#token", attr::WAKE_TOKEN)
            .expression_attribute_values(":token", AttributeValue::S(token.to_string()))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| self.error("UpdateItem", &pk, &sk, e))?;
        Ok(match out.attributes() {
            Some(i) => {
                item::read::<Wake>(i)
                    .map_err(|e| self.bad_item(&pk, &sk, e))?
                    .ended
            }
            None => 0,
        })
    }

    /// A unit ended: count it and take the token the scheduler left, if
    /// any (it is used once: whoever takes it wakes the scheduler).
    pub async fn wake_take(
        &self,
        execution: &ExecutionName,
        platform: &PlatformName,
    ) -> Result<Option<String>, DynamoError> {
        let (pk, sk) = Self::wake_key(execution, platform);
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(attr::PK, AttributeValue::S(pk.clone()))
            .key(attr::SK, AttributeValue::S(sk.clone()))
            .update_expression("ADD #count :one REMOVE #token")
            .expression_attribute_names("#count", attr::WAKE_COUNT)
            .expression_attribute_names("#token", attr::WAKE_TOKEN)
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| self.error("UpdateItem", &pk, &sk, e))?;
        Ok(out
            .attributes()
            .and_then(|i| i.get(attr::WAKE_TOKEN)?.as_s().ok().cloned()))
    }
}

/// A module item as [`Records::recorded`] projects it (fields named after
/// the attributes).
#[derive(serde::Deserialize)]
struct RecordedEntry {
    sk: String,
    status: Option<String>,
    easyconfig_sha256: Option<String>,
    duration_s: Option<u64>,
    peak_memory_mib: Option<u64>,
    cpu_s: Option<u64>,
    cpus: Option<u32>,
    error_class: Option<String>,
    updated: Option<u64>,
    eb_version: Option<String>,
    tarball_sha256: Option<String>,
}

/// An item's key.
#[derive(serde::Deserialize)]
struct Key {
    pk: String,
    sk: String,
}

/// A wake-up item as far as it is read: `ended` is [`attr::WAKE_COUNT`].
#[derive(serde::Deserialize)]
struct Wake {
    #[serde(default)]
    ended: u64,
}

#[cfg(test)]
mod tests;
