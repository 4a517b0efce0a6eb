//! Schedule: one platform's scheduler, run by its platform execution in a
//! loop — `Schedule`, then `Wait for nodes` until a unit ends (or a few
//! minutes pass), then `Schedule` again.
//!
//! A tick ([`tick`]) reads the platform's build graph (cached per process)
//! and the scheduler's state (`plans/<execution>/<platform>/schedule.json`),
//! observes AWS — how each running unit's execution ended, the pool's
//! members and which of them are online in SSM — runs the pure scheduler
//! ([`ebfleet_scheduler::Schedule::tick`]) and does what it decided: units
//! given up or blocked are recorded, nodes retired, the pool grown, each
//! dispatched unit's batch file written and its execution started, running
//! units' leases renewed. Starting an execution is idempotent (its name is
//! the unit's and the attempt's), so a tick retried after a failure
//! halfway never starts a unit twice.
//!
//! The wait ([`wait`]) leaves its task token in the platform's wake-up item;
//! the first unit to end after it takes the token and completes the task
//! (`record::done`). A unit that ended between the tick and the wait is
//! seen by the count the tick read: the wait then completes at once.

use crate::env::{self, var, EnvError, Lookup};
use crate::record::lease::{self, BatchRef};
use crate::Env;
use ebfleet_aws::autoscaling::PoolSpec;
use ebfleet_aws::dynamodb::DynamoError;
use ebfleet_aws::s3::S3Error;
use ebfleet_aws::sfn::SfnError;
use ebfleet_aws::ssm::SsmError;
use ebfleet_aws::CallError;
use ebfleet_core::build_graph::BuildGraph;
use ebfleet_core::cost::{price, types_on, Market, PlatformCost, Prices, Usage};
use ebfleet_core::layout::batch_prefix;
use ebfleet_core::names::{ExecutionName, PlatformName};
use ebfleet_core::platform::Platforms;
use ebfleet_core::unit::{unit_execution_name, UnitInput, UnitOutcome, UnitResult};
use ebfleet_core::userdata::NODE_URL_EXPIRY;
use ebfleet_core::wire;
use ebfleet_scheduler::{Counts, Dag, Observation, PoolInstance, Schedule};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// What the scheduler needs from the stack.
#[derive(Debug, Clone)]
pub struct Settings {
    pub unit_state_machine: String,
    /// The node role's unique id: a unit file names its node as
    /// `<role id>:<instance id>`, the principal whose staging prefix the
    /// node may write.
    pub node_role_id: String,
    /// The KMS key a unit file tells its node to verify needs by.
    pub signing_key: String,
    /// The platforms (their nodes' user data is renewed from them).
    pub platforms: Platforms,
    pub scheduler: ebfleet_scheduler::Settings,
    /// Seconds a renewed lease lasts.
    pub lease_ttl: u64,
    /// Ticks per platform execution before the run goes on in a new one.
    pub ticks_per_execution: u32,
}

impl Settings {
    pub fn from_lookup(lookup: impl Lookup) -> Result<Self, EnvError> {
        let number = |name: &'static str, default: u64| -> Result<u64, EnvError> {
            match lookup(name) {
                None => Ok(default),
                Some(v) => v
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| EnvError::Invalid {
                        var: name,
                        reason: format!("{v:?} is not a whole number above 0"),
                    }),
            }
        };
        let defaults = ebfleet_scheduler::Settings::default();
        let max_nodes = number(var::NODES_PER_PLATFORM, defaults.max_nodes.into())? as u32;
        Ok(Settings {
            unit_state_machine: env::required(&lookup, var::UNIT_STATE_MACHINE_ARN)?,
            node_role_id: required_as(&lookup, var::NODE_ROLE_ID, wire::check_role_id)?,
            signing_key: required_as(&lookup, var::SIGNING_KEY, wire::check_signing_key)?,
            platforms: env::platforms(&lookup).map_err(|e| EnvError::Invalid {
                var: var::PLATFORMS,
                reason: e.to_string(),
            })?,
            scheduler: ebfleet_scheduler::Settings {
                max_nodes,
                max_instances: number(var::MAX_INSTANCES_PER_PLATFORM, 4 * u64::from(max_nodes))?
                    as u32,
                idle_s: number(var::NODE_IDLE_SECONDS, defaults.idle_s)?,
                node_attempts: number(var::NODE_ATTEMPTS, defaults.node_attempts.into())? as u32,
                held_retry_s: number(var::HELD_RETRY_SECONDS, defaults.held_retry_s)?,
                ..defaults
            },
            lease_ttl: lease::parse_ttl(lookup(lease::LEASE_SECONDS_VAR).as_deref())?,
            ticks_per_execution: number(var::TICKS_PER_EXECUTION, TICKS_PER_EXECUTION)? as u32,
        })
    }
}

