//! What a platform has already built, as the planner subtracts it: module
//! name → the easyconfig sha256 it was built from (`None` when unknown: then
//! any checksum counts as built). Read from DynamoDB by the Plan Lambda, or
//! from a JSON file by `ebfleet plan --built`. And what else the records
//! tell the planner ([`Recorded`], [`SameSoftware`]).

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
    /// Built module → its tarball's sha256.
    pub tarballs: HashMap<String, String>,
    /// Built module → when its record last changed (Unix seconds).
    pub built_at: HashMap<String, u64>,
    /// Module → its last failure, for modules recorded failed.
    pub failed: HashMap<String, crate::failure_memory::PastFailure>,
}

/// A module's recorded value, else that of the version of the same
/// software whose build took longest (how a recorded duration or profile
/// stands in for a version never built).
pub struct SameSoftware<'a, T> {
    by_module: &'a HashMap<String, T>,
    /// Per name, the longest build's module (the greatest name on a tie,
    /// so the choice does not depend on the map's order) and value.
    by_name: HashMap<&'a str, (&'a str, &'a T)>,
}

impl<'a, T> SameSoftware<'a, T> {
    pub fn new(by_module: &'a HashMap<String, T>, duration_s: impl Fn(&T) -> u64) -> Self {
        let mut by_name: HashMap<&str, (&str, &T)> = HashMap::new();
        for (m, v) in by_module {
            let e = by_name.entry(software_of(m)).or_insert((m, v));
            if (duration_s(v), m.as_str()) > (duration_s(e.1), e.0) {
                *e = (m, v);
            }
        }
        SameSoftware { by_module, by_name }
    }

    pub fn get(&self, module: &str) -> Option<&'a T> {
        self.by_module
            .get(module)
            .or_else(|| self.by_name.get(software_of(module)).map(|&(_, v)| v))
    }
}

/// `Name` of `Name/version`.
pub fn software_of(module: &str) -> &str {
    module.split_once('/').map_or(module, |(n, _)| n)
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
    fn a_version_never_built_takes_the_longest_build_of_its_software() {
        let d: HashMap<String, u64> = [
            ("GCC/12.3.0", 3000),
            ("GCC/13.2.0", 3600),
            ("GCC/14.1.0", 3600),
            ("zlib/1.3", 20),
        ]
        .into_iter()
        .map(|(m, s)| (m.to_string(), s))
        .collect();
        let same = SameSoftware::new(&d, |&s| s);
        assert_eq!(same.get("GCC/12.3.0"), Some(&3000), "its own first");
        assert_eq!(same.get("GCC/15.0.0"), Some(&3600));
        assert_eq!(same.get("zlib/1.3.1"), Some(&20));
        assert_eq!(same.get("CMake/3.29"), None);
        // A tie goes to the greatest module name, whatever the map's order.
        let profiles: HashMap<String, (u64, &str)> =
            [("GCC/13.2.0", (3600, "13")), ("GCC/14.1.0", (3600, "14"))]
                .into_iter()
                .map(|(m, v)| (m.to_string(), v))
                .collect();
        let same = SameSoftware::new(&profiles, |v| v.0);
        assert_eq!(same.get("GCC/15.0.0").map(|v| v.1), Some("14"));
    }

    #[test]
    fn built_json_accepts_names_and_records() {
        let b = parse_built(r#"{"amzn-2023_graviton-3": ["GCC/12.3.0", {"module": "zlib/1.3", "easyconfig_sha256": "ab"}]}"#).unwrap();
        let g = &b["amzn-2023_graviton-3"];
        assert_eq!(g["GCC/12.3.0"], None);
        assert_eq!(g["zlib/1.3"], Some("ab".into()));
    }
}
