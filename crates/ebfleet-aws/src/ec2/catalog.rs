//! What there is to choose from: instance types of the platform's families
//! and their current spot prices.

use super::{error, Ec2Error, Nodes};
use aws_sdk_ec2::types::{
    ArchitectureType, Filter, InstanceType as Ec2InstanceType, InstanceTypeInfo, UsageClassType,
};
use aws_smithy_types::DateTime;
use ebfleet_core::capacity::{family_of, InstanceType};
use ebfleet_core::Arch;
use std::collections::HashMap;
use std::time::SystemTime;

/// The product whose spot prices the nodes pay: Linux without a licence.
pub(super) const LINUX_UNIX: &str = "Linux/UNIX";

/// The architecture ebfleet builds for, from EC2's list. Mac types
/// (`x86_64_mac`, `arm64_mac`) need dedicated hosts and are left out;
/// `i386` comes only with `x86_64`.
fn arch_of(archs: &[ArchitectureType]) -> Option<Arch> {
    if archs.contains(&ArchitectureType::Arm64) {
        Some(Arch::Aarch64)
    } else if archs.contains(&ArchitectureType::X8664) {
        Some(Arch::X86_64)
    } else {
        None
    }
}

/// One catalog entry in the domain's terms; `None` (logged) when EC2 left
/// out what choosing needs: the name, vCPUs, memory or an architecture
/// ebfleet builds for.
fn to_instance_type(info: &InstanceTypeInfo) -> Option<InstanceType> {
    let name = info.instance_type()?.as_str();
    let vcpus = info.v_cpu_info().and_then(|v| v.default_v_cpus());
    let memory = info.memory_info().and_then(|m| m.size_in_mib());
    let archs = info
        .processor_info()
        .map(|p| p.supported_architectures())
        .unwrap_or_default();
    let (Some(vcpus), Some(memory), Some(arch)) = (vcpus, memory, arch_of(archs)) else {
        tracing::debug!(
            instance_type = name,
            "skipped: no vCPUs, memory or usable architecture"
        );
        return None;
    };
    let mut t = InstanceType::new(
        name,
        arch,
        u32::try_from(vcpus).ok()?,
        u64::try_from(memory).ok()?,
    );
    if let Some(gpu) = info.gpu_info() {
        let devices = gpu.gpus();
        let count: i64 = devices
            .iter()
            .map(|d| i64::from(d.count().unwrap_or(0)))
            .sum();
        t.gpus = u32::try_from(count).unwrap_or(0);
        t.gpu_model = devices.first().and_then(|d| {
            let words: Vec<&str> = [d.manufacturer(), d.name()].into_iter().flatten().collect();
            (!words.is_empty()).then(|| words.join(" "))
        });
        let per_device: i64 = devices
            .iter()
            .map(|d| {
                i64::from(d.count().unwrap_or(0))
                    * i64::from(d.memory_info().and_then(|m| m.size_in_mib()).unwrap_or(0))
            })
            .sum();
        let total = gpu.total_gpu_memory_in_mib().map_or(per_device, i64::from);
        t.gpu_memory_mib = u64::try_from(total).unwrap_or(0);
    }
    t.instance_storage_gb = info
        .instance_storage_info()
        .and_then(|s| s.total_size_in_gb())
        .and_then(|gb| u64::try_from(gb).ok())
        .filter(|gb| *gb > 0);
    t.spot_supported = info
        .supported_usage_classes()
        .contains(&UsageClassType::Spot);
    Some(t)
}

/// Sets each type's `spot_price` from `prices` (by name); types without a
/// price keep theirs.
pub fn apply_spot_prices(types: &mut [InstanceType], prices: &HashMap<String, f64>) {
    for t in types {
        if let Some(p) = prices.get(&t.name) {
            t.spot_price = Some(*p);
        }
    }
}

impl Nodes {
    /// Every instance type of `families` (exact family: `c7g` is not
    /// `c7gn`), sorted by name, without prices. Types EC2 describes without
    /// vCPUs, memory or a Linux architecture are left out.
    pub async fn instance_types(&self, families: &[String]) -> Result<Vec<InstanceType>, Ec2Error> {
        if families.is_empty() {
            return Ok(Vec::new());
        }
        let patterns: Vec<String> = families.iter().map(|f| format!("{f}.*")).collect();
        let resource = format!("instance types {}", patterns.join(", "));
        let filter = Filter::builder()
            .name("instance-type")
            .set_values(Some(patterns.clone()))
            .build();
        let mut pages = self
            .client
            .describe_instance_types()
            .filters(filter)
            .into_paginator()
            .send();
        let mut types = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| error(resource.clone(), "DescribeInstanceTypes", e))?;
            types.extend(
                page.instance_types()
                    .iter()
                    .filter_map(to_instance_type)
                    .filter(|t| families.iter().any(|f| f == family_of(&t.name))),
            );
        }
        types.sort_by(|a, b| a.name.cmp(&b.name));
        types.dedup_by(|a, b| a.name == b.name);
        tracing::debug!(%resource, types = types.len(), "described instance types");
        Ok(types)
    }

    /// The current `Linux/UNIX` spot price of each of `types` in USD per
    /// hour: the newest price of each availability zone, the lowest zone.
    /// Types without a spot price (not sold on spot here) are absent.
    pub async fn spot_prices(&self, types: &[String]) -> Result<HashMap<String, f64>, Ec2Error> {
        if types.is_empty() {
            return Ok(HashMap::new());
        }
        let resource = format!("spot prices of {}", types.join(", "));
        // A start time of now asks for the price in effect now, one entry
        // per type and zone (older ones may still come: the newest wins).
        let mut pages = self
            .client
            .describe_spot_price_history()
            .set_instance_types(Some(
                types
                    .iter()
                    .map(|t| Ec2InstanceType::from(t.as_str()))
                    .collect(),
            ))
            .product_descriptions(LINUX_UNIX)
            .start_time(DateTime::from(SystemTime::now()))
            .into_paginator()
            .send();
        // (type, zone) → (timestamp, price)
        let mut newest: HashMap<(String, String), (Option<DateTime>, f64)> = HashMap::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| error(resource.clone(), "DescribeSpotPriceHistory", e))?;
            for p in page.spot_price_history() {
                let (Some(t), Some(price)) = (p.instance_type(), p.spot_price()) else {
                    continue;
                };
                let Ok(price) = price.parse::<f64>() else {
                    tracing::warn!(instance_type = t.as_str(), price, "unreadable spot price");
                    continue;
                };
                if !price.is_finite() || price < 0.0 {
                    continue;
                }
                let zone = p.availability_zone().unwrap_or_default().to_string();
                let at = p.timestamp().copied();
                newest
                    .entry((t.as_str().to_string(), zone))
                    .and_modify(|e| {
                        if at > e.0 {
                            *e = (at, price);
                        }
                    })
                    .or_insert((at, price));
            }
        }
        let mut lowest: HashMap<String, f64> = HashMap::new();
        for ((t, _zone), (_, price)) in newest {
            lowest
                .entry(t)
                .and_modify(|p| *p = p.min(price))
                .or_insert(price);
        }
        tracing::debug!(%resource, priced = lowest.len(), "read spot prices");
        Ok(lowest)
    }
}