/// Variable `name`, required, and as `check` wants it: it goes into unit
/// files, which a node reads with the same check.
fn required_as(
    lookup: &impl Lookup,
    name: &'static str,
    check: fn(&str) -> Result<(), String>,
) -> Result<String, EnvError> {
    let value = env::required(lookup, name)?;
    check(&value).map_err(|reason| EnvError::Invalid {
        var: name,
        reason: format!("{value:?}: {reason}"),
    })?;
    Ok(value)
}

/// `{"tick": ...}` (the `Schedule` state), `{"wait": ...}` (`Wait for
/// nodes`) or `{"layer": ...}` (a CUDA overlay's `Layer over the base`,
/// [`crate::layer`]).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Input {
    Tick { tick: TickInput },
    Wait { wait: WaitInput },
    Layer { layer: crate::layer::LayerInput },
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct TickInput {
    pub execution: ExecutionName,
    pub platform: PlatformName,
    pub graph_key: String,
    /// Prefix of the unit executions' names.
    pub name_prefix: String,
    /// The pool Capacity made.
    pub pool: PoolSpec,
    /// The run's task waiting for this platform: every tick beats on it.
    pub run_token: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct WaitInput {
    pub execution: ExecutionName,
    pub platform: PlatformName,
    /// The count of ended units the last tick saw.
    pub seen: u64,
    pub task_token: String,
}

/// The `Schedule` state's output.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct TickOutput {
    /// Nothing is waiting or running any more: release the pool.
    pub done: bool,
    /// This execution has ticked enough: go on in a new one.
    pub next_execution: bool,
    /// The run no longer waits for this platform (stopped, or it gave up
    /// on it): release the pool and end.
    pub orphaned: bool,
    /// The count of ended units this tick saw (for the wait).
    pub seen: u64,
    pub units: Counts,
    pub dispatched: usize,
    pub nodes: usize,
    pub nodes_max: u32,
    pub instances_launched: u32,
    pub node_seconds: u64,
    /// When `done`: the node time per instance type and market and what
    /// it cost ([`platform_cost`]); `null` otherwise. Handed to the run
    /// with the platform's summary.
    #[serde(default)]
    pub cost: Option<PlatformCost>,
}

/// What a tick keeps between ticks, in S3.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct State {
    pub schedule: Schedule,
    /// Running units' execution ARNs.
    pub executions: BTreeMap<u32, String>,
    /// Units built in this run: their tarballs' sha256 as Record recorded
    /// them (from the unit's output), which their dependents' nodes take
    /// and no other.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tarballs: BTreeMap<u32, String>,
    /// Ticks of the current platform execution, and its ARN-less id (the
    /// wait's token changes with it; the count is what matters).
    pub ticks_this_execution: u32,
    pub started: u64,
    /// When the pool's user data was last made (its download of
    /// `ebfleet-node` expires [`NODE_URL_EXPIRY`] after).
    pub user_data_renewed: u64,
}

/// Ticks of a platform execution before it goes on in a new one: at worst
/// (every Lambda call retried to its limit) 61 history events a tick, so
/// 300 ticks stay under 18,500 of Step Functions' 25,000 (infra/OPERATOR.md).
pub const TICKS_PER_EXECUTION: u64 = 300;

