//! The scheduler's state and its one step, [`Schedule::tick`].

use crate::dag::Dag;
use crate::retry::{retry, Retry};
use ebfleet_core::cost::{merge, Market, Usage};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How the scheduler may use the pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// Most nodes at once (the template's `NodesPerPlatform`).
    pub max_nodes: u32,
    /// Most instances launched over the platform's run, replacements
    /// included (`MaxInstancesPerPlatform`).
    pub max_instances: u32,
    /// A node idle this long with nothing ready is retired.
    pub idle_s: u64,
    /// A node not online this long after it appeared is retired.
    pub boot_timeout_s: u64,
    /// A unit whose node is lost this many times is given up (`node_lost`).
    pub node_attempts: u32,
    /// A unit another execution holds the lease of is tried again after
    /// this long.
    pub held_retry_s: u64,
    /// The pool short of its desired size this long: fall back to on-demand.
    pub capacity_wait_s: u64,
    /// Renew the running units' leases this often.
    pub lease_renew_s: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_nodes: 32,
            max_instances: 128,
            idle_s: 600,
            boot_timeout_s: 1800,
            node_attempts: 3,
            held_retry_s: 600,
            capacity_wait_s: 900,
            lease_renew_s: 1800,
        }
    }
}

/// Where a unit stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnitState {
    /// Not built yet; dispatched once every unit it needs is built.
    Waiting,
    /// Dispatched: its execution runs on `node`.
    Running {
        node: String,
        attempt: u32,
        since: u64,
    },
    Built,
    /// Failed (a build error, or given up after losing its nodes).
    Failed {
        class: String,
        reason: String,
    },
    /// Never attempted: a unit it needs failed or was skipped.
    Skipped {
        blocked_by: u32,
    },
    /// Another execution holds its lease: try again at `until`.
    Deferred {
        until: u64,
    },
}

pub use ebfleet_core::unit::UnitOutcome as Outcome;

/// A node of the pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub state: NodeState,
    /// When it entered `state`.
    pub since: u64,
    /// When the scheduler first saw it.
    pub seen: u64,
    /// Units it built: their installations are on its disk.
    #[serde(default)]
    pub built: Vec<u32>,
    /// Its instance type, when the pool said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
    /// Bought on-demand (the pool was on-demand when it appeared).
    #[serde(default)]
    pub on_demand: bool,
}

impl Node {
    fn market(&self) -> Market {
        if self.on_demand {
            Market::OnDemand
        } else {
            Market::Spot
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    /// In the group, not online in SSM yet.
    Booting,
    Idle,
    Busy {
        unit: u32,
    },
    /// Asked to terminate.
    Retiring,
}

/// One instance of the pool as EC2 and SSM see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolInstance {
    pub id: String,
    /// Online in SSM (its agent answers).
    pub online: bool,
    /// Its instance type, when the group says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
}

/// What happened since the last tick.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observation {
    pub now: u64,
    /// Units whose execution ended, and how.
    pub ended: Vec<(u32, Outcome)>,
    /// Every instance in the group (leaving ones excepted).
    pub pool: Vec<PoolInstance>,
    /// The group's desired capacity.
    pub desired: u32,
    /// The pool was made to buy on-demand (not spot).
    #[serde(default)]
    pub on_demand: bool,
}

/// A unit to start on a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dispatch {
    pub unit: u32,
    pub node: String,
    /// 1 for the first try, counting node losses.
    pub attempt: u32,
    /// Halve the build's parallel jobs this many times (it ran out of
    /// memory before).
    #[serde(default, skip_serializing_if = "ebfleet_core::wire::is_zero")]
    pub jobs_halved: u32,
}

/// What to do now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decisions {
    pub dispatch: Vec<Dispatch>,
    /// Raise the group's desired capacity to this.
    pub desired: Option<u32>,
    /// Terminate these nodes (lowering the desired capacity).
    pub retire: Vec<String>,
    /// Units given up after losing their nodes: record them `node_lost`.
    pub gave_up: Vec<u32>,
    /// Units newly skipped, with the unit that blocked them.
    pub skipped: Vec<(u32, u32)>,
    /// Renew the leases of these running units.
    pub renew: Vec<u32>,
    /// Spot capacity did not come: ask for on-demand from now on.
    pub on_demand: bool,
    /// Nothing is waiting or running any more.
    pub done: bool,
}

