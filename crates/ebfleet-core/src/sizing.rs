//! Sizing from recorded builds: what a build used on its node
//! ([`BuildUsage`], measured by the node, checked by Record, kept in the
//! module's record), what the next run makes of it — the pool's instance
//! size ([`pool_needs`]) and each build's parallel jobs
//! ([`jobs_fitting`]).
//!
//! A platform's pool has one set of instance types, so sizing is in two
//! places. The pool's types must fit the largest process any of its units
//! recorded, with headroom, and need not be wider than the most cores any
//! unit kept busy (a run of serial builds gets small nodes). A unit whose
//! processes are bigger than the pool's memory per vCPU gets fewer parallel
//! jobs on its node, so that its jobs fit the node's memory; that is also
//! what an out-of-memory retry does ([`crate::wire::BatchFile::jobs_halved`]).

use crate::capacity::{BatchNeeds, MEMORY_PER_VCPU_MIB};
use crate::platform::Platform;
use serde::{Deserialize, Serialize};

/// What one build used on its node (`getrusage` of its `eb` and every
/// process under it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildUsage {
    /// The largest resident set of any one process of the build, MiB.
    pub peak_memory_mib: u64,
    /// CPU seconds (user + system) of all its processes.
    pub cpu_s: u64,
    /// The CPUs of the node it ran on (what its CPU time is checked
    /// against, and what "busy" is measured on).
    pub cpus: u32,
}

/// Largest memory a node may report: the largest EC2 instance has 24 TiB.
pub const MAX_PEAK_MEMORY_MIB: u64 = 32 * 1024 * 1024;
/// Most CPUs a node may report (the largest EC2 instance has 896 vCPUs).
pub const MAX_CPUS: u32 = 1024;

/// A memory peak is taken to need this much more next time (percent):
/// inputs change between versions and the kernel's page cache needs room.
pub const MEMORY_HEADROOM_PERCENT: u64 = 150;
/// Of a node's memory, what builds may use (percent); the rest is the
/// system's, the agent's and the page cache's.
pub const USABLE_MEMORY_PERCENT: u64 = 90;
/// A build that kept this share of its CPUs busy (percent) could have used
/// more: its parallelism says nothing about how many it needs.
pub const SATURATED_PERCENT: u64 = 75;

impl BuildUsage {
    /// Whether the node's report is possible for a build of `duration_s`:
    /// its CPU time cannot exceed its CPUs times its wall time.
    pub fn check(&self, duration_s: u64) -> Result<(), String> {
        if self.peak_memory_mib > MAX_PEAK_MEMORY_MIB {
            return Err(format!(
                "peak memory {} MiB is more than any instance has",
                self.peak_memory_mib
            ));
        }
        if self.cpus == 0 || self.cpus > MAX_CPUS {
            return Err(format!(
                "{} CPUs is not between 1 and {MAX_CPUS}",
                self.cpus
            ));
        }
        // Whole seconds each: allow one of rounding per CPU.
        let most = (duration_s + 1).saturating_mul(u64::from(self.cpus));
        if self.cpu_s > most {
            return Err(format!(
                "{} CPU seconds in {duration_s} s on {} CPUs is impossible",
                self.cpu_s, self.cpus
            ));
        }
        Ok(())
    }
}

/// A module's last recorded build, as the planner reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildProfile {
    pub duration_s: u64,
    #[serde(flatten)]
    pub usage: BuildUsage,
}

impl BuildProfile {
    /// Memory one parallel job of this build needs next time: its largest
    /// process with headroom, in whole 64 MiB.
    pub fn memory_per_job_mib(&self) -> u64 {
        let need = self.usage.peak_memory_mib * MEMORY_HEADROOM_PERCENT / 100;
        need.div_ceil(64).max(1) * 64
    }