/// How often a growing pool's user data is renewed: what a node boots with
/// is always good for half the download's life.
pub const USER_DATA_RENEW_S: u64 = NODE_URL_EXPIRY.as_secs() / 2;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("build graph {key}: {source}")]
    Graph {
        key: String,
        #[source]
        source: S3Error,
    },
    #[error("build graph {key}: {reason}")]
    BadGraph { key: String, reason: String },
    #[error("scheduler state {key}: {source}")]
    State {
        key: String,
        #[source]
        source: S3Error,
    },
    #[error("unit {unit} of {platform}: {source}")]
    Unit {
        platform: String,
        unit: u32,
        #[source]
        source: Box<SfnError>,
    },
    #[error("unit file {key}: {source}")]
    UnitFile {
        key: String,
        #[source]
        source: S3Error,
    },
    #[error("pool {pool}: {source}")]
    Pool {
        pool: String,
        #[source]
        source: CallError,
    },
    #[error("pool {pool}: no such Auto Scaling group (Capacity did not create it, or Release deleted it)")]
    NoPool { pool: String },
    #[error("pool {pool}: {source}")]
    Ssm {
        pool: String,
        #[source]
        source: SsmError,
    },
    #[error("wake-up of {platform}: {source}")]
    Wake {
        platform: String,
        #[source]
        source: Box<DynamoError>,
    },
    #[error("completing the wait of {platform}: {source}")]
    Wait {
        platform: String,
        #[source]
        source: Box<SfnError>,
    },
    #[error("records of the base platform {platform}: {source}")]
    Base {
        platform: String,
        #[source]
        source: Box<DynamoError>,
    },
    #[error(transparent)]
    Record(#[from] crate::record::Error),
}

impl crate::failure::Failure for Error {
    fn kind(&self) -> crate::failure::Kind {
        use crate::failure::Kind;
        match self {
            Error::Graph { source, .. }
            | Error::State { source, .. }
            | Error::UnitFile { source, .. } => source.kind(),
            Error::BadGraph { .. } | Error::NoPool { .. } => Kind::Invalid,
            Error::Unit { source, .. } | Error::Wait { source, .. } => {
                Kind::retry_or(source.is_retryable(), Kind::Failed)
            }
            Error::Pool { source, .. } => Kind::retry_or(source.transient, Kind::Failed),
            Error::Ssm { source, .. } => source.kind(),
            Error::Wake { source, .. } | Error::Base { source, .. } => {
                Kind::retry_or(source.is_retryable(), Kind::Failed)
            }
            Error::Record(e) => e.kind(),
        }
    }
}

/// `plans/<execution>/<platform>/schedule.json`.
pub fn state_key(execution: &ExecutionName, platform: &PlatformName) -> String {
    format!("{}schedule.json", batch_prefix(execution, platform))
}

/// A graph read once per process: every tick of a platform reads the same.
type Cached = (String, Arc<BuildGraph>, Arc<Dag>);
static GRAPH: Mutex<Option<Cached>> = Mutex::new(None);

async fn graph(env: &Env, key: &str) -> Result<(Arc<BuildGraph>, Arc<Dag>), Error> {
    if let Some((k, g, d)) = GRAPH.lock().expect("graph cache").as_ref() {
        if k == key {
            return Ok((g.clone(), d.clone()));
        }
    }
    let g = read_graph(env, key).await?;
    let d = Dag::from_graph(&g);
    let (g, d) = (Arc::new(g), Arc::new(d));
    *GRAPH.lock().expect("graph cache") = Some((key.to_string(), g.clone(), d.clone()));
    Ok((g, d))
}

/// A build graph from S3, validated.
pub async fn read_graph(env: &Env, key: &str) -> Result<BuildGraph, Error> {
    let bytes = env
        .store
        .get_bytes(key)
        .await
        .map_err(|source| Error::Graph {
            key: key.to_string(),
            source,
        })?;
    let bad = |reason: String| Error::BadGraph {
        key: key.to_string(),
        reason,
    };
    let text = std::str::from_utf8(&bytes).map_err(|_| bad("not UTF-8".into()))?;
    BuildGraph::from_json(text).map_err(|e| bad(e.to_string()))
}