/// One platform's schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    /// Per module of the graph; modules already built are `Built`.
    pub units: Vec<UnitState>,
    /// Nodes lost per unit.
    #[serde(default)]
    pub losses: BTreeMap<u32, u32>,
    /// Executions started per unit: each try (after a lost node, after
    /// another run's lease) is a new one, named by its attempt.
    #[serde(default)]
    pub tries: BTreeMap<u32, u32>,
    /// Failed builds tried again later, per unit ([`Retry::Later`]).
    #[serde(default)]
    pub retries: BTreeMap<u32, u32>,
    /// Failed builds tried again with fewer jobs, per unit
    /// ([`Retry::FewerJobs`]).
    #[serde(default)]
    pub jobs_halved: BTreeMap<u32, u32>,
    pub nodes: BTreeMap<String, Node>,
    /// Instances seen over the run.
    pub launched: u32,
    /// Most nodes at once.
    pub nodes_max: u32,
    /// Node seconds of the nodes retired or gone (live ones not counted
    /// yet; see [`Schedule::node_seconds`]).
    pub node_seconds_done: u64,
    /// The same per instance type and market ([`Schedule::usage`]).
    #[serde(default)]
    pub usage_done: Vec<Usage>,
    /// Since when the group has been short of its desired capacity.
    #[serde(default)]
    pub short_since: Option<u64>,
    #[serde(default)]
    pub on_demand: bool,
    #[serde(default)]
    pub leases_renewed: u64,
    /// Ticks so far.
    pub ticks: u64,
}

impl Schedule {
    /// Units waiting, but the held ones failed and what needs them skipped
    /// (the first tick reports those skips).
    pub fn new(dag: &Dag) -> Self {
        let mut s = Schedule {
            units: dag
                .is_unit
                .iter()
                .map(|&u| {
                    if u {
                        UnitState::Waiting
                    } else {
                        UnitState::Built
                    }
                })
                .collect(),
            losses: BTreeMap::new(),
            tries: BTreeMap::new(),
            retries: BTreeMap::new(),
            jobs_halved: BTreeMap::new(),
            nodes: BTreeMap::new(),
            launched: 0,
            nodes_max: 0,
            node_seconds_done: 0,
            usage_done: Vec::new(),
            short_since: None,
            on_demand: false,
            leases_renewed: 0,
            ticks: 0,
        };
        for (u, why) in &dag.held {
            s.units[*u as usize] = UnitState::Failed {
                class: "held".into(),
                reason: why.clone(),
            };
        }
        for (u, _) in &dag.held {
            for c in dag.descendants(*u) {
                if s.units[c as usize] == UnitState::Waiting {
                    s.units[c as usize] = UnitState::Skipped { blocked_by: *u };
                }
            }
        }
        s
    }

    /// Node seconds so far, the live nodes counted up to `now`.
    pub fn node_seconds(&self, now: u64) -> u64 {
        self.node_seconds_done
            + self
                .nodes
                .values()
                .map(|n| now.saturating_sub(n.seen))
                .sum::<u64>()
    }

    /// Node seconds so far per instance type and market, the live nodes
    /// counted up to `now`; they add up to [`Schedule::node_seconds`].
    /// Nodes of a state written before types were kept count as of no
    /// type, on spot.
    pub fn usage(&self, now: u64) -> Vec<Usage> {
        let live = self.nodes.values().map(|n| Usage {
            instance_type: n.instance_type.clone(),
            market: n.market(),
            node_seconds: now.saturating_sub(n.seen),
        });
        let mut all = merge(self.usage_done.iter().cloned().chain(live));
        // Node seconds counted before usage was kept (an older state).
        let counted: u64 = self.usage_done.iter().map(|u| u.node_seconds).sum();
        let before = self.node_seconds_done.saturating_sub(counted);
        if before > 0 {
            all = merge(all.into_iter().chain([Usage {
                instance_type: None,
                market: Market::Spot,
                node_seconds: before,
            }]));
        }
        all
    }

