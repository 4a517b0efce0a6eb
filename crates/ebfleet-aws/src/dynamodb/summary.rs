//! A run's summary item: `pk = RUN#<execution>`, `sk = SUMMARY`, written
//! when the run ends (again by a retried call: the same item).
//!
//! Attributes: `execution`, `written` (Unix seconds), `nothing_to_do`,
//! `summary_key` (the S3 JSON with everything), the run's `node_seconds`,
//! `instance_hours` and `usd` (absent when unknown), and `platforms`, a map
//! from each platform to its `outcome`, `node_seconds`, `instance_hours`,
//! `usd`, `instances_launched`, unit counts (`built`, `failed`, `skipped`,
//! `waiting`, `running`, `deferred`) and `error` — each absent when the
//! platform did not report it.

use super::{attr, DynamoError, Records};
use aws_sdk_dynamodb::types::AttributeValue;
use ebfleet_core::layout::{run_pk, SUMMARY_SK};
use ebfleet_core::summary::{PlatformOutcome, PlatformSummary, RunSummary};
use std::collections::HashMap;

/// A number attribute; fractions to six decimals (a micro-dollar).
fn n(v: f64) -> AttributeValue {
    AttributeValue::N(format!("{}", (v * 1e6).round() / 1e6))
}

fn int(v: impl Into<u64>) -> AttributeValue {
    AttributeValue::N(v.into().to_string())
}

fn outcome(o: PlatformOutcome) -> &'static str {
    match o {
        PlatformOutcome::Done => "done",
        PlatformOutcome::UpToDate => "up_to_date",
        PlatformOutcome::Failed => "failed",
    }
}

fn platform_item(p: &PlatformSummary) -> AttributeValue {
    let mut m = HashMap::new();
    m.insert(
        "outcome".to_string(),
        AttributeValue::S(outcome(p.outcome).into()),
    );
    if let Some(s) = p.node_seconds {
        m.insert("node_seconds".into(), int(s));
    }
    if let Some(h) = p.instance_hours {
        m.insert("instance_hours".into(), n(h));
    }
    if let Some(d) = p.usd {
        m.insert("usd".into(), n(d));
    }
    if let Some(i) = p.instances_launched {
        m.insert("instances_launched".into(), int(i));
    }
    if let Some(u) = p.units {
        for (k, v) in [
            ("built", u.built),
            ("failed", u.failed),
            ("skipped", u.skipped),
            ("waiting", u.waiting),
            ("running", u.running),
            ("deferred", u.deferred),
        ] {
            m.insert(k.into(), int(v));
        }
    }
    if let Some(e) = &p.error {
        m.insert("error".into(), AttributeValue::S(e.clone()));
    }
    AttributeValue::M(m)
}

/// The item of `summary`, whose S3 JSON is at `summary_key`.
pub fn summary_item(summary: &RunSummary, summary_key: &str) -> HashMap<String, AttributeValue> {
    let mut item = HashMap::new();
    item.insert(
        attr::PK.to_string(),
        AttributeValue::S(run_pk(&summary.execution)),
    );
    item.insert(attr::SK.to_string(), AttributeValue::S(SUMMARY_SK.into()));
    item.insert(
        "execution".into(),
        AttributeValue::S(summary.execution.clone()),
    );
    item.insert("written".into(), int(summary.written));
    item.insert(
        "nothing_to_do".into(),
        AttributeValue::Bool(summary.nothing_to_do),
    );
    item.insert("summary_key".into(), AttributeValue::S(summary_key.into()));
    item.insert("node_seconds".into(), int(summary.node_seconds));
    item.insert("instance_hours".into(), n(summary.instance_hours));
    if let Some(d) = summary.usd {
        item.insert("usd".into(), n(d));
    }
    item.insert(
        "platforms".into(),
        AttributeValue::M(
            summary
                .platforms
                .iter()
                .map(|p| (p.platform.clone(), platform_item(p)))
                .collect(),
        ),
    );
    item
}

impl Records {
    /// Write the run's summary item (replacing one a retried call wrote).
    pub async fn put_run_summary(
        &self,
        summary: &RunSummary,
        summary_key: &str,
    ) -> Result<(), DynamoError> {
        let item = summary_item(summary, summary_key);
        let pk = run_pk(&summary.execution);
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| self.error("PutItem", &pk, SUMMARY_SK, e))?;
        Ok(())
    }
}
