//! A batch's leases as the node reads them: which of the batch's modules
//! this batch may build, and which it must leave alone because another
//! execution holds them or has built them since the plan was made.
//!
//! The `Lease` state (the record Lambda, before `Sync`) decides each module
//! with [`crate::record::decide_lease`], takes the leases it may by
//! conditional write, and writes one [`BatchLeases`] file beside the batch
//! file ([`leases_key`]). The node's `build` skips every module the file
//! does not list as leased, so two executions planning the same module
//! build it once; the record of a skipped module stays with its holder.

use crate::layout::batch_prefix;
use crate::names::{ExecutionName, ModuleName, PlatformName};
use serde::{Deserialize, Serialize};

/// `plans/<execution>/<platform>/<batch>.leases.json`.
pub fn leases_key(execution: &ExecutionName, platform: &PlatformName, batch: usize) -> String {
    format!("{}{batch}.leases.json", batch_prefix(execution, platform))
}

/// A module another owner holds a live lease on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldModule {
    pub module: ModuleName,
    /// See [`crate::record::lease_owner`].
    pub owner: String,
    /// Unix seconds.
    pub expires: u64,
}

/// What the `Lease` state decided for every module of one batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchLeases {
    pub execution: ExecutionName,
    pub platform: PlatformName,
    pub batch: usize,
    /// This batch's lease owner ([`crate::record::lease_owner`]).
    pub owner: String,
    /// Unix seconds when this batch's leases die unless renewed.
    pub expires: u64,
    /// Leased to this batch: build them.
    pub leased: Vec<ModuleName>,
    /// Held by someone else: skip them.
    pub held: Vec<HeldModule>,
    /// Built from the same easyconfig checksum since the plan: skip them.
    pub already_built: Vec<ModuleName>,
}

impl BatchLeases {
    /// Why the batch must not build `module`, or `None` when it may (it is
    /// leased to this batch). A module the file does not mention is not
    /// leased: skip it rather than risk building it twice.
    pub fn skip_reason(&self, module: &ModuleName) -> Option<String> {
        if self.leased.contains(module) {
            return None;
        }
        if let Some(h) = self.held.iter().find(|h| &h.module == module) {
            return Some(format!(
                "leased to {} until {} (another execution is building it)",
                h.owner, h.expires
            ));
        }
        if self.already_built.contains(module) {
            return Some("already built from the same easyconfig".into());
        }
        Some(format!("not leased to {}", self.owner))
    }

    /// The file as JSON text.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("leases serialize")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str) -> ModuleName {
        s.parse().unwrap()
    }

    fn leases() -> BatchLeases {
        BatchLeases {
            execution: "run-1".parse().unwrap(),
            platform: "amzn-2023_epyc-gen-4".parse().unwrap(),
            batch: 2,
            owner: "run-1#batch-2".into(),
            expires: 1_900_000_000,
            leased: vec![m("zlib/1.3")],
            held: vec![HeldModule {
                module: m("bzip2/1.0.8"),
                owner: "run-0#batch-0".into(),
                expires: 1_800_000_000,
            }],
            already_built: vec![m("xz/5.4")],
        }
    }

    #[test]
    fn key_sits_beside_the_batch_file() {
        let l = leases();
        assert_eq!(
            leases_key(&l.execution, &l.platform, l.batch),
            "plans/run-1/amzn-2023_epyc-gen-4/2.leases.json"
        );
    }

    #[test]
    fn only_leased_modules_are_built() {
        let l = leases();
        assert_eq!(l.skip_reason(&m("zlib/1.3")), None);
        assert!(l
            .skip_reason(&m("bzip2/1.0.8"))
            .unwrap()
            .contains("run-0#batch-0"));
        assert!(l
            .skip_reason(&m("xz/5.4"))
            .unwrap()
            .contains("already built"));
        assert!(l
            .skip_reason(&m("curl/8.0"))
            .unwrap()
            .contains("not leased"));
    }

    #[test]
    fn round_trips_as_json() {
        let l = leases();
        let back: BatchLeases = serde_json::from_str(&l.to_json()).unwrap();
        assert_eq!(back, l);
    }
}