    /// Units in each state.
    pub fn counts(&self, dag: &Dag) -> Counts {
        let mut c = Counts::default();
        for u in dag.units() {
            match &self.units[u as usize] {
                UnitState::Waiting => c.waiting += 1,
                UnitState::Running { .. } => c.running += 1,
                UnitState::Built => c.built += 1,
                UnitState::Failed { .. } => c.failed += 1,
                UnitState::Skipped { .. } => c.skipped += 1,
                UnitState::Deferred { .. } => c.deferred += 1,
            }
        }
        c
    }

    /// One step: take in `obs`, decide.
    pub fn tick(&mut self, dag: &Dag, obs: &Observation, s: &Settings) -> Decisions {
        let now = obs.now;
        let mut d = Decisions::default();
        if self.ticks == 0 {
            // What failure memory skipped, for the records.
            d.skipped = self
                .units
                .iter()
                .enumerate()
                .filter_map(|(c, st)| match st {
                    UnitState::Skipped { blocked_by } => Some((c as u32, *blocked_by)),
                    _ => None,
                })
                .collect();
        }
        self.ticks += 1;
        for (unit, outcome) in &obs.ended {
            self.end(dag, *unit, outcome, now, s, &mut d);
        }
        self.follow_pool(obs, s, &mut d);
        for st in self.units.iter_mut() {
            if matches!(st, UnitState::Deferred { until } if *until <= now) {
                *st = UnitState::Waiting;
            }
        }
        let ready_left = self.dispatch(dag, now, &mut d);
        self.size_pool(obs, ready_left, s, &mut d);
        if now.saturating_sub(self.leases_renewed) >= s.lease_renew_s {
            self.leases_renewed = now;
            // Units dispatched just now took their lease just now.
            d.renew = self
                .units
                .iter()
                .enumerate()
                .filter(|(_, st)| matches!(st, UnitState::Running { since, .. } if *since < now))
                .map(|(i, _)| i as u32)
                .collect();
        }
        d.done = !self.units.iter().any(|st| {
            matches!(
                st,
                UnitState::Waiting | UnitState::Running { .. } | UnitState::Deferred { .. }
            )
        });
        d
    }

    /// Take in how `unit`'s execution ended.
    fn end(
        &mut self,
        dag: &Dag,
        unit: u32,
        outcome: &Outcome,
        now: u64,
        s: &Settings,
        d: &mut Decisions,
    ) {
        let Some(UnitState::Running { node, .. }) = self.units.get(unit as usize).cloned() else {
            // Not running (an outcome seen twice): nothing changes.
            return;
        };
        let mut node_ok = true;
        let next = match outcome {
            Outcome::Built | Outcome::AlreadyBuilt => UnitState::Built,
            Outcome::Failed { class, reason } => self.after_failure(unit, class, reason, now),
            Outcome::Skipped { reason } => UnitState::Failed {
                class: "skipped".into(),
                reason: reason.clone(),
            },
            // Back when the other lease runs out, or sooner: the other
            // execution may finish before its lease would.
            Outcome::Held { until } => UnitState::Deferred {
                until: (*until).min(now + s.held_retry_s).max(now + 1),
            },
            Outcome::NodeLost { reason } => {
                node_ok = false;
                let lost = self.losses.entry(unit).or_insert(0);
                *lost += 1;
                if *lost >= s.node_attempts {
                    d.gave_up.push(unit);
                    UnitState::Failed {
                        class: "node_lost".into(),
                        reason: format!("lost {lost} nodes; last: {reason}"),
                    }
                } else {
                    UnitState::Waiting
                }
            }
        };
        let failed = matches!(next, UnitState::Failed { .. });
        let built = next == UnitState::Built;
        self.units[unit as usize] = next;
        if failed {
            for c in dag.descendants(unit) {
                if matches!(
                    self.units[c as usize],
                    UnitState::Waiting | UnitState::Deferred { .. }
                ) {
                    self.units[c as usize] = UnitState::Skipped { blocked_by: unit };
                    d.skipped.push((c, unit));
                }
            }
        }
        if let Some(n) = self.nodes.get_mut(&node) {
            if n.state == (NodeState::Busy { unit }) {
                if node_ok {
                    n.state = NodeState::Idle;
                    n.since = now;
                    if built {
                        n.built.push(unit);
                    }
                } else {
                    n.state = NodeState::Retiring;
                    n.since = now;
                    d.retire.push(node);
                }
            }
        }
    }