pub async fn handle(
    env: &Env,
    settings: &Settings,
    input: Input,
) -> Result<serde_json::Value, Error> {
    match input {
        Input::Tick { tick: t } => tick(env, settings, t)
            .await
            .map(|o| serde_json::to_value(o).unwrap_or_default()),
        Input::Wait { wait: w } => wait(env, w).await.map(|()| serde_json::json!({})),
        Input::Layer { layer: l } => crate::layer::handle(env, l)
            .await
            .map(|o| serde_json::to_value(o).unwrap_or_default()),
    }
}

/// How a unit's execution ended, from DescribeExecution, and its
/// tarball's recorded sha256 when it built its module.
fn ended(info: &ebfleet_aws::sfn::ExecutionInfo) -> (UnitOutcome, Option<String>) {
    if info.status == "SUCCEEDED" {
        if let Some(r) = info
            .output
            .as_deref()
            .and_then(|o| serde_json::from_str::<UnitResult>(o).ok())
        {
            let sha = r
                .tarball_sha256
                .filter(|s| ebfleet_core::checksum::is_sha256_hex(s));
            return (r.outcome, sha);
        }
    }
    let lost = UnitOutcome::NodeLost {
        reason: format!(
            "the unit's execution ended {}{}",
            info.status,
            info.error
                .as_deref()
                .map(|e| format!(": {e}: {}", info.cause.as_deref().unwrap_or("")))
                .unwrap_or_default()
        ),
    };
    (lost, None)
}

/// A new version of the pool's launch template whose download of
/// `ebfleet-node` is presigned now.
async fn renew_user_data(
    env: &Env,
    settings: &Settings,
    t: &TickInput,
) -> Result<(), crate::capacity::Error> {
    let platform = crate::capacity::find_platform(&settings.platforms, t.platform.as_str())?;
    let user_data = crate::capacity::node::user_data(&env.store, &platform).await?;
    env.nodes
        .renew_user_data(&t.pool.launch_template_id, &user_data.gzip)
        .await
        .map_err(|source| crate::capacity::Error::Launch {
            platform: t.platform.to_string(),
            source,
        })
}

