//! Capacity: which EC2 instance types a platform's batch runs on, bought how,
//! from which AMI, launched with which security settings.
//!
//! This is the pure decision logic of the Capacity Lambda. The EC2 adapter
//! fills [`InstanceType`] from DescribeInstanceTypes (and the prices from
//! DescribeSpotPriceHistory and, when it has them, on-demand prices), calls
//! [`choose`], resolves the [`AmiSource`] (SSM GetParameter for the public
//! parameter) and turns the [`LaunchSpec`] into a launch template and an EC2
//! Fleet `instant` request. Nothing here talks to AWS.
//!
//! Choosing, in order:
//! 1. keep the catalog's types whose family is one of `platform.families`
//!    (exact family match: `c7g` is not `c7gn`, `c7i` is not `c7i-flex`);
//! 2. keep those of the platform's architecture;
//! 3. on GPU platforms, keep those whose GPU model is the platform's (when
//!    the catalog says which model it is, see [`gpu_model_matches`]);
//! 4. keep those that fit the batch's [`BatchNeeds`];
//! 5. rank by price per vCPU, then newer generation, then more vCPUs, then
//!    name, and keep up to [`CapacityOptions::max_types`] as the EC2 Fleet
//!    overrides.
//!
//! Each step that leaves nothing is its own [`CapacityError`], naming the
//! platform, so "nothing fits" always says why.

use crate::arch::Arch;
use crate::platform::Platform;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

// ------------------------------------------------------------ instance types

/// One EC2 instance type, as the adapter reads it from DescribeInstanceTypes
/// plus the prices it found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceType {
    /// e.g. `c7g.16xlarge`.
    pub name: String,
    /// The part of the name before the dot, e.g. `m7i-flex`, `p6-b200`
    /// (see [`family_of`]).
    pub family: String,
    pub arch: Arch,
    pub vcpus: u32,
    pub memory_mib: u64,
    /// Number of GPUs (DescribeInstanceTypes `GpuInfo.Gpus[].Count`, summed).
    pub gpus: u32,
    /// e.g. `H100` or `NVIDIA H100` (manufacturer and name); `None` when
    /// the catalog does not say.
    pub gpu_model: Option<String>,
    /// Total GPU memory (`GpuInfo.TotalGpuMemoryInMiB`), 0 without GPU.
    pub gpu_memory_mib: u64,
    /// Local instance store (NVMe) in GB, `None` when the type has none.
    /// Builds like a local scratch disk; it breaks ties in the ranking.
    pub instance_storage_gb: Option<u64>,
    /// Whether `spot` is among the type's supported usage classes.
    pub spot_supported: bool,
    /// On-demand price in USD per hour, when known.
    pub on_demand_price: Option<f64>,
    /// Current spot price in USD per hour (the lowest over the availability
    /// zones the fleet may use), when known.
    pub spot_price: Option<f64>,
}

/// The family of an instance type name: the part before the first dot
/// (`c7g.16xlarge` → `c7g`, `u7i-6tb.112xlarge` → `u7i-6tb`); the whole name
/// when there is no dot.
pub fn family_of(name: &str) -> &str {
    name.split_once('.').map_or(name, |(family, _)| family)
}

/// The generation digit(s) of a family: the number after its leading letters
/// (`c7g` → 7, `m8i-flex` → 8, `p6-b200` → 6, `x2idn` → 2); 0 when there is
/// none. Used only to prefer newer types among equally priced ones.
pub fn generation_of(family: &str) -> u32 {
    let digits: String = family
        .chars()
        .skip_while(|c| c.is_ascii_alphabetic())
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().unwrap_or(0)
}

impl InstanceType {
    /// A type with no GPU, no instance store, spot supported and no known
    /// price; the family is derived from the name. Set the other fields
    /// directly (they are public) or with the `with_*` helpers.
    pub fn new(name: &str, arch: Arch, vcpus: u32, memory_mib: u64) -> Self {
        InstanceType {
            name: name.to_string(),
            family: family_of(name).to_string(),
            arch,
            vcpus,
            memory_mib,
            gpus: 0,
            gpu_model: None,
            gpu_memory_mib: 0,
            instance_storage_gb: None,
            spot_supported: true,
            on_demand_price: None,
            spot_price: None,
        }
    }

