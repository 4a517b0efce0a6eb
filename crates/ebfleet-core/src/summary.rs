//! A run's summary, as stored when the run ends (the `RUN#<execution>` /
//! `SUMMARY` item and `plans/<execution>/summary.json`): per platform what
//! became of its units, its node time and what its nodes cost
//! ([`PlatformCost`]), and the run's totals.
//!
//! It is made from what the run's state machine ends with
//! ([`RunOutput`]: `{execution, plan_key, nothing_to_do, platforms}`, each
//! platform as its platform execution reported it, or as the run saw it
//! fail or be up to date). What a platform did not report is left out,
//! never made up.

use crate::cost::{hours, PlatformCost};
use serde::{Deserialize, Serialize};

/// Units per state, as the platform's scheduler counted them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitCounts {
    #[serde(default)]
    pub waiting: u32,
    #[serde(default)]
    pub running: u32,
    #[serde(default)]
    pub built: u32,
    #[serde(default)]
    pub failed: u32,
    #[serde(default)]
    pub skipped: u32,
    #[serde(default)]
    pub deferred: u32,
}

/// One platform as the run's output holds it (every field optional: a
/// failed or up-to-date platform reports little).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct ReportedPlatform {
    pub platform: String,
    #[serde(default)]
    pub up_to_date: bool,
    #[serde(default)]
    pub failed: bool,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub cause: Option<String>,
    #[serde(default)]
    pub units: Option<UnitCounts>,
    #[serde(default)]
    pub nodes_max: Option<u32>,
    #[serde(default)]
    pub instances_launched: Option<u32>,
    #[serde(default)]
    pub node_seconds: Option<u64>,
    #[serde(default)]
    pub cost: Option<PlatformCost>,
    /// The CUDA overlays over it, built after it in the same iteration.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overlays: Vec<ReportedPlatform>,
}

/// What the run's state machine ends with (its `Summarise` state).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct RunOutput {
    pub execution: String,
    #[serde(default)]
    pub plan_key: Option<String>,
    #[serde(default)]
    pub nothing_to_do: bool,
    /// Each with its overlays.
    #[serde(default)]
    pub platforms: Vec<ReportedPlatform>,
}

/// What became of a platform in the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlatformOutcome {
    /// Its scheduler ran to the end (modules may still have failed).
    Done,
    /// Nothing to build.
    UpToDate,
    /// The platform failed (released; see `error`, `cause`).
    Failed,
}

/// One platform of a stored summary.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct PlatformSummary {
    pub platform: String,
    pub outcome: PlatformOutcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub units: Option<UnitCounts>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instances_launched: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes_max: Option<u32>,
    /// Node time (`None`: not reported, e.g. a failed platform).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_hours: Option<f64>,
    /// Actual dollars; `None` when a price was unknown or nothing was
    /// reported.
    #[serde(default)]
    pub usd: Option<f64>,
    /// Per instance type and market, when the platform reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<PlatformCost>,
}

/// A run's stored summary.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct RunSummary {
    pub execution: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_key: Option<String>,
    pub nothing_to_do: bool,
    /// Unix seconds.
    pub written: u64,
    /// Node time over the platforms that reported it.
    pub node_seconds: u64,
    pub instance_hours: f64,
    /// Dollars over the platforms; `None` when some platform's are unknown.
    #[serde(default)]
    pub usd: Option<f64>,
    pub platforms: Vec<PlatformSummary>,
}

impl PlatformSummary {
    pub fn from_reported(p: ReportedPlatform) -> Self {
        let outcome = if p.failed {
            PlatformOutcome::Failed
        } else if p.up_to_date {
            PlatformOutcome::UpToDate
        } else {
            PlatformOutcome::Done
        };
        // The cost's node time is the scheduler's, as `node_seconds` is.
        let node_seconds = p.node_seconds.or(p.cost.as_ref().map(|c| c.node_seconds));
        let usd = match (&p.cost, outcome) {
            (Some(c), _) => c.usd,
            // Nothing built, nothing started: nothing spent.
            (None, PlatformOutcome::UpToDate) => Some(0.0),
            (None, _) => None,
        };
        PlatformSummary {
            platform: p.platform,
            outcome,
            error: p.error,
            cause: p.cause,
            units: p.units,
            instances_launched: p.instances_launched,
            nodes_max: p.nodes_max,
            node_seconds: if outcome == PlatformOutcome::UpToDate {
                Some(node_seconds.unwrap_or(0))
            } else {
                node_seconds
            },
            instance_hours: if outcome == PlatformOutcome::UpToDate {
                Some(hours(node_seconds.unwrap_or(0)))
            } else {
                node_seconds.map(hours)
            },
            usd,
            cost: p.cost,
        }
    }
}

impl RunSummary {
    /// The summary of a run that ended with `out`, written at `now`.
    pub fn from_output(out: RunOutput, now: u64) -> Self {
        let platforms: Vec<PlatformSummary> = out
            .platforms
            .into_iter()
            .flat_map(|mut p| {
                let overlays = std::mem::take(&mut p.overlays);
                std::iter::once(p).chain(overlays)
            })
            .map(PlatformSummary::from_reported)
            .collect();
        let node_seconds = platforms.iter().filter_map(|p| p.node_seconds).sum();
        let usd = platforms
            .iter()
            .try_fold(0.0, |sum, p| p.usd.map(|d| sum + d));
        RunSummary {
            execution: out.execution,
            plan_key: out.plan_key,
            nothing_to_do: out.nothing_to_do,
            written: now,
            node_seconds,
            instance_hours: hours(node_seconds),
            usd,
            platforms,
        }
    }