/// One tick (see the module documentation).
pub async fn tick(env: &Env, settings: &Settings, t: TickInput) -> Result<TickOutput, Error> {
    let now = env.now();
    // The run hears from this platform every tick; a run that no longer
    // waits (stopped, timed out) means this platform stops too.
    let orphaned = match env.sfn.heartbeat(&t.run_token).await {
        Ok(()) => false,
        Err(SfnError::TaskTimedOut { .. } | SfnError::TaskDoesNotExist { .. }) => true,
        Err(e) => {
            tracing::warn!(error = %e, "beating on the run's task failed; next tick again");
            false
        }
    };
    if orphaned {
        tracing::warn!(platform = %t.platform, "the run no longer waits for this platform: releasing");
        return Ok(TickOutput {
            orphaned: true,
            ..TickOutput::default()
        });
    }
    let (graph, dag) = graph(env, &t.graph_key).await?;
    let key = state_key(&t.execution, &t.platform);
    let mut st = match env.store.get_json::<State>(&key).await {
        Ok(st) => st,
        Err(S3Error::NotFound { .. }) => State {
            schedule: Schedule::new(&dag),
            executions: BTreeMap::new(),
            tarballs: BTreeMap::new(),
            ticks_this_execution: 0,
            started: now,
            // Capacity made it just before the first tick.
            user_data_renewed: now,
        },
        Err(source) => return Err(Error::State { key, source }),
    };
    // Read before observing, so a unit ending from here on wakes the wait.
    let seen = env
        .records
        .wake_count(&t.execution, &t.platform)
        .await
        .map_err(|source| Error::Wake {
            platform: t.platform.to_string(),
            source: Box::new(source),
        })?;

    let mut ended_units = Vec::new();
    for (&unit, arn) in &st.executions {
        let info = env.sfn.describe(arn).await.map_err(|source| Error::Unit {
            platform: t.platform.to_string(),
            unit,
            source: Box::new(source),
        })?;
        if !info.is_running() {
            let (outcome, sha) = ended(&info);
            if let Some(sha) = sha.filter(|_| outcome == UnitOutcome::Built) {
                st.tarballs.insert(unit, sha);
            }
            ended_units.push((unit, outcome));
        }
    }
    for (unit, _) in &ended_units {
        st.executions.remove(unit);
    }
    let pool_err = |source| Error::Pool {
        pool: t.pool.name.clone(),
        source,
    };
    let pool = env
        .pools
        .describe(&t.pool.name)
        .await
        .map_err(pool_err)?
        .ok_or_else(|| Error::NoPool {
            pool: t.pool.name.clone(),
        })?;
    let ids: Vec<String> = pool.members.iter().map(|m| m.instance_id.clone()).collect();
    let online = if ids.is_empty() {
        Default::default()
    } else {
        env.ssm.online(&ids).await.map_err(|source| Error::Ssm {
            pool: t.pool.name.clone(),
            source,
        })?
    };
    let obs = Observation {
        now,
        ended: ended_units,
        pool: ids
            .iter()
            .map(|id| PoolInstance {
                id: id.clone(),
                online: online.contains(id),
                instance_type: pool
                    .members
                    .iter()
                    .find(|m| &m.instance_id == id)
                    .and_then(|m| m.instance_type.clone()),
            })
            .collect(),
        desired: pool.desired,
        on_demand: t.pool.on_demand,
    };
    let d = st.schedule.tick(&dag, &obs, &settings.scheduler);

    let batch = |unit: u32| BatchRef {
        execution: t.execution.clone(),
        platform: t.platform.clone(),
        batch: unit as usize,
    };
    for &unit in &d.gave_up {
        lease::release(env, &batch(unit), now).await?;
    }
    for &(unit, blocker) in &d.skipped {
        let m = &graph.modules[unit as usize];
        let reason = format!(
            "not built in {}: it needs {}, which was not built",
            t.execution, graph.modules[blocker as usize].module
        );
        lease::skip(
            env,
            &t.platform,
            &m.module,
            &m.easyconfig_sha256,
            &reason,
            now,
        )
        .await?;
    }
    for id in &d.retire {
        env.pools.retire(id).await.map_err(pool_err)?;
    }
    if !d.done && now >= st.user_data_renewed + USER_DATA_RENEW_S {
        // Not fatal: the next tick tries again; a node that boots with an
        // expired download is lost and its unit tried elsewhere.
        match renew_user_data(env, settings, &t).await {
            Ok(()) => st.user_data_renewed = now,
            Err(e) => {
                tracing::warn!(pool = %t.pool.name, error = %e, "renewing the nodes' user data failed")
            }
        }
    }
    if d.on_demand {
        tracing::warn!(pool = %t.pool.name, "spot capacity did not come: on-demand from now on");
        env.pools.use_on_demand(&t.pool).await.map_err(pool_err)?;
    }
    if let Some(n) = d.desired {
        env.pools
            .set_desired(&t.pool.name, n)
            .await
            .map_err(pool_err)?;
    }
    for x in &d.dispatch {
        let mut file = graph
            .unit_file_with(x.unit, &st.tarballs)
            .map_err(|e| Error::BadGraph {
                key: t.graph_key.clone(),
                reason: e.to_string(),
            })?;
        file.jobs_halved = x.jobs_halved;
        file.node = Some(format!("{}:{}", settings.node_role_id, x.node));
        file.signing_key = Some(settings.signing_key.clone());
        let unit_key = file.key();
        env.store
            .put_json(&unit_key, &file)
            .await
            .map_err(|source| Error::UnitFile {
                key: unit_key.clone(),
                source,
            })?;
        let name = unit_execution_name(&t.name_prefix, x.unit, x.attempt);
        let input = UnitInput {
            execution: t.execution.clone(),
            platform: t.platform.clone(),
            unit: x.unit,
            attempt: x.attempt,
            module: graph.modules[x.unit as usize].module.to_string(),
            unit_key,
            instance_id: x.node.clone(),
        };
        let arn = start_unit(env, settings, &name, &input)
            .await
            .map_err(|source| Error::Unit {
                platform: t.platform.to_string(),
                unit: x.unit,
                source: Box::new(source),
            })?;
        st.executions.insert(x.unit, arn);
    }
    for &unit in &d.renew {
        lease::renew(env, &batch(unit), now, settings.lease_ttl).await?;
    }

    let cost = if d.done {
        Some(platform_cost(env, &st.schedule.usage(now)).await)
    } else {
        None
    };
    st.ticks_this_execution += 1;
    let next_execution = !d.done && st.ticks_this_execution >= settings.ticks_per_execution;
    if next_execution {
        st.ticks_this_execution = 0;
    }
    let out = TickOutput {
        done: d.done,
        next_execution,
        orphaned: false,
        seen,
        units: st.schedule.counts(&dag),
        dispatched: d.dispatch.len(),
        nodes: st.schedule.nodes.len(),
        nodes_max: st.schedule.nodes_max,
        instances_launched: st.schedule.launched,
        node_seconds: st.schedule.node_seconds(now),
        cost,
    };
    env.store
        .put_json(&key, &st)
        .await
        .map_err(|source| Error::State { key, source })?;
    tracing::info!(platform = %t.platform, ?out, "tick");
    Ok(out)
}

