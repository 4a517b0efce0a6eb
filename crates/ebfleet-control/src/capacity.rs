//! Capacity, at the start of a platform's run ([`pool`]): the platform's
//! node pool — the instance types of its families that fit a unit, ranked
//! by spot price, the baked node image or the newest stock AMI for its
//! architecture (or the pinned one),
//! a launch template with a root volume to build on and user data that
//! bootstraps the node ([`node`]), and an empty Auto Scaling group over it
//! (`ebfleet_aws::autoscaling`) that the scheduler grows and shrinks.
//!
//! Capacity, at the start of a unit ([`claim`]): the node the scheduler
//! chose is still there and online in SSM; otherwise the unit fails as
//! `ebfleet.NodeLost` before anything is sent to it.
//!
//! Settings from the stack: [`var::INSTANCE_PROFILE_ARN`],
//! [`var::SECURITY_GROUP_ID`], [`var::SUBNET_IDS`] (required),
//! [`var::PINNED_AMI`], [`var::NODE_IMAGE_PREFIX`] (the baked images,
//! [`image`]), [`var::MAX_TYPES`], [`var::ROOT_VOLUME_GIB`],
//! [`var::NODES_PER_PLATFORM`] and [`var::PLATFORMS`] (optional); the
//! bucket's `ebfleet-node` binary for the platform's architecture
//! (`ebfleet_core::userdata::node_binary_key`).

pub mod image;
pub mod node;

use crate::env::{self, var, EnvError, Lookup};
use crate::Env;
use ebfleet_aws::autoscaling::PoolSpec;
use ebfleet_aws::ec2::{apply_spot_prices, Ec2Error, LaunchContext};
use ebfleet_aws::s3::S3Error;
use ebfleet_aws::ssm::SsmError;
use ebfleet_aws::CallError;
use ebfleet_core::build_graph::{graph_key, BuildGraph};
use ebfleet_core::capacity::{
    choose, AmiError, AmiSource, BatchNeeds, CapacityError, CapacityOptions, CapacityPlan,
    InstanceType, LaunchSpec, LaunchSpecError, Purchase, RootVolume, DEFAULT_ROOT_VOLUME_GIB,
};
use ebfleet_core::names::{ExecutionName, PlatformName};
use ebfleet_core::platform::{Platform, PlatformError, Platforms};
use ebfleet_core::sizing::pool_needs;
use ebfleet_core::userdata::UserDataError;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// `{"pool": {...}}` (a platform's `Capacity`) or `{"claim": {...}}` (a
/// unit's).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Input {
    Pool { pool: PoolInput },
    Claim { claim: ClaimInput },
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct PoolInput {
    pub execution: ExecutionName,
    pub platform: PlatformName,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ClaimInput {
    pub instance_id: String,
}

/// What the pool is: its spec (the scheduler's input) and how it buys.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct PoolOutput {
    pub pool: PoolSpec,
    pub purchase: Purchase,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ClaimOutput {
    pub instance_id: String,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Env(#[from] EnvError),
    #[error("environment variable {var}: {reason}")]
    Setting { var: &'static str, reason: String },
    #[error("platform {platform}: {source}")]
    Platform {
        platform: String,
        source: PlatformError,
    },
    #[error("platform {platform}: listing instance types: {source}")]
    Catalog { platform: String, source: Ec2Error },
    #[error("platform {platform}: spot prices: {source}")]
    SpotPrices { platform: String, source: Ec2Error },
    #[error("platform {platform}: choosing instance types: {source}")]
    Choose {
        platform: String,
        source: CapacityError,
    },
    #[error("platform {platform}: AMI: {source}")]
    Ami { platform: String, source: AmiError },
    #[error("platform {platform}: resolving the AMI: {source}")]
    AmiLookup { platform: String, source: SsmError },
    #[error("platform {platform}: launch spec: {source}")]
    LaunchSpec {
        platform: String,
        source: LaunchSpecError,
    },
    #[error("platform {platform}: launch template: {source}")]
    Launch { platform: String, source: Ec2Error },
    #[error("platform {platform}: {source}")]
    Pool { platform: String, source: CallError },
    #[error("build graph {key}: {reason}")]
    Graph { key: String, reason: String },
    #[error("instance {instance_id} is not online in SSM (lost, or not a node any more)")]
    NotOnline { instance_id: String },
    #[error("instance {instance_id}: {source}")]
    Claim {
        instance_id: String,
        source: SsmError,
    },
    #[error(
        "platform {platform}: no ebfleet-node for {arch} at s3://{bucket}/{key}: \
         upload one with scripts/publish-node.sh (infra/OPERATOR.md)"
    )]
    NodeBinaryMissing {
        platform: String,
        arch: String,
        bucket: String,
        key: String,
    },
    #[error(
        "platform {platform}: s3://{bucket}/{key} has no sha256 metadata of 64 hex digits \
         (found: {found}): upload it again with scripts/publish-node.sh"
    )]
    NodeBinaryChecksum {
        platform: String,
        bucket: String,
        key: String,
        found: String,
    },
    #[error("platform {platform}: ebfleet-node: {source}")]
    NodeBinary { platform: String, source: S3Error },
    #[error("platform {platform}: {source}")]
    UserData {
        platform: String,
        source: UserDataError,
    },
}