    /// Follow the group: new instances boot, online ones are idle, gone
    /// ones are dropped (their node seconds counted).
    fn follow_pool(&mut self, obs: &Observation, s: &Settings, d: &mut Decisions) {
        let now = obs.now;
        let present: BTreeMap<&str, (bool, Option<&String>)> = obs
            .pool
            .iter()
            .map(|i| (i.id.as_str(), (i.online, i.instance_type.as_ref())))
            .collect();
        let gone: Vec<String> = self
            .nodes
            .keys()
            .filter(|id| !present.contains_key(id.as_str()))
            .cloned()
            .collect();
        for id in gone {
            if let Some(n) = self.nodes.remove(&id) {
                let secs = now.saturating_sub(n.seen);
                self.node_seconds_done += secs;
                let market = n.market();
                self.usage_done = merge(self.usage_done.drain(..).chain([Usage {
                    instance_type: n.instance_type,
                    market,
                    node_seconds: secs,
                }]));
            }
        }
        let on_demand = obs.on_demand || self.on_demand;
        for (&id, &(online, instance_type)) in &present {
            let n = self.nodes.entry(id.to_string()).or_insert_with(|| {
                self.launched += 1;
                Node {
                    state: NodeState::Booting,
                    since: now,
                    seen: now,
                    built: Vec::new(),
                    instance_type: None,
                    on_demand,
                }
            });
            // The group may name the type only once it is launched.
            if n.instance_type.is_none() {
                n.instance_type = instance_type.cloned();
            }
            if n.state == NodeState::Booting {
                if online {
                    n.state = NodeState::Idle;
                    n.since = now;
                } else if now.saturating_sub(n.since) >= s.boot_timeout_s {
                    n.state = NodeState::Retiring;
                    n.since = now;
                    d.retire.push(id.to_string());
                }
            }
        }
        self.nodes_max = self.nodes_max.max(self.nodes.len() as u32);
    }