    pub fn with_gpus(mut self, gpus: u32, model: &str, gpu_memory_mib: u64) -> Self {
        self.gpus = gpus;
        self.gpu_model = Some(model.to_string());
        self.gpu_memory_mib = gpu_memory_mib;
        self
    }

    pub fn with_storage_gb(mut self, gb: u64) -> Self {
        self.instance_storage_gb = Some(gb);
        self
    }

    pub fn with_prices(mut self, on_demand: Option<f64>, spot: Option<f64>) -> Self {
        self.on_demand_price = on_demand;
        self.spot_price = spot;
        self
    }

    /// The spot price if this type can be bought on spot and the spot price
    /// is known and (when the on-demand price is known) below it. AWS caps
    /// the spot price a fleet pays at the on-demand price by default, so an
    /// unknown on-demand price does not stop spot.
    fn spot_price_if_worth_it(&self) -> Option<f64> {
        if !self.spot_supported {
            return None;
        }
        let spot = self.spot_price?;
        match self.on_demand_price {
            Some(od) if spot >= od => None,
            _ => Some(spot),
        }
    }

    fn describe(&self) -> String {
        format!(
            "{} ({} vCPU, {}, {} GPU)",
            self.name,
            self.vcpus,
            fmt_gib(self.memory_mib),
            self.gpus
        )
    }
}

fn fmt_gib(mib: u64) -> String {
    match mib % 1024 {
        0 => format!("{} GiB", mib / 1024),
        _ => format!("{:.1} GiB", mib as f64 / 1024.0),
    }
}

/// Whether the GPU model the catalog reports (`H100`, `NVIDIA A10G`, `T4g`)
/// is the platform's model (`NVIDIA H100`, `NVIDIA A100 40GB`): every word
/// of the catalog's name, ignoring case, is a word of the platform's. Words,
/// not substrings, so that `L4` does not match `NVIDIA L40S` nor `T4` match
/// `NVIDIA T4G`.
pub fn gpu_model_matches(platform_model: &str, catalog_model: &str) -> bool {
    fn words(s: &str) -> Vec<String> {
        s.split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(|w| w.to_ascii_lowercase())
            .collect()
    }
    let platform = words(platform_model);
    let catalog = words(catalog_model);
    !catalog.is_empty() && catalog.iter().all(|w| platform.contains(w))
}

// ------------------------------------------------------------------- needs

/// What a batch needs from one machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchNeeds {
    pub min_vcpus: u32,
    /// `None`: no upper bound.
    pub max_vcpus: Option<u32>,
    pub min_memory_mib: u64,
    /// Memory per vCPU of the chosen type (EasyBuild runs `parallel` = all
    /// cores, so memory must grow with the cores the machine has).
    pub memory_per_vcpu_mib: u64,
    pub min_gpus: u32,
}

/// Memory per compile job: C++ translation units of big packages (LLVM,
/// Boost, Trilinos, PyTorch) often take 1-2 GiB each; 2 GiB per vCPU is also
/// exactly what the compute-optimised `c` families have, so they stay in.
pub const MEMORY_PER_VCPU_MIB: u64 = 2048;

/// `(up to this many modules, min vCPUs, max vCPUs)`, the first row whose
/// module count is not exceeded applies; the last row applies to more.
pub const VCPU_TIERS: &[(usize, u32, u32)] = &[
    (4, 4, 16),
    (25, 8, 32),
    (100, 16, 64),
    (usize::MAX, 32, 192),
];