impl crate::failure::Failure for Error {
    fn kind(&self) -> crate::failure::Kind {
        use crate::failure::Kind;
        match self {
            Error::Env(_)
            | Error::Setting { .. }
            | Error::Platform { .. }
            | Error::Ami { .. }
            | Error::LaunchSpec { .. }
            | Error::NodeBinaryMissing { .. }
            | Error::NodeBinaryChecksum { .. }
            | Error::UserData { .. } => Kind::Invalid,
            // Access denied and the like: the stack's configuration.
            Error::NodeBinary { source, .. } => {
                Kind::retry_or(source.is_retryable(), Kind::Invalid)
            }
            Error::Catalog { source, .. }
            | Error::SpotPrices { source, .. }
            | Error::Launch { source, .. } => source.kind(),
            Error::Choose { .. } => Kind::NoCapacity,
            Error::Graph { .. } => Kind::Failed,
            Error::AmiLookup { source, .. } => source.kind(),
            Error::Pool { source, .. } => Kind::retry_or(source.transient, Kind::Failed),
            Error::NotOnline { .. } => Kind::NodeLost,
            Error::Claim { source, .. } => match source.kind() {
                Kind::Transient => Kind::Transient,
                _ => Kind::NodeLost,
            },
        }
    }
}

/// What the launch needs from the stack.
#[derive(Debug, Clone)]
pub struct Settings {
    pub platforms: Platforms,
    pub instance_profile_arn: String,
    pub security_group_id: String,
    pub subnet_ids: Vec<String>,
    pub pinned_ami: Option<String>,
    pub max_types: usize,
    pub root_volume: RootVolume,
    /// Most nodes of a pool at once.
    pub nodes_per_platform: u32,
    /// Where the stack's bake records its node images (`None`: no baked
    /// images, the stock AMI).
    pub node_image_prefix: Option<String>,
}

