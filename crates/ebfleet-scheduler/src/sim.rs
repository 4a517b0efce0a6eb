//! The scheduler on simulated nodes and a virtual clock: a discrete-event
//! simulation of one platform's run, calling the same [`Schedule::tick`]
//! the Schedule Lambda calls, where the Lambda would — on every unit that
//! ends and at least every [`SimConfig::tick_s`] (the platform execution's
//! wait timeout). Nodes take [`SimConfig::boot_s`] to come online; a unit
//! holds its node for its sync, build, tar and upload.
//!
//! This is the fast mode of `scripts/bench-scale.sh` (all platforms in
//! seconds); the full mode runs the real state machines, Lambdas and moto
//! around the same scheduler.

use crate::dag::Dag;
use crate::schedule::{Decisions, Observation, Outcome, PoolInstance, Schedule, Settings};
use serde::Serialize;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

/// The simulated world.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub settings: Settings,
    /// From launch to online in SSM (first boot, bootstrap).
    pub boot_s: u64,
    /// A unit's sync, tar and upload, together.
    pub overhead_s: u64,
    /// Longest time between two ticks without a unit ending.
    pub tick_s: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            settings: Settings::default(),
            boot_s: 240,
            overhead_s: 30,
            tick_s: 300,
        }
    }
}

/// What a simulated run came to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SimResult {
    pub modules: u32,
    pub built: u32,
    pub built_twice: u32,
    pub makespan_s: u64,
    pub critical_path_s: u64,
    pub work_s: u64,
    pub node_seconds: u64,
    pub nodes_max: u32,
    pub instances_launched: u32,
    pub instances_running_at_end: u32,
    pub ticks: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    /// A unit's execution ends.
    Ended { unit: u32 },
    /// A node comes online.
    Online,
    /// The platform execution's wait times out.
    Tick,
}

/// Simulate building `dag` where unit `u` really takes `build_s[u]` (the
/// schedule only knows the dag's estimates).
pub fn simulate(dag: &Dag, build_s: &[u64], cfg: &SimConfig) -> SimResult {
    let mut sched = Schedule::new(dag);
    let mut events: BinaryHeap<Reverse<(u64, u64, Event)>> = BinaryHeap::new();
    let mut seq = 0u64;
    let mut push = |events: &mut BinaryHeap<_>, t: u64, e: Event| {
        seq += 1;
        events.push(Reverse((t, seq, e)));
    };
    // The group: instance → (launched, online at).
    let mut group: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut desired = 0u32;
    let mut next_id = 0u64;
    let mut launched = 0u32;
    let mut nodes_max = 0u32;
    let mut node_seconds = 0u64;
    let mut built_count = vec![0u32; dag.len()];
    let mut next_tick = 0u64;
    push(&mut events, 0, Event::Tick);
    let mut now = 0u64;
    while let Some(Reverse((t, _, _))) = events.peek().cloned() {
        now = t;
        let mut ended = Vec::new();
        while let Some(Reverse((t2, _, e))) = events.peek().cloned() {
            if t2 != now {
                break;
            }
            events.pop();
            if let Event::Ended { unit } = e {
                built_count[unit as usize] += 1;
                ended.push((unit, Outcome::Built));
            }
        }
        let obs = Observation {
            now,
            ended,
            pool: group
                .iter()
                .map(|(id, &(_, online_at))| PoolInstance {
                    id: id.clone(),
                    online: online_at <= now,
                    instance_type: None,
                })
                .collect(),
            desired,
            on_demand: false,
        };
        let d: Decisions = sched.tick(dag, &obs, &cfg.settings);
        for x in &d.dispatch {
            let t = now + cfg.overhead_s + build_s[x.unit as usize];
            push(&mut events, t, Event::Ended { unit: x.unit });
        }
        for id in &d.retire {
            if let Some((since, _)) = group.remove(id) {
                node_seconds += now - since;
                desired = desired.saturating_sub(1);
            }
        }
        if let Some(n) = d.desired {
            // As Auto Scaling would refuse it (the group's MaxSize).
            assert!(
                n <= cfg.settings.max_nodes,
                "desired capacity {n} over max_nodes"
            );
            while desired < n {
                desired += 1;
                next_id += 1;
                launched += 1;
                group.insert(format!("i-{next_id:017x}"), (now, now + cfg.boot_s));
                push(&mut events, now + cfg.boot_s, Event::Online);
            }
        }
        nodes_max = nodes_max.max(group.len() as u32);
        if d.done {
            break;
        }
        if next_tick <= now {
            next_tick = now + cfg.tick_s;
            push(&mut events, next_tick, Event::Tick);
        }
    }
    // Release: whatever is left is terminated now.
    for (_, (since, _)) in std::mem::take(&mut group) {
        node_seconds += now - since;
    }
    let units: Vec<u32> = dag.units().collect();
    let actual = Dag::new(
        dag.is_unit.clone(),
        dag.deps.clone(),
        (0..dag.len()).map(|i| build_s[i]).collect(),
    );
    SimResult {
        modules: units.len() as u32,
        built: units
            .iter()
            .filter(|&&u| built_count[u as usize] > 0)
            .count() as u32,
        built_twice: units
            .iter()
            .filter(|&&u| built_count[u as usize] > 1)
            .count() as u32,
        makespan_s: now,
        critical_path_s: actual.critical_path_s(),
        work_s: actual.work_s(),
        node_seconds,
        nodes_max,
        instances_launched: launched,
        instances_running_at_end: group.len() as u32,
        ticks: sched.ticks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A wide, shallow graph: one root, then 64 independent units.
    fn fan(n: usize) -> Dag {
        let mut deps = vec![vec![]];
        deps.extend((0..n).map(|_| vec![0]));
        Dag::new(vec![true; n + 1], deps, vec![600; n + 1])
    }

    #[test]
    fn a_wide_graph_uses_the_whole_pool_and_builds_everything_once() {
        let dag = fan(64);
        let cfg = SimConfig::default();
        let r = simulate(&dag, &dag.estimate_s, &cfg);
        assert_eq!((r.built, r.built_twice, r.modules), (65, 0, 65));
        assert_eq!(r.nodes_max, 32);
        assert_eq!(r.instances_running_at_end, 0);
        // Root, then two waves of 32, each ~630 s, plus boots.
        assert!(
            r.makespan_s <= 3 * 630 + 2 * cfg.boot_s + 2 * cfg.tick_s,
            "{r:?}"
        );
        // Node time: the work, overheads, boots and a little idling.
        assert!(
            r.node_seconds <= r.work_s * 13 / 10 + 32 * cfg.boot_s,
            "{r:?}"
        );
    }

    #[test]
    fn a_chain_takes_its_critical_path_on_one_node() {
        let deps: Vec<Vec<u32>> = (0..10u32)
            .map(|i| if i == 0 { vec![] } else { vec![i - 1] })
            .collect();
        let dag = Dag::new(vec![true; 10], deps, vec![100; 10]);
        let r = simulate(&dag, &dag.estimate_s, &SimConfig::default());
        assert_eq!(r.critical_path_s, 1000);
        assert_eq!(r.nodes_max, 1);
        assert_eq!(r.makespan_s, 240 + 10 * 130);
    }
}
