//! `Layer over the base`: the first state of a CUDA overlay's iteration,
//! run by the Schedule Lambda once the overlay's base has ended. It reads
//! the base's records and lays the overlay's graph over them
//! ([`ebfleet_core::build_graph::BuildGraph::layer_over`]): each need from
//! the base takes the tarball sha256 its record holds, so a node accepts
//! no other; a unit that needs what the base did not build is held and
//! recorded skipped with why, so no node is started for it. The graph is
//! written back before the overlay's first execution reads it.

use crate::record::lease;
use crate::schedule::Error;
use crate::Env;
use ebfleet_core::names::{ExecutionName, PlatformName};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct LayerInput {
    pub execution: ExecutionName,
    pub platform: PlatformName,
    pub graph_key: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct LayerOutput {
    pub platform: PlatformName,
    pub base: PlatformName,
    /// Units left to build: not held, nor needing a held one.
    pub to_build: usize,
    /// Units held because the base lacks what they need, and what needs
    /// them.
    pub held: usize,
}

pub async fn handle(env: &Env, l: LayerInput) -> Result<LayerOutput, Error> {
    let bad = |reason: String| Error::BadGraph {
        key: l.graph_key.clone(),
        reason,
    };
    let mut graph = crate::schedule::read_graph(env, &l.graph_key).await?;
    if graph.platform != l.platform || graph.execution != l.execution {
        return Err(bad(format!(
            "it is {}'s of {}, not {}'s of {}",
            graph.platform, graph.execution, l.platform, l.execution
        )));
    }
    let base = graph
        .base
        .clone()
        .ok_or_else(|| bad("it names no base platform: not a CUDA overlay".into()))?;
    let recorded = env
        .records
        .recorded(&base)
        .await
        .map_err(|source| Error::Base {
            platform: base.to_string(),
            source: Box::new(source),
        })?;
    let held = graph.layer_over(&recorded);
    let now = env.now();
    for (unit, why) in &held {
        let m = &graph.modules[*unit as usize];
        let reason = format!("not built in {}: {why}", l.execution);
        lease::skip(
            env,
            &l.platform,
            &m.module,
            &m.easyconfig_sha256,
            &reason,
            now,
        )
        .await?;
    }
    env.store
        .put_json(&l.graph_key, &graph)
        .await
        .map_err(|source| Error::Graph {
            key: l.graph_key.clone(),
            source,
        })?;
    let blocked = graph.blocked_units();
    tracing::info!(platform = %l.platform, %base, held = held.len(), blocked, "laid over the base");
    Ok(LayerOutput {
        to_build: graph.units().count() - blocked,
        held: blocked,
        platform: l.platform,
        base,
    })
}
