//! The scheduler's view of a build graph: which modules are units, what
//! each unit waits for, what waits for it, and how long its remaining
//! critical path is.

use ebfleet_core::build_graph::BuildGraph;

/// A platform's units and their dependencies, by graph index (dependencies
/// first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dag {
    /// Whether each module is a unit (to build) rather than already built.
    pub is_unit: Vec<bool>,
    /// Per module: the units among its direct dependencies.
    pub deps: Vec<Vec<u32>>,
    /// Per module: the units that depend on it directly.
    pub dependents: Vec<Vec<u32>>,
    /// Per module: estimated build seconds.
    pub estimate_s: Vec<u64>,
    /// Per unit: its estimate plus the longest chain of estimates of the
    /// units that (transitively) wait for it — its remaining critical path.
    pub rank: Vec<u64>,
    /// Units failure memory holds: failed before, not to be dispatched;
    /// why.
    pub held: Vec<(u32, String)>,
}

impl Dag {
    /// From per-module unit flags, direct dependencies (any module, by
    /// index, each before its dependent) and estimates.
    pub fn new(is_unit: Vec<bool>, deps: Vec<Vec<u32>>, estimate_s: Vec<u64>) -> Self {
        let n = is_unit.len();
        assert_eq!(deps.len(), n, "one dependency list per module");
        assert_eq!(estimate_s.len(), n, "one estimate per module");
        let deps: Vec<Vec<u32>> = deps
            .into_iter()
            .enumerate()
            .map(|(i, ds)| {
                let mut ds: Vec<u32> = ds.into_iter().filter(|&d| is_unit[d as usize]).collect();
                ds.sort_unstable();
                ds.dedup();
                assert!(
                    ds.iter().all(|&d| (d as usize) < i),
                    "module {i} depends on a later module"
                );
                ds
            })
            .collect();
        let mut dependents = vec![Vec::new(); n];
        for (i, ds) in deps.iter().enumerate() {
            for &d in ds {
                dependents[d as usize].push(i as u32);
            }
        }
        let mut rank = vec![0u64; n];
        for i in (0..n).rev() {
            if is_unit[i] {
                let below = dependents[i]
                    .iter()
                    .map(|&c| rank[c as usize])
                    .max()
                    .unwrap_or(0);
                rank[i] = estimate_s[i] + below;
            }
        }
        Dag {
            is_unit,
            deps,
            dependents,
            estimate_s,
            rank,
            held: Vec::new(),
        }
    }

    /// The scheduler's view of a platform's build graph.
    pub fn from_graph(g: &BuildGraph) -> Self {
        let mut dag = Dag::new(
            g.modules.iter().map(|m| !m.built).collect(),
            g.modules.iter().map(|m| m.deps().collect()).collect(),
            g.modules.iter().map(|m| m.estimate_s).collect(),
        );
        dag.held = g
            .modules
            .iter()
            .enumerate()
            .filter(|(_, m)| !m.built)
            .filter_map(|(i, m)| Some((i as u32, m.held.clone()?)))
            .collect();
        dag
    }

    /// Number of modules (units and built ones).
    pub fn len(&self) -> usize {
        self.is_unit.len()
    }

    pub fn is_empty(&self) -> bool {
        self.is_unit.is_empty()
    }

    /// The units, dependencies first.
    pub fn units(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.len() as u32).filter(|&i| self.is_unit[i as usize])
    }

    /// The longest chain of estimates through the units: no schedule,
    /// however many nodes, finishes sooner.
    pub fn critical_path_s(&self) -> u64 {
        self.units()
            .map(|u| self.rank[u as usize])
            .max()
            .unwrap_or(0)
    }

    /// The sum of the units' estimates.
    pub fn work_s(&self) -> u64 {
        self.units().map(|u| self.estimate_s[u as usize]).sum()
    }

    /// Every unit that waits, directly or not, for `unit`.
    pub fn descendants(&self, unit: u32) -> Vec<u32> {
        let mut seen = vec![false; self.len()];
        let mut out = Vec::new();
        let mut stack = self.dependents[unit as usize].clone();
        while let Some(c) = stack.pop() {
            if std::mem::replace(&mut seen[c as usize], true) {
                continue;
            }
            out.push(c);
            stack.extend(self.dependents[c as usize].iter().copied());
        }
        out.sort_unstable();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 0 built; 1, 2 need 0; 3 needs 1 and 2; 4 needs 1.
    pub(crate) fn diamond() -> Dag {
        Dag::new(
            vec![false, true, true, true, true],
            vec![vec![], vec![0], vec![0], vec![1, 2], vec![1]],
            vec![100, 10, 50, 20, 5],
        )
    }

    #[test]
    fn ranks_are_remaining_critical_paths() {
        let d = diamond();
        assert_eq!(d.deps[3], [1, 2]);
        assert_eq!(
            d.deps[1],
            Vec::<u32>::new(),
            "a built dependency is no wait"
        );
        assert_eq!(d.rank[3], 20);
        assert_eq!(d.rank[4], 5);
        assert_eq!(d.rank[1], 10 + 20);
        assert_eq!(d.rank[2], 50 + 20);
        assert_eq!(d.critical_path_s(), 70);
        assert_eq!(d.work_s(), 85);
        assert_eq!(d.descendants(1), [3, 4]);
        assert_eq!(d.units().collect::<Vec<_>>(), [1, 2, 3, 4]);
    }
}