    /// Start ready units on idle nodes, longest remaining critical path
    /// first, each on the idle node that built most of what it needs.
    /// Returns how many ready units are left without a node.
    fn dispatch(&mut self, dag: &Dag, now: u64, d: &mut Decisions) -> usize {
        let mut ready: Vec<u32> = dag
            .units()
            .filter(|&u| {
                self.units[u as usize] == UnitState::Waiting
                    && dag.deps[u as usize]
                        .iter()
                        .all(|&p| self.units[p as usize] == UnitState::Built)
            })
            .collect();
        ready.sort_by_key(|&u| (std::cmp::Reverse(dag.rank[u as usize]), u));
        let mut idle: Vec<String> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.state == NodeState::Idle)
            .map(|(id, _)| id.clone())
            .collect();
        let mut assigned = 0;
        for &u in &ready {
            if idle.is_empty() {
                break;
            }
            let deps = &dag.deps[u as usize];
            let best = (0..idle.len())
                .max_by_key(|&i| {
                    let n = &self.nodes[&idle[i]];
                    let local = n.built.iter().filter(|b| deps.contains(b)).count();
                    // Most dependencies on its disk; then the longest idle.
                    (local, std::cmp::Reverse(n.since))
                })
                .expect("an idle node");
            let node = idle.swap_remove(best);
            let attempt = {
                let tries = self.tries.entry(u).or_insert(0);
                *tries += 1;
                *tries
            };
            let n = self.nodes.get_mut(&node).expect("an idle node is known");
            n.state = NodeState::Busy { unit: u };
            n.since = now;
            self.units[u as usize] = UnitState::Running {
                node: node.clone(),
                attempt,
                since: now,
            };
            d.dispatch.push(Dispatch {
                unit: u,
                node,
                attempt,
                jobs_halved: self.jobs_halved.get(&u).copied().unwrap_or(0),
            });
            assigned += 1;
        }
        ready.len() - assigned
    }

    /// Where a failed build of `unit` goes next, by [`retry`]'s table.
    fn after_failure(&mut self, unit: u32, class: &str, reason: &str, now: u64) -> UnitState {
        let failed = |reason: String| UnitState::Failed {
            class: class.to_string(),
            reason,
        };
        match retry(class) {
            Retry::Never => failed(reason.to_string()),
            Retry::Operator => failed(format!("needs an operator: {reason}")),
            Retry::Later {
                retries,
                first_delay_s,
            } => {
                let n = self.retries.entry(unit).or_insert(0);
                if *n >= retries {
                    return failed(format!("{reason} (tried {} times)", *n + 1));
                }
                *n += 1;
                UnitState::Deferred {
                    until: now + (first_delay_s << (*n - 1)),
                }
            }
            Retry::FewerJobs { retries } => {
                let n = self.jobs_halved.entry(unit).or_insert(0);
                if *n >= retries {
                    return failed(format!("{reason} (also with {n}× halved parallel jobs)"));
                }
                *n += 1;
                UnitState::Waiting
            }
        }
    }

    /// Grow the group while ready units wait; retire nodes idle too long;
    /// fall back to on-demand when spot capacity does not come.
    fn size_pool(&mut self, obs: &Observation, ready_left: usize, s: &Settings, d: &mut Decisions) {
        let now = obs.now;
        let live = |n: &&Node| n.state != NodeState::Retiring;
        let active = self.nodes.values().filter(live).count() as u32;
        let busy = self
            .nodes
            .values()
            .filter(|n| matches!(n.state, NodeState::Busy { .. }))
            .count() as u32;
        // Instances asked for but not in the group yet count as coming.
        let coming = obs.desired.saturating_sub(obs.pool.len() as u32);
        // Nodes retired in this tick are still in the observed group, and
        // each retirement lowers the desired capacity by one before the
        // new one is set: count from what stays.
        let retired_now = d
            .retire
            .iter()
            .filter(|id| obs.pool.iter().any(|i| &i.id == *id))
            .count() as u32;
        let staying = obs.desired.saturating_sub(retired_now);
        let want = (busy + ready_left as u32).min(s.max_nodes);
        let have = active + coming;
        if want > have {
            let room = s.max_instances.saturating_sub(self.launched + coming);
            let grow = (want - have).min(room);
            if grow > 0 {
                d.desired = Some(staying.max(active) + grow);
            }
        }
        let more_work = ready_left > 0
            || self
                .units
                .iter()
                .any(|st| matches!(st, UnitState::Waiting | UnitState::Deferred { .. }));
        for (id, n) in self.nodes.iter_mut() {
            let idle_for = now.saturating_sub(n.since);
            // Idle with nothing ready for long enough, or nothing left to
            // wait for at all: a node that cannot get work any more.
            if n.state == NodeState::Idle && ready_left == 0 && (idle_for >= s.idle_s || !more_work)
            {
                n.state = NodeState::Retiring;
                n.since = now;
                d.retire.push(id.clone());
            }
        }
        if obs.desired > obs.pool.len() as u32 {
            let since = *self.short_since.get_or_insert(now);
            if !self.on_demand && now.saturating_sub(since) >= s.capacity_wait_s {
                self.on_demand = true;
                d.on_demand = true;
            }
        } else {
            self.short_since = None;
        }
    }
}

/// Units per state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub waiting: u32,
    pub running: u32,
    pub built: u32,
    pub failed: u32,
    pub skipped: u32,
    pub deferred: u32,
}

#[cfg(test)]
mod tests;