    /// Whether it kept (nearly) all its CPUs busy, so it might use more.
    pub fn saturated(&self) -> bool {
        let available = self.duration_s.max(1) * u64::from(self.usage.cpus);
        self.usage.cpu_s * 100 >= available * SATURATED_PERCENT
    }

    /// The CPUs it kept busy on average, rounded up: CPU time over wall
    /// time.
    pub fn busy_cpus(&self) -> u32 {
        let busy = self.usage.cpu_s.div_ceil(self.duration_s.max(1));
        u32::try_from(busy).unwrap_or(u32::MAX).max(1)
    }
}

/// The instance size of a platform's pool whose units have these profiles
/// (`None`: never built).
///
/// Starts from [`BatchNeeds::for_unit`]:
/// - memory: at least the largest memory per job of any unit (one job of
///   the biggest build must fit a node);
/// - vCPUs: when every unit was built before and none kept its CPUs busy,
///   `[min(default, t), min(default, 2t)]`, `t` the most CPUs any unit kept
///   busy rounded up to a power of two (at least 2); an unknown or
///   saturated unit keeps the default, since it might use every core.
pub fn pool_needs<'a>(
    platform: &Platform,
    units: impl IntoIterator<Item = Option<&'a BuildProfile>>,
) -> BatchNeeds {
    let mut needs = BatchNeeds::for_unit(platform);
    let mut all_known_unsaturated = true;
    let mut busy = 1u32;
    let mut memory_per_job = 0u64;
    let mut any = false;
    for unit in units {
        any = true;
        match unit {
            Some(p) => {
                memory_per_job = memory_per_job.max(p.memory_per_job_mib());
                busy = busy.max(p.busy_cpus());
                all_known_unsaturated &= !p.saturated();
            }
            None => all_known_unsaturated = false,
        }
    }
    if any && all_known_unsaturated {
        let target = busy.next_power_of_two().max(2);
        needs.min_vcpus = needs.min_vcpus.min(target);
        if let Some(max) = needs.max_vcpus {
            needs.max_vcpus = Some(max.min(target * 2).max(needs.min_vcpus));
        }
        needs.min_memory_mib = u64::from(needs.min_vcpus) * MEMORY_PER_VCPU_MIB;
    }
    needs.min_memory_mib = needs.min_memory_mib.max(memory_per_job);
    needs
}