impl BatchNeeds {
    /// The default sizing of a batch of `modules` modules on `platform`.
    ///
    /// EasyBuild builds one module at a time and gives each build
    /// `parallel` = the machine's cores; a build's speed-up flattens well
    /// before 64 cores (configure, install and test steps are serial), so
    /// more cores only pay off when a batch is long. Hence tiers
    /// ([`VCPU_TIERS`]): up to 4 modules 4-16 vCPUs, up to 25 8-32, up to
    /// 100 16-64, more 32-192. Memory is [`MEMORY_PER_VCPU_MIB`] per vCPU.
    ///
    /// GPU platforms that build on GPU nodes (not CUDA overlays, which
    /// compile on CPU-only types) need at least one GPU (the platform's
    /// families already are its GPU's families) and have no vCPU ceiling: their sizes are set
    /// by the GPU count (p5 exists only as a 192-vCPU 48xlarge), and one
    /// GPU is enough to build and test CUDA software.
    pub fn for_batch(modules: usize, platform: &Platform) -> Self {
        let (_, min_vcpus, max_vcpus) = VCPU_TIERS
            .iter()
            .copied()
            .find(|(up_to, _, _)| modules <= *up_to)
            .unwrap_or(VCPU_TIERS[VCPU_TIERS.len() - 1]);
        let gpu = platform.builds_on_gpu();
        BatchNeeds {
            min_vcpus,
            max_vcpus: if gpu { None } else { Some(max_vcpus) },
            min_memory_mib: u64::from(min_vcpus) * MEMORY_PER_VCPU_MIB,
            memory_per_vcpu_mib: MEMORY_PER_VCPU_MIB,
            min_gpus: u32::from(gpu),
        }
    }

    /// The sizing of a pool's nodes, which build one module at a time:
    /// that of a mid-sized batch (8-32 vCPUs on CPU platforms), since most
    /// modules build in minutes and the long ones (LLVM, PyTorch) stop
    /// scaling well past 32 cores.
    pub fn for_unit(platform: &Platform) -> Self {
        Self::for_batch(25, platform)
    }

    /// Whether `t` has what the batch needs.
    pub fn fits(&self, t: &InstanceType) -> bool {
        t.vcpus >= self.min_vcpus.max(1)
            && !matches!(self.max_vcpus, Some(max) if t.vcpus > max)
            && t.memory_mib >= self.min_memory_mib
            && t.memory_mib >= u64::from(t.vcpus) * self.memory_per_vcpu_mib
            && t.gpus >= self.min_gpus
    }
}

impl fmt::Display for BatchNeeds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.max_vcpus {
            Some(max) => write!(f, "{}-{} vCPU", self.min_vcpus, max)?,
            None => write!(f, ">= {} vCPU", self.min_vcpus)?,
        }
        write!(
            f,
            ", >= {} and {} per vCPU",
            fmt_gib(self.min_memory_mib),
            fmt_gib(self.memory_per_vcpu_mib)
        )?;
        if self.min_gpus > 0 {
            write!(f, ", >= {} GPU", self.min_gpus)?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- the plan

/// How [`choose`] decides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapacityOptions {
    /// How many instance types to offer EC2 Fleet (its overrides); more
    /// types give price-capacity-optimized more pools to pick from. At
    /// least 1 is used.
    pub max_types: usize,
    /// `false` buys on-demand only.
    pub allow_spot: bool,
}

impl Default for CapacityOptions {
    fn default() -> Self {
        CapacityOptions {
            max_types: 10,
            allow_spot: true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SpotAllocationStrategy {
    /// EC2 Fleet `price-capacity-optimized`: the cheapest of the pools least
    /// likely to be interrupted.
    #[serde(rename = "price-capacity-optimized")]
    PriceCapacityOptimized,
}

impl SpotAllocationStrategy {
    /// The value of EC2 Fleet's `SpotOptions.AllocationStrategy`.
    pub fn as_str(self) -> &'static str {
        match self {
            SpotAllocationStrategy::PriceCapacityOptimized => "price-capacity-optimized",
        }
    }
}

/// Why a plan buys on-demand.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum OnDemandReason {
    /// [`CapacityOptions::allow_spot`] is off.
    SpotDisabled,
    /// None of the fitting types supports spot.
    SpotNotSupported,
    /// Spot is supported but no spot price is known.
    NoSpotPrice,
    /// Every known spot price is at or above the on-demand price.
    SpotNotCheaper { cheapest_spot: f64, on_demand: f64 },
    /// A spot request got no capacity (`InsufficientInstanceCapacity`,
    /// spot unavailable in the pools offered).
    SpotUnavailable,
}

impl fmt::Display for OnDemandReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OnDemandReason::SpotDisabled => f.write_str("spot disabled by options"),
            OnDemandReason::SpotNotSupported => {
                f.write_str("no fitting instance type supports spot")
            }
            OnDemandReason::NoSpotPrice => f.write_str("no spot price known"),
            OnDemandReason::SpotNotCheaper {
                cheapest_spot,
                on_demand,
            } => write!(
                f,
                "spot ({cheapest_spot} $/h) is not cheaper than on-demand ({on_demand} $/h)"
            ),
            OnDemandReason::SpotUnavailable => f.write_str("no spot capacity available"),
        }
    }
}