impl Settings {
    /// From `lookup` (a variable's value, `None` when unset); empty values
    /// count as unset.
    pub fn from_lookup(lookup: impl Lookup) -> Result<Self, Error> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let required = |name: &'static str| get(name).ok_or(EnvError::Missing(name));
        Ok(Settings {
            platforms: env::platforms(&get).map_err(|source| Error::Platform {
                platform: "*".into(),
                source,
            })?,
            instance_profile_arn: required(var::INSTANCE_PROFILE_ARN)?,
            security_group_id: required(var::SECURITY_GROUP_ID)?,
            subnet_ids: parse_subnets(&required(var::SUBNET_IDS)?)?,
            pinned_ami: get(var::PINNED_AMI).map(|v| v.trim().to_string()),
            max_types: parse_max_types(get(var::MAX_TYPES).as_deref())?,
            node_image_prefix: env::node_image_prefix(&get)?,
            root_volume: parse_root_volume(get(var::ROOT_VOLUME_GIB).as_deref())?,
            nodes_per_platform: match get(var::NODES_PER_PLATFORM) {
                None => ebfleet_scheduler::Settings::default().max_nodes,
                Some(v) => v
                    .trim()
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or(Error::Setting {
                        var: var::NODES_PER_PLATFORM,
                        reason: format!("{v:?} is not a whole number above 0"),
                    })?,
            },
        })
    }
}

/// The nodes' root volume: [`DEFAULT_ROOT_VOLUME_GIB`] when unset, else a
/// whole number of GiB in [`RootVolume::gp3`]'s range.
pub fn parse_root_volume(text: Option<&str>) -> Result<RootVolume, Error> {
    let setting = |reason: String| Error::Setting {
        var: var::ROOT_VOLUME_GIB,
        reason,
    };
    let gib = match text {
        None => DEFAULT_ROOT_VOLUME_GIB,
        Some(t) => t
            .trim()
            .parse::<u32>()
            .map_err(|_| setting(format!("{t:?} is not a whole number of GiB")))?,
    };
    RootVolume::gp3(gib).map_err(|e| setting(e.to_string()))
}

/// Subnet ids separated by commas (spaces allowed); at least one.
pub fn parse_subnets(text: &str) -> Result<Vec<String>, Error> {
    let ids: Vec<String> = text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if ids.is_empty() {
        return Err(Error::Setting {
            var: var::SUBNET_IDS,
            reason: "no subnet id".into(),
        });
    }
    Ok(ids)
}

/// The number of types to offer; the default of [`CapacityOptions`] when
/// unset.
pub fn parse_max_types(text: Option<&str>) -> Result<usize, Error> {
    match text {
        None => Ok(CapacityOptions::default().max_types),
        Some(t) => match t.trim().parse::<usize>() {
            Ok(n) if n >= 1 => Ok(n),
            _ => Err(Error::Setting {
                var: var::MAX_TYPES,
                reason: format!("{t:?} is not a whole number of at least 1"),
            }),
        },
    }
}

/// The platform named exactly `name`.
pub fn find_platform(platforms: &Platforms, name: &str) -> Result<Platform, Error> {
    platforms
        .platforms
        .iter()
        .find(|p| p.name == name)
        .cloned()
        .ok_or_else(|| Error::Platform {
            platform: name.to_string(),
            source: PlatformError::Unknown {
                query: name.to_string(),
                known: platforms
                    .platforms
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            },
        })
}

/// The capacity plan of `platform`'s pool: the catalog with its spot
/// prices, sized for `needs` (from the units' recorded builds,
/// [`pool_needs`]), ranked by [`choose`]. Sizing from records never makes a
/// platform unbuildable: when nothing of the catalog fits them, the
/// default sizing ([`BatchNeeds::for_unit`]) is used.
pub fn plan(
    platform: &Platform,
    mut catalog: Vec<InstanceType>,
    prices: &HashMap<String, f64>,
    needs: &BatchNeeds,
    max_types: usize,
) -> Result<CapacityPlan, Error> {
    apply_spot_prices(&mut catalog, prices);
    let opts = CapacityOptions {
        max_types,
        ..CapacityOptions::default()
    };
    let default = BatchNeeds::for_unit(platform);
    let chosen = match choose(platform, &catalog, needs, &opts) {
        Err(e @ CapacityError::NoneFits { .. }) if *needs != default => {
            tracing::warn!(platform = %platform.name, error = %e, "the recorded sizing fits no type: the default sizing");
            choose(platform, &catalog, &default, &opts)
        }
        chosen => chosen,
    };
    chosen.map_err(|source| Error::Choose {
        platform: platform.name.clone(),
        source,
    })
}