    pub fn platform(&self, name: &str) -> Option<&PlatformSummary> {
        self.platforms.iter().find(|p| p.platform == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cost::{price, Market, Prices, Usage};
    use serde_json::json;

    fn cost(usd_per_hour: Option<f64>) -> PlatformCost {
        let prices = Prices {
            spot: usd_per_hour
                .map(|p| [("c7g.8xlarge".to_string(), p)].into())
                .unwrap_or_default(),
            ..Prices::default()
        };
        price(
            &[Usage {
                instance_type: Some("c7g.8xlarge".into()),
                market: Market::Spot,
                node_seconds: 7200,
            }],
            &prices,
        )
    }

    #[test]
    fn a_runs_output_becomes_its_summary() {
        let out = json!({
            "execution": "run-1",
            "plan_key": "plans/run-1/plan.json",
            "nothing_to_do": false,
            "platforms": [
                {"platform": "amzn-2023_graviton-3",
                 "units": {"waiting": 0, "running": 0, "built": 5, "failed": 1, "skipped": 2, "deferred": 0},
                 "nodes_max": 2, "instances_launched": 3, "node_seconds": 7200,
                 "released": {"terminated": []},
                 "cost": cost(Some(0.5))},
                {"platform": "amzn-2023_epyc-gen-4", "up_to_date": true},
                {"platform": "amzn-2023_xeon-gen-4", "failed": true,
                 "error": "States.HeartbeatTimeout", "cause": "gone"}
            ]
        });
        let out: RunOutput = serde_json::from_value(out).unwrap();
        let s = RunSummary::from_output(out, 1_000);
        assert_eq!(s.execution, "run-1");
        assert_eq!(s.written, 1_000);
        let g = s.platform("amzn-2023_graviton-3").unwrap();
        assert_eq!(g.outcome, PlatformOutcome::Done);
        assert_eq!(g.units.unwrap().built, 5);
        assert_eq!(g.instance_hours, Some(2.0));
        assert_eq!(g.usd, Some(1.0));
        let e = s.platform("amzn-2023_epyc-gen-4").unwrap();
        assert_eq!(
            (e.outcome, e.usd, e.node_seconds),
            (PlatformOutcome::UpToDate, Some(0.0), Some(0))
        );
        let x = s.platform("amzn-2023_xeon-gen-4").unwrap();
        assert_eq!(x.outcome, PlatformOutcome::Failed);
        assert_eq!(x.error.as_deref(), Some("States.HeartbeatTimeout"));
        assert_eq!((x.node_seconds, x.usd), (None, None));
        // A failed platform's dollars are unknown: so are the run's.
        assert_eq!(s.usd, None);
        assert_eq!(s.node_seconds, 7200);
        assert_eq!(s.instance_hours, 2.0);
    }

    #[test]
    fn the_runs_dollars_are_the_platforms_when_all_are_known() {
        let out = RunOutput {
            execution: "run-2".into(),
            platforms: vec![
                ReportedPlatform {
                    platform: "a".into(),
                    node_seconds: Some(7200),
                    cost: Some(cost(Some(0.5))),
                    ..Default::default()
                },
                ReportedPlatform {
                    platform: "b".into(),
                    node_seconds: Some(7200),
                    cost: Some(cost(Some(0.25))),
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let s = RunSummary::from_output(out, 0);
        assert_eq!(s.usd, Some(1.5));
        assert_eq!(s.node_seconds, 14_400);
    }

    #[test]
    fn a_platforms_overlays_are_summarised_after_it() {
        // As the pipeline's Map ends: each base with its overlays' results.
        let out: RunOutput = serde_json::from_value(serde_json::json!({
            "execution": "run-4",
            "platforms": [
                {"platform": "b", "node_seconds": 3600,
                 "overlays": [{"platform": "b_h100", "node_seconds": 1800},
                              {"platform": "b_l4", "failed": true, "error": "x"}]},
                {"platform": "c", "up_to_date": true, "overlays": []}
            ]
        }))
        .unwrap();
        let s = RunSummary::from_output(out, 0);
        let names: Vec<&str> = s.platforms.iter().map(|p| p.platform.as_str()).collect();
        assert_eq!(names, ["b", "b_h100", "b_l4", "c"]);
        assert_eq!(s.node_seconds, 5400);
        assert_eq!(s.platform("b_l4").unwrap().outcome, PlatformOutcome::Failed);
    }

    #[test]
    fn an_unknown_price_is_an_unknown_platform_and_run_not_zero() {
        let out = RunOutput {
            execution: "run-3".into(),
            platforms: vec![ReportedPlatform {
                platform: "a".into(),
                node_seconds: Some(7200),
                cost: Some(cost(None)),
                ..Default::default()
            }],
            ..Default::default()
        };
        let s = RunSummary::from_output(out, 0);
        assert_eq!(s.platforms[0].usd, None);
        assert_eq!(s.platforms[0].instance_hours, Some(2.0));
        assert_eq!(s.usd, None);
        let j = serde_json::to_value(&s).unwrap();
        assert!(
            j["usd"].is_null() && j["platforms"][0]["usd"].is_null(),
            "{j}"
        );
    }

    #[test]
    fn a_platform_without_cost_keeps_its_node_time_and_no_dollars() {
        // A platform execution of before the cost was reported.
        let p = PlatformSummary::from_reported(ReportedPlatform {
            platform: "a".into(),
            node_seconds: Some(1800),
            ..Default::default()
        });
        assert_eq!((p.instance_hours, p.usd), (Some(0.5), None));
        let back: PlatformSummary =
            serde_json::from_value(serde_json::to_value(&p).unwrap()).unwrap();
        assert_eq!(back, p);
    }
}