/// How the capacity is bought.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "market", rename_all = "snake_case")]
pub enum Purchase {
    Spot {
        allocation_strategy: SpotAllocationStrategy,
    },
    OnDemand {
        #[serde(flatten)]
        reason: OnDemandReason,
    },
}

impl Purchase {
    pub fn is_spot(&self) -> bool {
        matches!(self, Purchase::Spot { .. })
    }
}

/// Which price ranked a [`Choice`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Market {
    Spot,
    OnDemand,
}

/// One instance type offered to EC2 Fleet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    pub instance_type: String,
    pub vcpus: u32,
    pub memory_mib: u64,
    pub gpus: u32,
    /// USD per hour in `market`, when known (for the run's cost estimate).
    pub hourly_price: Option<f64>,
    pub market: Market,
}

/// What to request for one platform.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapacityPlan {
    pub platform: String,
    pub needs: BatchNeeds,
    pub purchase: Purchase,
    /// The fleet's overrides, best first, at most `max_types`: spot-worthy
    /// types ranked by spot price when `purchase` is spot, else by on-demand
    /// price.
    pub types: Vec<Choice>,
    /// On-demand overrides, best first, at most `max_types`: what to request
    /// when spot fails (`InsufficientInstanceCapacity`, no spot capacity).
    /// Equal to `types` when `purchase` is on-demand.
    pub on_demand_fallback: Vec<Choice>,
}

impl CapacityPlan {
    pub fn type_names(&self) -> Vec<String> {
        self.types.iter().map(|c| c.instance_type.clone()).collect()
    }

    pub fn fallback_type_names(&self) -> Vec<String> {
        self.on_demand_fallback
            .iter()
            .map(|c| c.instance_type.clone())
            .collect()
    }
}

/// Why no instance type can be chosen for a platform.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CapacityError {
    #[error("platform {platform}: the catalog has no instance type of its families ({families})")]
    NoTypesOfFamilies { platform: String, families: String },
    #[error("platform {platform} is {expected}, but the catalog's types of its families are {found} ({examples})")]
    ArchMismatch {
        platform: String,
        expected: Arch,
        found: Arch,
        examples: String,
    },
    #[error(
        "platform {platform}: no instance type of its families has GPU '{wanted}' (found: {found})"
    )]
    GpuModelMismatch {
        platform: String,
        wanted: String,
        found: String,
    },
    #[error("platform {platform}: no instance type fits the batch ({needs}); largest available: {largest}; smallest: {smallest}")]
    NoneFits {
        platform: String,
        needs: String,
        largest: String,
        smallest: String,
    },
}

/// Round a $/vCPU-hour price to micro-dollars so that types AWS prices
/// linearly by size (0.0289/1 vs 0.0578/2) tie exactly and the next keys
/// (generation, size, name) decide.
fn price_key(price: Option<f64>, vcpus: u32) -> Option<i64> {
    price.map(|p| (p / f64::from(vcpus) * 1e6).round() as i64)
}

/// Known prices first, cheapest first; then newer generation, more vCPUs,
/// local storage, and the name for a deterministic order.
fn rank(a: &InstanceType, pa: Option<f64>, b: &InstanceType, pb: Option<f64>) -> Ordering {
    let by_price = match (price_key(pa, a.vcpus), price_key(pb, b.vcpus)) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    };
    by_price
        .then_with(|| generation_of(&b.family).cmp(&generation_of(&a.family)))
        .then_with(|| b.vcpus.cmp(&a.vcpus))
        .then_with(|| {
            b.instance_storage_gb
                .is_some()
                .cmp(&a.instance_storage_gb.is_some())
        })
        .then_with(|| a.name.cmp(&b.name))
}