/// What `platform`'s pool needs for the units of its build graph at
/// `key`: sized from their recorded builds ([`pool_needs`]).
async fn needs_of_graph(env: &Env, platform: &Platform, key: &str) -> Result<BatchNeeds, Error> {
    let graph_err = |reason: String| Error::Graph {
        key: key.to_string(),
        reason,
    };
    let bytes = env
        .store
        .get_bytes(key)
        .await
        .map_err(|e| graph_err(e.to_string()))?;
    let text = std::str::from_utf8(&bytes).map_err(|_| graph_err("not UTF-8".into()))?;
    let graph = BuildGraph::from_json(text).map_err(|e| graph_err(e.to_string()))?;
    let units = graph
        .modules
        .iter()
        .filter(|m| !m.built && m.held.is_none())
        .map(|m| m.profile.as_ref());
    Ok(pool_needs(platform, units))
}

/// The pool's Auto Scaling group: `ebfleet-<execution>-<platform>`.
pub fn pool_name(execution: &ExecutionName, platform: &PlatformName) -> String {
    format!("ebfleet-{execution}-{platform}")
}

pub async fn handle(
    env: &Env,
    settings: &Settings,
    input: Input,
) -> Result<serde_json::Value, Error> {
    fn json<T: Serialize>(v: Result<T, Error>) -> Result<serde_json::Value, Error> {
        v.map(|o| serde_json::to_value(o).unwrap_or_default())
    }
    match input {
        Input::Pool { pool: p } => json(pool(env, settings, p).await),
        Input::Claim { claim: c } => json(claim(env, c).await),
    }
}

/// The unit's node is online in SSM.
pub async fn claim(env: &Env, c: ClaimInput) -> Result<ClaimOutput, Error> {
    let ids = vec![c.instance_id.clone()];
    let online = env.ssm.online(&ids).await.map_err(|source| Error::Claim {
        instance_id: c.instance_id.clone(),
        source,
    })?;
    if !online.contains(&c.instance_id) {
        return Err(Error::NotOnline {
            instance_id: c.instance_id,
        });
    }
    Ok(ClaimOutput {
        instance_id: c.instance_id,
    })
}

