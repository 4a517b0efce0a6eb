//! How long a module takes to build, before anything was recorded: a
//! duration model `{"default_s", "by_name", "by_module"}` (a module's own
//! figure over its software name's over the default). The shipped model
//! (`data/durations.json`) holds rough figures for the long builds of the
//! EasyBuild stack on a node of ~16 vCPUs; recorded durations replace it
//! where a module was built before.

use ebfleet_core::built::SameSoftware;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// The shipped model.
pub const SHIPPED: &str = include_str!("../data/durations.json");

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DurationModel {
    pub default_s: u64,
    #[serde(default)]
    pub by_name: HashMap<String, u64>,
    #[serde(default)]
    pub by_module: HashMap<String, u64>,
}

#[derive(Debug, thiserror::Error)]
#[error("durations file: {0}")]
pub struct DurationsError(#[from] serde_json::Error);

impl DurationModel {
    pub fn shipped() -> Self {
        Self::from_json(SHIPPED).expect("the shipped duration model parses")
    }

    pub fn from_json(text: &str) -> Result<Self, DurationsError> {
        Ok(serde_json::from_str(text)?)
    }

    /// Seconds for `module`: what its platform recorded for it, else for
    /// another version of its software (the longest), else this model's.
    pub fn with_recorded<'a>(
        &'a self,
        recorded: &'a HashMap<String, u64>,
    ) -> impl Fn(&str) -> u64 + 'a {
        let same = SameSoftware::new(recorded, |&d| d);
        move |m| same.get(m).copied().unwrap_or_else(|| self.estimate(m))
    }

    /// Seconds for `module` (`Name/version`).
    pub fn estimate(&self, module: &str) -> u64 {
        if let Some(&s) = self.by_module.get(module) {
            return s;
        }
        let name = module.split_once('/').map_or(module, |(n, _)| n);
        self.by_name.get(name).copied().unwrap_or(self.default_s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_over_name_over_default() {
        let m = DurationModel::from_json(
            r#"{"default_s": 300, "by_name": {"GCCcore": 3600}, "by_module": {"GCCcore/13.2.0": 3700}}"#,
        )
        .unwrap();
        assert_eq!(m.estimate("GCCcore/13.2.0"), 3700);
        assert_eq!(m.estimate("GCCcore/12.3.0"), 3600);
        assert_eq!(m.estimate("zlib/1.3"), 300);
        assert!(DurationModel::from_json(r#"{"by_name": {}}"#).is_err());
    }

    #[test]
    fn recorded_durations_come_before_the_model() {
        let m = DurationModel::from_json(r#"{"default_s": 300, "by_name": {"GCCcore": 3600}}"#)
            .unwrap();
        let recorded = HashMap::from([
            ("GCCcore/13.2.0".to_string(), 2000),
            ("zlib/1.3".to_string(), 20),
        ]);
        let estimate = m.with_recorded(&recorded);
        assert_eq!(estimate("GCCcore/13.2.0"), 2000);
        assert_eq!(estimate("GCCcore/14.2.0"), 2000, "another version's");
        assert_eq!(estimate("zlib/1.3.1"), 20);
        assert_eq!(estimate("CMake/3.29"), 300, "the model's");
    }

    #[test]
    fn the_shipped_model_knows_the_long_builds() {
        let m = DurationModel::shipped();
        assert!(m.estimate("R-bundle-CRAN/2024.11-foss-2024a") >= 10 * 3600);
        assert!(m.estimate("PyTorch/2.6.0-foss-2024a") >= 8 * 3600);
        assert!(m.estimate("zlib/1.3.1-GCCcore-14.2.0") < 600);
    }
}