fn ranked(
    types: &[&InstanceType],
    price: impl Fn(&InstanceType) -> Option<f64>,
    market: Market,
    max: usize,
) -> Vec<Choice> {
    let mut v: Vec<&InstanceType> = types.to_vec();
    v.sort_by(|a, b| rank(a, price(a), b, price(b)));
    v.into_iter()
        .take(max)
        .map(|t| Choice {
            instance_type: t.name.clone(),
            vcpus: t.vcpus,
            memory_mib: t.memory_mib,
            gpus: t.gpus,
            hourly_price: price(t),
            market,
        })
        .collect()
}

fn examples(types: &[&InstanceType]) -> String {
    let mut names: Vec<&str> = types.iter().map(|t| t.name.as_str()).collect();
    names.sort_unstable();
    let more = names.len().saturating_sub(3);
    names.truncate(3);
    let mut s = names.join(", ");
    if more > 0 {
        s.push_str(&format!(" and {more} more"));
    }
    s
}

/// Choose the instance types and purchase option for `platform`'s batch.
pub fn choose(
    platform: &Platform,
    catalog: &[InstanceType],
    needs: &BatchNeeds,
    opts: &CapacityOptions,
) -> Result<CapacityPlan, CapacityError> {
    // One entry per name (the catalog may come from several pages/regions).
    let mut by_name: BTreeMap<&str, &InstanceType> = BTreeMap::new();
    for t in catalog {
        by_name.entry(t.name.as_str()).or_insert(t);
    }

    let of_families: Vec<&InstanceType> = by_name
        .values()
        .copied()
        .filter(|t| platform.families.contains(&t.family))
        .collect();
    if of_families.is_empty() {
        return Err(CapacityError::NoTypesOfFamilies {
            platform: platform.name.clone(),
            families: platform.families.join(", "),
        });
    }

    let arch = platform.arch();
    let of_arch: Vec<&InstanceType> = of_families
        .iter()
        .copied()
        .filter(|t| t.arch == arch)
        .collect();
    if of_arch.is_empty() {
        return Err(CapacityError::ArchMismatch {
            platform: platform.name.clone(),
            expected: arch,
            found: of_families[0].arch,
            examples: examples(&of_families),
        });
    }

    let of_gpu: Vec<&InstanceType> = match &platform.gpu {
        None => of_arch,
        Some(gpu) => {
            let v: Vec<&InstanceType> = of_arch
                .iter()
                .copied()
                .filter(|t| match t.gpu_model.as_deref() {
                    Some(m) => gpu_model_matches(&gpu.model, m),
                    None => true,
                })
                .collect();
            if v.is_empty() {
                let mut found: Vec<String> = of_arch
                    .iter()
                    .map(|t| format!("{} on {}", t.gpu_model.as_deref().unwrap_or("?"), t.name))
                    .collect();
                found.sort();
                found.truncate(3);
                return Err(CapacityError::GpuModelMismatch {
                    platform: platform.name.clone(),
                    wanted: gpu.model.clone(),
                    found: found.join(", "),
                });
            }
            v
        }
    };

    let fitting: Vec<&InstanceType> = of_gpu.iter().copied().filter(|t| needs.fits(t)).collect();
    if fitting.is_empty() {
        fn size(t: &&InstanceType) -> (u32, u64, u32, String) {
            (t.vcpus, t.memory_mib, t.gpus, t.name.clone())
        }
        let largest = of_gpu.iter().copied().max_by_key(size).expect("non-empty");
        let smallest = of_gpu.iter().copied().min_by_key(size).expect("non-empty");
        return Err(CapacityError::NoneFits {
            platform: platform.name.clone(),
            needs: needs.to_string(),
            largest: largest.describe(),
            smallest: smallest.describe(),
        });
    }

    let max = opts.max_types.max(1);
    let on_demand = ranked(&fitting, |t| t.on_demand_price, Market::OnDemand, max);
    let spot_worthy: Vec<&InstanceType> = fitting
        .iter()
        .copied()
        .filter(|t| t.spot_price_if_worth_it().is_some())
        .collect();

    let reason = if !opts.allow_spot {
        Some(OnDemandReason::SpotDisabled)
    } else if !spot_worthy.is_empty() {
        None
    } else if !fitting.iter().any(|t| t.spot_supported) {
        Some(OnDemandReason::SpotNotSupported)
    } else if let Some(t) = fitting
        .iter()
        .filter(|t| t.spot_supported && t.spot_price.is_some() && t.on_demand_price.is_some())
        .min_by(|a, b| {
            let r = |t: &InstanceType| t.spot_price.unwrap_or(f64::MAX) / f64::from(t.vcpus);
            r(a).total_cmp(&r(b)).then_with(|| a.name.cmp(&b.name))
        })
    {
        Some(OnDemandReason::SpotNotCheaper {
            cheapest_spot: t.spot_price.unwrap_or_default(),
            on_demand: t.on_demand_price.unwrap_or_default(),
        })
    } else {
        Some(OnDemandReason::NoSpotPrice)
    };

    let (purchase, types) = match reason {
        None => (
            Purchase::Spot {
                allocation_strategy: SpotAllocationStrategy::PriceCapacityOptimized,
            },
            ranked(
                &spot_worthy,
                |t| t.spot_price_if_worth_it(),
                Market::Spot,
                max,
            ),
        ),
        Some(reason) => (Purchase::OnDemand { reason }, on_demand.clone()),
    };

    Ok(CapacityPlan {
        platform: platform.name.clone(),
        needs: needs.clone(),
        purchase,
        types,
        on_demand_fallback: on_demand,
    })
}

