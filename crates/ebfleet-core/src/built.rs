//! What a platform has already built, as the planner subtracts it: module
//! name → the easyconfig sha256 it was built from (`None` when unknown: then
//! any checksum counts as built). Read from DynamoDB by the Plan Lambda, or
//! from a JSON file by `ebfleet plan --built`.

use serde::Deserialize;
use std::collections::HashMap;

/// What a platform has already built: module name → easyconfig sha256 it
/// was built from (`None` when unknown: then any checksum counts as built).
pub type Built = HashMap<String, Option<String>>;

/// What a platform's records tell the planner: what is built (and from
/// which easyconfig), and how long the builds it recorded took.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recorded {
    pub built: Built,
    /// Module → seconds its last recorded build took.
    pub durations: HashMap<String, u64>,
    /// Module → its last recorded build with what it used, where the node
    /// measured it.
    pub profiles: HashMap<String, crate::sizing::BuildProfile>,
    /// Built module → when its record last changed (Unix seconds).
    pub built_at: HashMap<String, u64>,
    /// Module → its last failure, for modules recorded failed.
    pub failed: HashMap<String, crate::failure_memory::PastFailure>,
}

/// One entry of a "built" JSON list: a module name, or a record.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum BuiltEntry {
    Module(String),
    Record {
        module: String,
        #[serde(default)]
        easyconfig_sha256: Option<String>,
    },
}

/// Read `{"<platform>": [module | {module, easyconfig_sha256}], ...}`.
pub fn parse_built(json: &str) -> Result<HashMap<String, Built>, serde_json::Error> {
    let raw: HashMap<String, Vec<BuiltEntry>> = serde_json::from_str(json)?;
    Ok(raw
        .into_iter()
        .map(|(platform, entries)| {
            let built = entries
                .into_iter()
                .map(|e| match e {
                    BuiltEntry::Module(m) => (m, None),
                    BuiltEntry::Record {
                        module,
                        easyconfig_sha256,
                    } => (module, easyconfig_sha256),
                })
                .collect();
            (platform, built)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_json_accepts_names_and_records() {
        let b = parse_built(r#"{"amzn-2023_graviton-3": ["GCC/12.3.0", {"module": "zlib/1.3", "easyconfig_sha256": "ab"}]}"#).unwrap();
        let g = &b["amzn-2023_graviton-3"];
        assert_eq!(g["GCC/12.3.0"], None);
        assert_eq!(g["zlib/1.3"], Some("ab".into()));
    }
}