/// What `usage` cost: spot nodes at the spot price of their type read now
/// (DescribeSpotPriceHistory), on-demand nodes at their on-demand price,
/// which EC2 does not give (the Price List API is not asked): unknown. A
/// price that cannot be read is unknown, and the dollars with it: the
/// summary is never a reason for the platform to fail.
pub async fn platform_cost(env: &Env, usage: &[Usage]) -> PlatformCost {
    let spot_types = types_on(usage, Market::Spot);
    let spot = if spot_types.is_empty() {
        Default::default()
    } else {
        match env.nodes.spot_prices(&spot_types).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "reading spot prices for the cost failed: dollars unknown");
                Default::default()
            }
        }
    };
    price(
        usage,
        &Prices {
            spot,
            on_demand: Default::default(),
        },
    )
}

/// Start a unit's execution; one already started under that name (a tick
/// retried halfway) is the same execution.
async fn start_unit(
    env: &Env,
    settings: &Settings,
    name: &str,
    input: &UnitInput,
) -> Result<String, SfnError> {
    let name: ExecutionName =
        name.parse()
            .map_err(|e: ebfleet_core::names::KeyError| SfnError::Payload {
                resource: settings.unit_state_machine.clone(),
                op: "StartExecution",
                detail: e.to_string(),
            })?;
    match env
        .sfn
        .start(&settings.unit_state_machine, &name, input)
        .await
    {
        Ok(arn) => Ok(arn),
        Err(SfnError::AlreadyExists { .. }) => {
            Ok(execution_arn(&settings.unit_state_machine, &name))
        }
        Err(e) => Err(e),
    }
}

/// The ARN of execution `name` of `state_machine`.
pub fn execution_arn(state_machine: &str, name: &ExecutionName) -> String {
    format!(
        "{}:{name}",
        state_machine.replacen(":stateMachine:", ":execution:", 1)
    )
}

/// The `Wait for nodes` state: leave the task token for the next unit to
/// end; if one ended since the tick, complete the wait now.
pub async fn wait(env: &Env, w: WaitInput) -> Result<(), Error> {
    let wake_err = |source| Error::Wake {
        platform: w.platform.to_string(),
        source: Box::new(source),
    };
    let count = env
        .records
        .wake_register(&w.execution, &w.platform, &w.task_token)
        .await
        .map_err(wake_err)?;
    // A unit that takes the token after this finds its task done: harmless.
    if count > w.seen {
        match env
            .sfn
            .succeed(&w.task_token, &serde_json::json!({"ended": count}))
            .await
        {
            Ok(()) | Err(SfnError::TaskTimedOut { .. } | SfnError::TaskDoesNotExist { .. }) => {}
            Err(source) => {
                return Err(Error::Wait {
                    platform: w.platform.to_string(),
                    source: Box::new(source),
                })
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