// --------------------------------------------------------------------- AMI

/// Where the AMI comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "source", content = "value", rename_all = "snake_case")]
pub enum AmiSource {
    /// An AMI the user pinned (validated `ami-` id). The adapter should
    /// check with DescribeImages that its architecture is the platform's.
    Pinned(String),
    /// A public SSM parameter holding the newest AMI id for the OS and
    /// architecture; resolved by the adapter with SSM GetParameter.
    SsmParameter(String),
    /// A baked node image (`crate::node_image`) whose architecture, tags
    /// and age were checked against the platform; used as it is.
    NodeImage(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmiError {
    #[error("'{0}' is not an AMI id (expected ami- and 8 to 17 lowercase hex digits)")]
    InvalidAmiId(String),
    #[error("unsupported os '{os}' for {arch}: no public SSM AMI parameter is known for it (supported: {supported}); pin an AMI instead")]
    UnsupportedOs {
        os: String,
        arch: Arch,
        supported: String,
    },
}

/// OSes with a public SSM parameter: `(os, x86_64 parameter, aarch64 parameter)`.
///
/// Sources:
/// * Amazon Linux 2023: AWS's `/aws/service/ami-amazon-linux-latest/`
///   namespace; names as built by AWS CDK
///   (`aws-cdk-lib/aws-ec2/lib/machine-image/amazon-linux-2023.ts`,
///   `AmazonLinux2023ImageSsmParameter.ssmParameterName`, which lists
///   `al2023-ami-kernel-default-x86_64` and `-arm64`); moto serves both.
///   `kernel-default` follows AL2023's default kernel as it moves.
/// * Ubuntu: Canonical's `/aws/service/canonical/ubuntu/<product>/<release>/
///   stable/current/<arch>/hvm/<volume>/ami-id` (Ubuntu Discourse, "Finding
///   Ubuntu images with the AWS SSM Parameter Store"); Canonical publishes
///   22.04 under `ebs-gp2` and 24.04 under `ebs-gp3`.
/// * Debian 12: `/aws/service/debian/release/12/latest/<amd64|arm64>`
///   (Debian cloud team's parameters, Debian wiki Cloud/AmazonEC2Image).
/// * Rocky Linux publishes no public SSM parameter (only Marketplace /
///   owner-account AMIs): unsupported, pin an AMI.
pub const SSM_AMI_PARAMETERS: &[(&str, &str, &str)] = &[
    (
        "amzn-2023",
        "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64",
        "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64",
    ),
    (
        "ubuntu-22.04",
        "/aws/service/canonical/ubuntu/server/22.04/stable/current/amd64/hvm/ebs-gp2/ami-id",
        "/aws/service/canonical/ubuntu/server/22.04/stable/current/arm64/hvm/ebs-gp2/ami-id",
    ),
    (
        "ubuntu-24.04",
        "/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id",
        "/aws/service/canonical/ubuntu/server/24.04/stable/current/arm64/hvm/ebs-gp3/ami-id",
    ),
    (
        "debian-12",
        "/aws/service/debian/release/12/latest/amd64",
        "/aws/service/debian/release/12/latest/arm64",
    ),
];

/// The public SSM parameter with the newest AMI of `os` for `arch`.
pub fn ssm_ami_parameter(os: &str, arch: Arch) -> Result<&'static str, AmiError> {
    SSM_AMI_PARAMETERS
        .iter()
        .find(|(name, _, _)| *name == os)
        .map(|(_, x86, arm)| match arch {
            Arch::X86_64 => *x86,
            Arch::Aarch64 => *arm,
        })
        .ok_or_else(|| AmiError::UnsupportedOs {
            os: os.to_string(),
            arch,
            supported: SSM_AMI_PARAMETERS
                .iter()
                .map(|(n, _, _)| *n)
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// Whether `id` is `ami-` followed by 8 to 17 lowercase hex digits.
pub fn is_ami_id(id: &str) -> bool {
    id.strip_prefix("ami-").is_some_and(|hex| {
        (8..=17).contains(&hex.len()) && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

impl AmiSource {
    /// A pinned AMI, validated.
    pub fn pinned(id: &str) -> Result<Self, AmiError> {
        if is_ami_id(id) {
            Ok(AmiSource::Pinned(id.to_string()))
        } else {
            Err(AmiError::InvalidAmiId(id.to_string()))
        }
    }

    /// The pinned AMI if there is one, else the public SSM parameter for the
    /// platform's OS and architecture.
    pub fn for_platform(platform: &Platform, pinned: Option<&str>) -> Result<Self, AmiError> {
        match pinned {
            Some(id) => Self::pinned(id),
            None => ssm_ami_parameter(&platform.os, platform.arch())
                .map(|p| AmiSource::SsmParameter(p.to_string())),
        }
    }
}

// ------------------------------------------------------------ launch spec

pub const TAG_EXECUTION: &str = "ebfleet:execution";
pub const TAG_PLATFORM: &str = "ebfleet:platform";
pub const TAG_BATCH: &str = "ebfleet:batch";

/// Instance metadata service settings of the launch template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataOptions {
    /// `HttpTokens = required`: IMDSv2 only, no unauthenticated IMDSv1.
    pub http_tokens_required: bool,
    pub http_endpoint_enabled: bool,
    /// 1: the token cannot leave the instance (no container hop).
    pub http_put_response_hop_limit: u32,
}

impl MetadataOptions {
    pub fn imdsv2_required() -> Self {
        MetadataOptions {
            http_tokens_required: true,
            http_endpoint_enabled: true,
            http_put_response_hop_limit: 1,
        }
    }
}

/// Smallest root volume accepted: the OS, EasyBuild, its sources and one
/// batch's build tree do not fit in less (and every supported AMI's root
/// snapshot is smaller).
pub const MIN_ROOT_VOLUME_GIB: u32 = 30;
/// gp3's largest volume.
pub const MAX_ROOT_VOLUME_GIB: u32 = 16_384;
/// What the stack's `NodeLaunchTemplate` gives a node.
pub const DEFAULT_ROOT_VOLUME_GIB: u32 = 200;

/// The node's root volume, on the AMI's root device: gp3, encrypted,
/// deleted with the instance (a spot node that is gone leaves nothing to
/// pay for). The AMIs' own root volume (8 GiB on Amazon Linux 2023) is far
/// too small to build on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootVolume {
    pub size_gib: u32,
    /// Always `gp3`.
    pub volume_type: String,
    /// Always true.
    pub encrypted: bool,
    /// Always true.
    pub delete_on_termination: bool,
}

impl RootVolume {
    /// A gp3 root volume of `size_gib` GiB, [`MIN_ROOT_VOLUME_GIB`] to
    /// [`MAX_ROOT_VOLUME_GIB`].
    pub fn gp3(size_gib: u32) -> Result<Self, LaunchSpecError> {
        if !(MIN_ROOT_VOLUME_GIB..=MAX_ROOT_VOLUME_GIB).contains(&size_gib) {
            return Err(LaunchSpecError::InvalidRootVolume(size_gib));
        }
        Ok(RootVolume {
            size_gib,
            volume_type: "gp3".into(),
            encrypted: true,
            delete_on_termination: true,
        })
    }
}

impl Default for RootVolume {
    /// [`DEFAULT_ROOT_VOLUME_GIB`].
    fn default() -> Self {
        RootVolume {
            size_gib: DEFAULT_ROOT_VOLUME_GIB,
            volume_type: "gp3".into(),
            encrypted: true,
            delete_on_termination: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LaunchSpecError {
    #[error("tag {key}: value must be 1 to 256 characters of letters, digits, spaces and + - = . _ : / @ (got '{value}')")]
    InvalidTagValue { key: String, value: String },
    #[error("capacity plan for {0} has no instance type")]
    NoInstanceTypes(String),
    #[error("root volume of {0} GiB: expected {MIN_ROOT_VOLUME_GIB} to {MAX_ROOT_VOLUME_GIB} GiB")]
    InvalidRootVolume(u32),
}

/// Everything the adapter needs to launch one build node besides the
/// network and instance profile: plain data, so the security properties
/// (IMDSv2 required, no key pair, one instance, tags) are fixed and tested
/// here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LaunchSpec {
    pub tags: BTreeMap<String, String>,
    pub metadata: MetadataOptions,
    /// Always `None`: nodes are reached through SSM only.
    pub key_name: Option<String>,
    pub purchase: Purchase,
    pub instance_types: Vec<String>,
    /// On-demand types to request when the first request gets no capacity.
    pub on_demand_fallback: Vec<String>,
    /// Always 1.
    pub instance_count: u32,
    pub ami: AmiSource,
    /// [`RootVolume::default`] unless [`LaunchSpec::with_root_volume`].
    #[serde(default)]
    pub root_volume: RootVolume,
}

fn valid_tag_value(v: &str) -> bool {
    !v.is_empty()
        && v.chars().count() <= 256
        && v.chars()
            .all(|c| c.is_alphanumeric() || " +-=._:/@".contains(c))
}

impl LaunchSpec {
    /// The launch of one node for `batch` of `platform` in `execution` (the
    /// execution's ARN or name).
    pub fn new(
        execution: &str,
        platform: &Platform,
        batch: &str,
        plan: &CapacityPlan,
        ami: AmiSource,
    ) -> Result<Self, LaunchSpecError> {
        if plan.types.is_empty() {
            return Err(LaunchSpecError::NoInstanceTypes(plan.platform.clone()));
        }
        let mut tags = BTreeMap::new();
        for (key, value) in [
            (TAG_EXECUTION, execution),
            (TAG_PLATFORM, platform.name.as_str()),
            (TAG_BATCH, batch),
        ] {
            if !valid_tag_value(value) {
                return Err(LaunchSpecError::InvalidTagValue {
                    key: key.to_string(),
                    value: value.to_string(),
                });
            }
            tags.insert(key.to_string(), value.to_string());
        }
        Ok(LaunchSpec {
            tags,
            metadata: MetadataOptions::imdsv2_required(),
            key_name: None,
            purchase: plan.purchase.clone(),
            instance_types: plan.type_names(),
            on_demand_fallback: plan.fallback_type_names(),
            instance_count: 1,
            ami,
            root_volume: RootVolume::default(),
        })
    }

    /// The same launch with `root_volume`.
    pub fn with_root_volume(mut self, root_volume: RootVolume) -> Self {
        self.root_volume = root_volume;
        self
    }

    /// The same launch bought on-demand from the fallback types, for when
    /// spot has no capacity; `None` when this launch already is on-demand.
    pub fn on_demand_fallback(&self) -> Option<LaunchSpec> {
        if !self.purchase.is_spot() || self.on_demand_fallback.is_empty() {
            return None;
        }
        Some(LaunchSpec {
            purchase: Purchase::OnDemand {
                reason: OnDemandReason::SpotUnavailable,
            },
            instance_types: self.on_demand_fallback.clone(),
            ..self.clone()
        })
    }
}

#[cfg(test)]
mod tests;