/// Parallel jobs for a build whose jobs need `memory_per_job_mib` each on
/// a node with `node_memory_mib` and `cpus`: as many as fit the node's
/// usable memory ([`USABLE_MEMORY_PERCENT`]), at least one, at most `cpus`.
pub fn jobs_fitting(node_memory_mib: u64, cpus: u32, memory_per_job_mib: u64) -> u32 {
    let usable = node_memory_mib * USABLE_MEMORY_PERCENT / 100;
    let fit = usable / memory_per_job_mib.max(1);
    u32::try_from(fit).unwrap_or(u32::MAX).clamp(1, cpus.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::Platforms;

    fn profile(duration_s: u64, peak_memory_mib: u64, cpu_s: u64, cpus: u32) -> BuildProfile {
        BuildProfile {
            duration_s,
            usage: BuildUsage {
                peak_memory_mib,
                cpu_s,
                cpus,
            },
        }
    }

    fn cpu_platform() -> Platform {
        Platforms::default_set()
            .unwrap()
            .platforms
            .into_iter()
            .find(|p| p.gpu.is_none())
            .unwrap()
    }

    #[test]
    fn a_node_report_is_checked_against_its_wall_time() {
        assert!(profile(100, 512, 1600, 16).usage.check(100).is_ok());
        let e = profile(100, 512, 1800, 16).usage.check(100).unwrap_err();
        assert!(e.contains("1800 CPU seconds"), "{e}");
        assert!(profile(0, 1, 0, 0).usage.check(0).is_err(), "no CPUs");
        assert!(profile(0, 1, 0, MAX_CPUS + 1).usage.check(0).is_err());
        assert!(profile(0, MAX_PEAK_MEMORY_MIB + 1, 0, 1)
            .usage
            .check(0)
            .is_err());
        // A build of under a second may report a second of CPU per CPU.
        assert!(profile(0, 1, 4, 4).usage.check(0).is_ok());
    }

    #[test]
    fn memory_per_job_has_headroom_in_whole_64_mib() {
        assert_eq!(profile(1, 1000, 1, 1).memory_per_job_mib(), 1536);
        assert_eq!(profile(1, 1024, 1, 1).memory_per_job_mib(), 1536);
        assert_eq!(profile(1, 0, 1, 1).memory_per_job_mib(), 64);
    }

    #[test]
    fn serial_builds_get_a_small_pool_and_unknown_ones_the_default() {
        let p = cpu_platform();
        let default = BatchNeeds::for_unit(&p);
        // R-bundle-CRAN-like: 10 h, one core busy on 32.
        let serial = profile(36_000, 900, 36_000, 32);
        let n = pool_needs(&p, [Some(&serial)]);
        assert_eq!((n.min_vcpus, n.max_vcpus), (2, Some(4)));
        assert_eq!(n.min_memory_mib, 2 * MEMORY_PER_VCPU_MIB);
        // Three cores busy on average: 4-8.
        let three = profile(100, 900, 290, 16);
        let n = pool_needs(&p, [Some(&serial), Some(&three)]);
        assert_eq!((n.min_vcpus, n.max_vcpus), (4, Some(8)));
        // A unit never built, or one that kept all its cores busy, might
        // use every core: the default.
        assert_eq!(pool_needs(&p, [Some(&serial), None]), default);
        let busy = profile(100, 900, 1550, 16);
        assert!(busy.saturated());
        assert_eq!(pool_needs(&p, [Some(&serial), Some(&busy)]), default);
        assert_eq!(pool_needs(&p, []), default, "nothing known");
    }

    #[test]
    fn the_pool_fits_the_largest_process_with_headroom() {
        let p = cpu_platform();
        let default = BatchNeeds::for_unit(&p);
        // A 20 GiB link step: 30 GiB per node at least.
        let big = profile(3600, 20 * 1024, 3600 * 16, 16);
        let n = pool_needs(&p, [Some(&big), None]);
        assert_eq!(n.min_memory_mib, 30 * 1024);
        assert_eq!(
            (n.min_vcpus, n.max_vcpus),
            (default.min_vcpus, default.max_vcpus)
        );
        // Small processes leave the default floor.
        let small = profile(3600, 100, 3600 * 16, 16);
        assert_eq!(pool_needs(&p, [Some(&small)]), default);
    }

    #[test]
    fn gpu_pools_keep_their_open_ceiling() {
        let p = Platforms::default_set()
            .unwrap()
            .platforms
            .into_iter()
            .find(|p| p.gpu.is_some())
            .map(|mut p| {
                // A platform that builds on its GPU, not a CUDA overlay.
                p.base = None;
                p
            })
            .unwrap();
        let serial = profile(36_000, 900, 36_000, 32);
        let n = pool_needs(&p, [Some(&serial)]);
        assert_eq!(n.max_vcpus, None);
        assert_eq!(n.min_gpus, 1);
    }

    #[test]
    fn jobs_fit_the_nodes_usable_memory() {
        // 32 GiB, 16 CPUs, 4.5 GiB a job: 28.8 GiB usable, 6 jobs.
        assert_eq!(jobs_fitting(32 * 1024, 16, 4608), 6);
        // Small jobs: every CPU.
        assert_eq!(jobs_fitting(32 * 1024, 16, 512), 16);
        // A job bigger than the node: still one.
        assert_eq!(jobs_fitting(8 * 1024, 4, 64 * 1024), 1);
        assert_eq!(jobs_fitting(8 * 1024, 0, 0), 1);
    }
}
