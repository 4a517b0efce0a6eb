//! What the node measures of itself and of its builds: its CPUs and
//! memory, and what the processes it waited for used (`getrusage`).

/// The CPUs this process may run on.
pub fn cpus() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| u32::try_from(n.get()).unwrap_or(u32::MAX))
}

/// The machine's memory in MiB (`MemTotal` of `/proc/meminfo`), if it can
/// be read.
pub fn memory_mib() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    mem_total_mib(&text)
}

fn mem_total_mib(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line
        .trim_start_matches("MemTotal:")
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024)
}

/// Whether this process's effective user is root (Linux: `/proc/self/status`).
pub fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// What the children this process has waited for used, together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChildrenUsage {
    /// User plus system CPU time, milliseconds.
    pub cpu_ms: u64,
    /// The largest resident set of any one of them (and of what they
    /// waited for), KiB.
    pub max_rss_kib: u64,
}

/// `getrusage(RUSAGE_CHILDREN)`.
pub fn children_usage() -> ChildrenUsage {
    // SAFETY: getrusage writes one rusage into the zeroed struct it is
    // given and reads nothing else.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut u) };
    if rc != 0 {
        return ChildrenUsage {
            cpu_ms: 0,
            max_rss_kib: 0,
        };
    }
    let ms = |t: libc::timeval| {
        u64::try_from(t.tv_sec).unwrap_or(0) * 1000 + u64::try_from(t.tv_usec).unwrap_or(0) / 1000
    };
    ChildrenUsage {
        cpu_ms: ms(u.ru_utime) + ms(u.ru_stime),
        // Linux reports it in KiB.
        max_rss_kib: u64::try_from(u.ru_maxrss).unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_mem_total() {
        let text = "MemTotal:       16318464 kB\nMemFree:         1234 kB\n";
        assert_eq!(mem_total_mib(text), Some(15936));
        assert_eq!(mem_total_mib("MemFree: 1 kB\n"), None);
        assert_eq!(mem_total_mib("MemTotal: lots\n"), None);
        assert!(memory_mib().unwrap() > 0, "this machine has memory");
        assert!(cpus() >= 1);
    }

    #[test]
    fn a_waited_child_is_counted() {
        let before = children_usage();
        // A child that keeps ~64 MiB resident and burns some CPU.
        let status = std::process::Command::new("python3")
            .args([
                "-c",
                "b = bytearray(64 << 20)\nfor i in range(0, len(b), 4096): b[i] = 1\nsum(range(3_000_000))",
            ])
            .status()
            .expect("python3 runs");
        assert!(status.success());
        let after = children_usage();
        assert!(after.max_rss_kib >= 64 * 1024, "{after:?}");
        assert!(after.cpu_ms > before.cpu_ms, "{before:?} {after:?}");
    }
}