/// Make the platform's pool: the node's user data first (a missing
/// `ebfleet-node` stops here, before EC2 is asked anything), then the
/// types, the AMI, the launch template and the empty group.
pub async fn pool(env: &Env, settings: &Settings, input: PoolInput) -> Result<PoolOutput, Error> {
    let name = input.platform.as_str();
    let platform = find_platform(&settings.platforms, name)?;
    let user_data = node::user_data(&env.store, &platform).await?;

    let catalog = env
        .nodes
        .instance_types(&platform.families)
        .await
        .map_err(|source| Error::Catalog {
            platform: name.to_string(),
            source,
        })?;
    let names: Vec<String> = catalog.iter().map(|t| t.name.clone()).collect();
    let prices = env
        .nodes
        .spot_prices(&names)
        .await
        .map_err(|source| Error::SpotPrices {
            platform: name.to_string(),
            source,
        })?;
    let graph = graph_key(&input.execution, &input.platform);
    let needs = needs_of_graph(env, &platform, &graph).await?;
    let plan = plan(&platform, catalog, &prices, &needs, settings.max_types)?;

    let ami =
        AmiSource::for_platform(&platform, settings.pinned_ami.as_deref()).map_err(|source| {
            Error::Ami {
                platform: name.to_string(),
                source,
            }
        })?;
    let ami = image::prefer_node_image(
        env,
        settings.node_image_prefix.as_deref(),
        &platform,
        image::kind_for(&plan),
        ami,
    )
    .await;
    let ami_id = env
        .ssm
        .ami_id(&ami)
        .await
        .map_err(|source| Error::AmiLookup {
            platform: name.to_string(),
            source,
        })?;
    let spec = LaunchSpec::new(input.execution.as_str(), &platform, "pool", &plan, ami)
        .map_err(|source| Error::LaunchSpec {
            platform: name.to_string(),
            source,
        })?
        .with_root_volume(settings.root_volume.clone());
    let ctx = LaunchContext {
        ami_id,
        instance_profile_arn: settings.instance_profile_arn.clone(),
        security_group_id: settings.security_group_id.clone(),
        subnet_ids: settings.subnet_ids.clone(),
        user_data: Some(user_data.gzip),
    };
    let launch_template_id = env
        .nodes
        .launch_template(&spec, &ctx)
        .await
        .map_err(|source| Error::Launch {
            platform: name.to_string(),
            source,
        })?;
    let on_demand = !plan.purchase.is_spot();
    let pool = PoolSpec {
        name: pool_name(&input.execution, &input.platform),
        launch_template_id,
        instance_types: if on_demand {
            plan.fallback_type_names()
        } else {
            plan.type_names()
        },
        subnet_ids: settings.subnet_ids.clone(),
        max_size: settings.nodes_per_platform,
        tags: spec.tags.clone(),
        on_demand,
    };
    env.pools
        .create(&pool)
        .await
        .map_err(|source| Error::Pool {
            platform: name.to_string(),
            source,
        })?;
    tracing::info!(platform = name, pool = %pool.name, types = ?pool.instance_types, "pool created");
    Ok(PoolOutput {
        pool,
        purchase: plan.purchase,
    })
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod unit_tests {
    use super::*;
    use crate::testing::lookup;
    use ebfleet_core::Arch;

    fn required_vars() -> Vec<(&'static str, &'static str)> {
        vec![
            (
                var::INSTANCE_PROFILE_ARN,
                "arn:aws:iam::123456789012:instance-profile/node",
            ),
            (var::SECURITY_GROUP_ID, "sg-0123456789abcdef0"),
            (var::SUBNET_IDS, "subnet-1, subnet-2,,"),
        ]
    }

    #[test]
    fn settings_read_required_and_optional_variables() {
        let s = Settings::from_lookup(lookup(&required_vars())).unwrap();
        assert_eq!(s.subnet_ids, ["subnet-1", "subnet-2"]);
        assert_eq!(s.pinned_ami, None);
        assert_eq!(s.max_types, CapacityOptions::default().max_types);
        assert_eq!(s.nodes_per_platform, 32);

        let mut v = required_vars();
        v.push((var::PINNED_AMI, "ami-0123456789abcdef0"));
        v.push((var::MAX_TYPES, "3"));
        let s = Settings::from_lookup(lookup(&v)).unwrap();
        assert_eq!(s.pinned_ami.as_deref(), Some("ami-0123456789abcdef0"));
        assert_eq!(s.max_types, 3);
    }

    #[test]
    fn nodes_per_platform_defaults_to_32_and_is_a_whole_number_above_0() {
        let mut v = required_vars();
        v.push((var::NODES_PER_PLATFORM, " 8 "));
        let s = Settings::from_lookup(lookup(&v)).unwrap();
        assert_eq!(s.nodes_per_platform, 8);
        let mut v = required_vars();
        v.push((var::NODES_PER_PLATFORM, "  "));
        let s = Settings::from_lookup(lookup(&v)).unwrap();
        assert_eq!(s.nodes_per_platform, 32, "blank is unset");
        for bad in ["0", "x", "-1", "1.5"] {
            let mut v = required_vars();
            v.push((var::NODES_PER_PLATFORM, bad));
            let e = Settings::from_lookup(lookup(&v)).unwrap_err();
            assert!(
                matches!(
                    e,
                    Error::Setting {
                        var: var::NODES_PER_PLATFORM,
                        ..
                    }
                ),
                "{bad}: {e:?}"
            );
            assert!(e.to_string().contains(var::NODES_PER_PLATFORM), "{e}");
            assert_eq!(
                crate::failure::Failure::kind(&e),
                crate::failure::Kind::Invalid
            );
        }
    }

    #[test]
    fn settings_name_the_missing_or_bad_variable() {
        let v: Vec<_> = required_vars()
            .into_iter()
            .filter(|(k, _)| *k != var::SECURITY_GROUP_ID)
            .collect();
        let e = Settings::from_lookup(lookup(&v)).unwrap_err();
        assert!(e.to_string().contains(var::SECURITY_GROUP_ID), "{e}");

        let mut v = required_vars();
        v.retain(|(k, _)| *k != var::SUBNET_IDS);
        v.push((var::SUBNET_IDS, " , "));
        let e = Settings::from_lookup(lookup(&v)).unwrap_err();
        assert!(e.to_string().contains(var::SUBNET_IDS), "{e}");

        for bad in ["0", "-1", "many"] {
            let e = parse_max_types(Some(bad)).unwrap_err();
            assert!(e.to_string().contains(var::MAX_TYPES), "{e}");
        }
    }

    #[test]
    fn root_volume_defaults_to_the_templates_and_is_range_checked() {
        let s = Settings::from_lookup(lookup(&required_vars())).unwrap();
        assert_eq!(s.root_volume, RootVolume::gp3(200).unwrap());
        let mut v = required_vars();
        v.push((var::ROOT_VOLUME_GIB, " 500 "));
        let s = Settings::from_lookup(lookup(&v)).unwrap();
        assert_eq!(s.root_volume.size_gib, 500);
        for bad in ["8", "29", "16385", "-1", "200GiB", "1e3"] {
            let e = parse_root_volume(Some(bad)).unwrap_err();
            assert!(matches!(e, Error::Setting { .. }), "{bad}: {e:?}");
            assert!(e.to_string().contains(var::ROOT_VOLUME_GIB), "{e}");
        }
    }

    #[test]
    fn finds_shipped_platforms_by_full_name_only() {
        let all = Platforms::default_set().unwrap();
        let first = &all.platforms[0];
        assert_eq!(find_platform(&all, &first.name).unwrap().name, first.name);
        let e = find_platform(&all, "amzn-2023_no-such-cpu").unwrap_err();
        assert!(e.to_string().contains("amzn-2023_no-such-cpu"), "{e}");
        assert!(e.to_string().contains(&first.name), "{e}");
    }

    fn cpu_platform() -> Platform {
        Platforms::default_set()
            .unwrap()
            .platforms
            .into_iter()
            .find(|p| p.gpu.is_none())
            .expect("a CPU platform is shipped")
    }

    #[test]
    fn plan_ranks_fitting_types_by_spot_price() {
        let p = cpu_platform();
        let family = &p.families[0];
        let arch = p.arch();
        let catalog = vec![
            InstanceType::new(&format!("{family}.xlarge"), arch, 4, 8 * 1024)
                .with_prices(Some(0.2), None),
            InstanceType::new(&format!("{family}.2xlarge"), arch, 8, 16 * 1024)
                .with_prices(Some(0.4), None),
            InstanceType::new(&format!("{family}.4xlarge"), arch, 16, 32 * 1024)
                .with_prices(Some(0.8), None),
        ];
        let prices = HashMap::from([
            (format!("{family}.xlarge"), 0.044),
            (format!("{family}.2xlarge"), 0.08),
            (format!("{family}.4xlarge"), 0.2),
        ]);
        let plan = plan(&p, catalog, &prices, &BatchNeeds::for_unit(&p), 3).unwrap();
        assert!(plan.purchase.is_spot());
        // Sized for a unit (8-32 vCPUs): no xlarge.
        assert_eq!(
            plan.type_names(),
            [format!("{family}.2xlarge"), format!("{family}.4xlarge")]
        );
    }

    #[test]
    fn plan_sizes_from_records_and_falls_back_to_the_default() {
        use ebfleet_core::sizing::{BuildProfile, BuildUsage};
        let p = cpu_platform();
        let family = &p.families[0];
        let arch = p.arch();
        let catalog: Vec<InstanceType> =
            [(1, "large"), (2, "xlarge"), (4, "2xlarge"), (8, "4xlarge")]
                .iter()
                .map(|&(n, size)| {
                    InstanceType::new(
                        &format!("{family}.{size}"),
                        arch,
                        2 * n,
                        4096 * u64::from(n),
                    )
                    .with_prices(Some(0.1 * f64::from(n)), None)
                })
                .collect();
        let prices: HashMap<String, f64> = catalog
            .iter()
            .map(|t| (t.name.clone(), t.on_demand_price.unwrap() / 3.0))
            .collect();
        // One serial unit: 2-4 vCPUs.
        let serial = BuildProfile {
            duration_s: 3600,
            usage: BuildUsage {
                peak_memory_mib: 500,
                cpu_s: 3600,
                cpus: 16,
            },
        };
        let needs = pool_needs(&p, [Some(&serial)]);
        let chosen = plan(&p, catalog.clone(), &prices, &needs, 10).unwrap();
        let mut names = chosen.type_names();
        names.sort();
        assert_eq!(
            names,
            [format!("{family}.large"), format!("{family}.xlarge")]
        );
        assert_eq!(chosen.needs, needs);
        // A unit whose process needs more than any type has: the default.
        let huge = BuildProfile {
            usage: BuildUsage {
                peak_memory_mib: 1 << 20,
                ..serial.usage
            },
            ..serial
        };
        let needs = pool_needs(&p, [Some(&huge)]);
        let chosen = plan(&p, catalog, &prices, &needs, 10).unwrap();
        assert_eq!(chosen.needs, BatchNeeds::for_unit(&p));
        let mut names = chosen.type_names();
        names.sort();
        assert_eq!(
            names,
            [format!("{family}.2xlarge"), format!("{family}.4xlarge")]
        );
    }

    #[test]
    fn plan_error_names_the_platform() {
        let p = cpu_platform();
        let other = match p.arch() {
            Arch::X86_64 => Arch::Aarch64,
            Arch::Aarch64 => Arch::X86_64,
        };
        let catalog = vec![InstanceType::new("zz9.large", other, 2, 4096)];
        let e = plan(&p, catalog, &HashMap::new(), &BatchNeeds::for_unit(&p), 1).unwrap_err();
        assert!(matches!(e, Error::Choose { .. }));
        assert!(e.to_string().contains(&p.name), "{e}");
    }

    #[test]
    fn input_reads_a_pool_or_a_claim() {
        let i: Input = serde_json::from_value(serde_json::json!({
            "pool": {"execution": "run-1", "platform": "amzn-2023_graviton-3"}
        }))
        .unwrap();
        let Input::Pool { pool } = i else {
            panic!("{i:?}")
        };
        assert_eq!(pool.execution.as_str(), "run-1");
        assert_eq!(pool.platform.as_str(), "amzn-2023_graviton-3");
        assert_eq!(
            pool_name(&pool.execution, &pool.platform),
            "ebfleet-run-1-amzn-2023_graviton-3"
        );

        let i: Input = serde_json::from_value(serde_json::json!({
            "claim": {"instance_id": "i-0123456789abcdef0"}
        }))
        .unwrap();
        assert_eq!(
            i,
            Input::Claim {
                claim: ClaimInput {
                    instance_id: "i-0123456789abcdef0".into()
                }
            }
        );
        // The old batch input is neither.
        assert!(serde_json::from_value::<Input>(serde_json::json!({
            "execution": "run-1", "platform": "amzn-2023_graviton-3", "batch": 2
        }))
        .is_err());
    }
}
