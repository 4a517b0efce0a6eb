use super::*;
use crate::platform::Platforms;

/// Platforms whose families leave out look-alike families on purpose:
/// `c7gn` next to `c7g`, `c7i-flex` next to `c7i`.
const PLATFORMS: &str = r#"
[cpu.graviton-3]
arch = "aarch64"
archspec = "neoverse_v1"
optarch = "GCC:mcpu=neoverse-v1"
vendor = "aws"
families = ["c7g", "m7g"]

[cpu.xeon-gen-4]
arch = "x86_64"
archspec = "sapphirerapids"
optarch = "GCC:march=sapphirerapids"
vendor = "intel"
families = ["c7i", "m7i"]

[cpu.epyc-gen-3]
arch = "x86_64"
archspec = "zen3"
optarch = "GCC:march=znver3"
vendor = "amd"
families = ["c6a", "g6", "p5"]

[cpu.mislabelled]
arch = "aarch64"
archspec = "neoverse_v1"
optarch = "GCC:mcpu=neoverse-v1"
vendor = "aws"
families = ["c7i"]

[cpu.unsold]
arch = "x86_64"
archspec = "zen3"
optarch = "GCC:march=znver3"
vendor = "amd"
families = ["zz9"]

[gpu.l4]
model = "NVIDIA L4"
vendor = "nvidia"
cuda_compute_capability = "8.9"
families = ["g6"]

[gpu.h100]
model = "NVIDIA H100"
vendor = "nvidia"
cuda_compute_capability = "9.0"
families = ["p5"]

[[platform]]
os = "amzn-2023"
cpu = "graviton-3"

[[platform]]
os = "amzn-2023"
cpu = "xeon-gen-4"

[[platform]]
os = "amzn-2023"
cpu = "epyc-gen-3"

[[platform]]
os = "amzn-2023"
cpu = "epyc-gen-3"
gpu = "l4"

[[platform]]
os = "amzn-2023"
cpu = "epyc-gen-3"
gpu = "h100"

[[platform]]
os = "amzn-2023"
cpu = "mislabelled"

[[platform]]
os = "rocky-9"
cpu = "unsold"
"#;

fn platform(name: &str) -> Platform {
    Platforms::from_toml(PLATFORMS)
        .unwrap()
        .platforms
        .into_iter()
        .find(|p| p.name == name)
        .unwrap()
}

const GIB: u64 = 1024;

fn arm(name: &str, vcpus: u32, gib: u64, od: f64, spot: f64) -> InstanceType {
    InstanceType::new(name, Arch::Aarch64, vcpus, gib * GIB).with_prices(Some(od), Some(spot))
}

fn x86(name: &str, vcpus: u32, gib: u64, od: f64, spot: f64) -> InstanceType {
    InstanceType::new(name, Arch::X86_64, vcpus, gib * GIB).with_prices(Some(od), Some(spot))
}

/// A small catalog, on-demand prices roughly us-east-1's.
fn catalog() -> Vec<InstanceType> {
    vec![
        arm("c7g.2xlarge", 8, 16, 0.289, 0.12),
        arm("c7g.4xlarge", 16, 32, 0.578, 0.25),
        arm("c7g.16xlarge", 64, 128, 2.312, 0.95),
        // Cheapest spot per vCPU of all, but not a graviton-3 family here.
        arm("c7gn.4xlarge", 16, 32, 0.998, 0.10),
        arm("m7g.4xlarge", 16, 64, 0.6528, 0.27),
        x86("c7i.4xlarge", 16, 32, 0.714, 0.30),
        x86("c7i-flex.4xlarge", 16, 32, 0.678, 0.12),
        x86("m7i.4xlarge", 16, 64, 0.8064, 0.35),
        x86("c6a.4xlarge", 16, 32, 0.612, 0.28),
        x86("g6.xlarge", 4, 16, 0.8048, 0.31).with_gpus(1, "NVIDIA L4", 22 * GIB),
        x86("g6.4xlarge", 16, 64, 1.3232, 0.52)
            .with_gpus(1, "L4", 22 * GIB)
            .with_storage_gb(600),
        // A mislabelled g6 reporting another GPU: must not be chosen for L4.
        x86("g6.8xlarge", 32, 128, 2.0144, 0.70).with_gpus(1, "L40S", 44 * GIB),
        x86("g6e.xlarge", 4, 32, 1.861, 0.80).with_gpus(1, "L40S", 44 * GIB),
        x86("p5.48xlarge", 192, 2048, 98.32, 40.0).with_gpus(8, "H100", 640 * GIB),
    ]
}

fn needs(min: u32, max: Option<u32>) -> BatchNeeds {
    BatchNeeds {
        min_vcpus: min,
        max_vcpus: max,
        min_memory_mib: u64::from(min) * MEMORY_PER_VCPU_MIB,
        memory_per_vcpu_mib: MEMORY_PER_VCPU_MIB,
        min_gpus: 0,
    }
}

fn names(choices: &[Choice]) -> Vec<&str> {
    choices.iter().map(|c| c.instance_type.as_str()).collect()
}

#[test]
fn family_is_the_part_before_the_dot() {
    assert_eq!(family_of("c7g.16xlarge"), "c7g");
    assert_eq!(family_of("m7i-flex.large"), "m7i-flex");
    assert_eq!(family_of("p6-b200.48xlarge"), "p6-b200");
    assert_eq!(family_of("u7i-6tb.112xlarge"), "u7i-6tb");
    assert_eq!(
        InstanceType::new("c7gn.metal", Arch::Aarch64, 64, 1).family,
        "c7gn"
    );
    assert_eq!(generation_of("m8i-flex"), 8);
    assert_eq!(generation_of("p6-b200"), 6);
    assert_eq!(generation_of("x2idn"), 2);
}

#[test]
fn only_the_platforms_exact_families() {
    let opts = CapacityOptions::default();
    let g3 = choose(
        &platform("amzn-2023_graviton-3"),
        &catalog(),
        &needs(16, Some(16)),
        &opts,
    )
    .unwrap();
    assert_eq!(names(&g3.types), ["c7g.4xlarge", "m7g.4xlarge"]);
    assert!(!g3
        .fallback_type_names()
        .contains(&"c7gn.4xlarge".to_string()));

    let spr = choose(
        &platform("amzn-2023_xeon-gen-4"),
        &catalog(),
        &needs(16, Some(16)),
        &opts,
    )
    .unwrap();
    assert_eq!(names(&spr.types), ["c7i.4xlarge", "m7i.4xlarge"]);

    // A CPU platform never gets the GPU families of its CPU.
    let zen3 = choose(
        &platform("amzn-2023_epyc-gen-3"),
        &catalog(),
        &needs(4, None),
        &opts,
    )
    .unwrap();
    assert_eq!(names(&zen3.types), ["c6a.4xlarge"]);
}

#[test]
fn families_missing_from_the_catalog() {
    let err = choose(
        &platform("rocky-9_unsold"),
        &catalog(),
        &needs(4, None),
        &CapacityOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, CapacityError::NoTypesOfFamilies { .. }));
    assert_eq!(
        err.to_string(),
        "platform rocky-9_unsold: the catalog has no instance type of its families (zz9)"
    );
}

#[test]
fn arch_mismatch_is_its_own_error() {
    let err = choose(
        &platform("amzn-2023_mislabelled"),
        &catalog(),
        &needs(4, None),
        &CapacityOptions::default(),
    )
    .unwrap_err();
    assert_eq!(
        err,
        CapacityError::ArchMismatch {
            platform: "amzn-2023_mislabelled".into(),
            expected: Arch::Aarch64,
            found: Arch::X86_64,
            examples: "c7i.4xlarge".into(),
        }
    );
    assert!(err.to_string().contains("amzn-2023_mislabelled is aarch64"));
}

#[test]
fn none_fits_names_the_largest_and_smallest() {
    let p = platform("amzn-2023_graviton-3");
    let err = choose(
        &p,
        &catalog(),
        &needs(128, None),
        &CapacityOptions::default(),
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with("platform amzn-2023_graviton-3: no instance type fits"),
        "{msg}"
    );
    assert!(
        msg.contains("(>= 128 vCPU, >= 256 GiB and 2 GiB per vCPU)"),
        "{msg}"
    );
    assert!(
        msg.contains("largest available: c7g.16xlarge (64 vCPU, 128 GiB, 0 GPU)"),
        "{msg}"
    );
    assert!(
        msg.contains("smallest: c7g.2xlarge (8 vCPU, 16 GiB, 0 GPU)"),
        "{msg}"
    );

    // Too small a ceiling is the same error, and the smallest says why.
    let err = choose(
        &p,
        &catalog(),
        &needs(2, Some(4)),
        &CapacityOptions::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("smallest: c7g.2xlarge (8 vCPU"));
}

#[test]
fn memory_grows_with_the_cores() {
    let n = needs(4, None);
    let lean = InstanceType::new("c9x.8xlarge", Arch::X86_64, 32, 32 * GIB);
    assert!(
        !n.fits(&lean),
        "1 GiB per vCPU is too little for parallel C++ builds"
    );
    assert!(n.fits(&InstanceType::new(
        "c9x.8xlarge",
        Arch::X86_64,
        32,
        64 * GIB
    )));
    assert!(!n.fits(&InstanceType::new("c9x.large", Arch::X86_64, 2, 4 * GIB)));
}

#[test]
fn spot_ranking_differs_from_on_demand_ranking() {
    let plan = choose(
        &platform("amzn-2023_graviton-3"),
        &catalog(),
        &needs(8, Some(64)),
        &CapacityOptions::default(),
    )
    .unwrap();
    assert_eq!(
        plan.purchase,
        Purchase::Spot {
            allocation_strategy: SpotAllocationStrategy::PriceCapacityOptimized
        }
    );
    // Spot $/vCPU: 16xl 0.01484, 2xl 0.015, 4xl 0.015625, m7g 0.016875.
    assert_eq!(
        names(&plan.types),
        ["c7g.16xlarge", "c7g.2xlarge", "c7g.4xlarge", "m7g.4xlarge"]
    );
    assert!(plan.types.iter().all(|c| c.market == Market::Spot));
    assert_eq!(plan.types[0].hourly_price, Some(0.95));
    // On-demand c7g is linear (0.036125 $/vCPU for every size): the tie
    // goes to the larger type; m7g is dearer per vCPU.
    assert_eq!(
        names(&plan.on_demand_fallback),
        ["c7g.16xlarge", "c7g.4xlarge", "c7g.2xlarge", "m7g.4xlarge"]
    );
    assert!(plan
        .on_demand_fallback
        .iter()
        .all(|c| c.market == Market::OnDemand));
}

#[test]
fn newer_generation_wins_a_price_tie() {
    let cat = vec![
        x86("c6a.4xlarge", 16, 32, 0.64, 0.20),
        x86("c7i.4xlarge", 16, 32, 0.64, 0.20),
        x86("m7i.4xlarge", 16, 64, 0.64, 0.20),
    ];
    let mut p = platform("amzn-2023_xeon-gen-4");
    p.families.push("c6a".into());
    let plan = choose(&p, &cat, &needs(4, None), &CapacityOptions::default()).unwrap();
    assert_eq!(
        names(&plan.types),
        ["c7i.4xlarge", "m7i.4xlarge", "c6a.4xlarge"]
    );
}

#[test]
fn spot_dearer_than_on_demand_buys_on_demand() {
    let cat: Vec<InstanceType> = catalog()
        .into_iter()
        .map(|t| {
            let od = t.on_demand_price;
            t.with_prices(od, od.map(|p| p * 1.1))
        })
        .collect();
    let plan = choose(
        &platform("amzn-2023_graviton-3"),
        &cat,
        &needs(16, Some(16)),
        &CapacityOptions::default(),
    )
    .unwrap();
    match &plan.purchase {
        Purchase::OnDemand {
            reason:
                OnDemandReason::SpotNotCheaper {
                    cheapest_spot,
                    on_demand,
                },
        } => {
            assert!((cheapest_spot - 0.6358).abs() < 1e-9);
            assert_eq!(*on_demand, 0.578);
        }
        other => panic!("expected on-demand, got {other:?}"),
    }
    assert_eq!(names(&plan.types), ["c7g.4xlarge", "m7g.4xlarge"]);
    assert_eq!(plan.types, plan.on_demand_fallback);
}

#[test]
fn no_spot_price_or_support_buys_on_demand() {
    let p = platform("amzn-2023_graviton-3");
    let opts = CapacityOptions::default();
    let no_price: Vec<InstanceType> = catalog()
        .into_iter()
        .map(|t| {
            let od = t.on_demand_price;
            t.with_prices(od, None)
        })
        .collect();
    let plan = choose(&p, &no_price, &needs(16, Some(16)), &opts).unwrap();
    assert_eq!(
        plan.purchase,
        Purchase::OnDemand {
            reason: OnDemandReason::NoSpotPrice
        }
    );

    let no_spot: Vec<InstanceType> = catalog()
        .into_iter()
        .map(|t| InstanceType {
            spot_supported: false,
            ..t
        })
        .collect();
    let plan = choose(&p, &no_spot, &needs(16, Some(16)), &opts).unwrap();
    assert_eq!(
        plan.purchase,
        Purchase::OnDemand {
            reason: OnDemandReason::SpotNotSupported
        }
    );

    let off = CapacityOptions {
        allow_spot: false,
        ..opts
    };
    let plan = choose(&p, &catalog(), &needs(16, Some(16)), &off).unwrap();
    assert_eq!(
        plan.purchase.to_owned(),
        Purchase::OnDemand {
            reason: OnDemandReason::SpotDisabled
        }
    );
}

#[test]
fn spot_only_offers_types_that_support_it() {
    // One type cannot be bought on spot; the other can: spot, without it.
    let cat = vec![
        InstanceType {
            spot_supported: false,
            ..arm("c7g.4xlarge", 16, 32, 0.578, 0.10)
        },
        arm("m7g.4xlarge", 16, 64, 0.6528, 0.27),
    ];
    let plan = choose(
        &platform("amzn-2023_graviton-3"),
        &cat,
        &needs(16, None),
        &CapacityOptions::default(),
    )
    .unwrap();
    assert!(plan.purchase.is_spot());
    assert_eq!(names(&plan.types), ["m7g.4xlarge"]);
    assert_eq!(
        names(&plan.on_demand_fallback),
        ["c7g.4xlarge", "m7g.4xlarge"]
    );
}

#[test]
fn unknown_on_demand_price_does_not_stop_spot() {
    // What the EC2 adapter sees against moto: spot prices, no on-demand.
    let cat: Vec<InstanceType> = catalog()
        .into_iter()
        .map(|t| t.with_prices(None, Some(0.00001)))
        .collect();
    let plan = choose(
        &platform("amzn-2023_graviton-3"),
        &cat,
        &needs(8, Some(64)),
        &CapacityOptions::default(),
    )
    .unwrap();
    assert!(plan.purchase.is_spot());
    assert_eq!(plan.types[0].instance_type, "c7g.16xlarge");
    assert!(plan
        .on_demand_fallback
        .iter()
        .all(|c| c.hourly_price.is_none()));
}

#[test]
fn max_types_cuts_both_lists() {
    let opts = CapacityOptions {
        max_types: 2,
        ..CapacityOptions::default()
    };
    let plan = choose(
        &platform("amzn-2023_graviton-3"),
        &catalog(),
        &needs(8, Some(64)),
        &opts,
    )
    .unwrap();
    assert_eq!(names(&plan.types), ["c7g.16xlarge", "c7g.2xlarge"]);
    assert_eq!(
        names(&plan.on_demand_fallback),
        ["c7g.16xlarge", "c7g.4xlarge"]
    );
    let zero = CapacityOptions {
        max_types: 0,
        ..CapacityOptions::default()
    };
    let plan = choose(
        &platform("amzn-2023_graviton-3"),
        &catalog(),
        &needs(8, Some(64)),
        &zero,
    )
    .unwrap();
    assert_eq!(plan.types.len(), 1);
}

#[test]
fn a_cuda_overlay_builds_on_cpu_only_types() {
    let p = platform("amzn-2023_epyc-gen-3_h100");
    let n = BatchNeeds::for_batch(3, &p);
    assert_eq!(n.min_gpus, 0);
    let plan = choose(&p, &catalog(), &n, &CapacityOptions::default()).unwrap();
    assert!(!plan.types.is_empty());
    assert!(
        plan.types
            .iter()
            .all(|t| t.instance_type.starts_with("c6a.") && t.gpus == 0),
        "{:?}",
        names(&plan.types)
    );
}

/// A platform whose nodes build on its GPU (an accelerator that is not a
/// CUDA overlay).
fn on_gpu(name: &str) -> Platform {
    let mut p = platform(name);
    p.base = None;
    p.families = p.gpu.as_ref().unwrap().families.clone();
    p
}

#[test]
fn gpu_platform_takes_only_its_gpu() {
    let p = on_gpu("amzn-2023_epyc-gen-3_l4");
    let n = BatchNeeds::for_batch(3, &p);
    assert_eq!(n.min_gpus, 1);
    assert_eq!(n.max_vcpus, None);
    let mut cat = catalog();
    // A g6 the catalog reports without GPU (e.g. missing GpuInfo) does
    // not fit a GPU batch.
    cat.push(x86("g6.2xlarge", 8, 32, 0.9776, 0.01));
    let plan = choose(&p, &cat, &n, &CapacityOptions::default()).unwrap();
    // g6.4xlarge: 0.0325 $/vCPU, g6.xlarge: 0.0775; not g6.8xlarge (L40S),
    // g6e (not a family of the platform), c6a (no GPU family).
    assert_eq!(names(&plan.types), ["g6.4xlarge", "g6.xlarge"]);

    let h100 = on_gpu("amzn-2023_epyc-gen-3_h100");
    let plan = choose(
        &h100,
        &cat,
        &BatchNeeds::for_batch(3, &h100),
        &CapacityOptions::default(),
    )
    .unwrap();
    assert_eq!(names(&plan.types), ["p5.48xlarge"]);

    // Only wrong models: say so.
    let wrong: Vec<InstanceType> = catalog()
        .into_iter()
        .filter(|t| t.name == "g6.8xlarge")
        .collect();
    let err = choose(&p, &wrong, &n, &CapacityOptions::default()).unwrap_err();
    assert_eq!(
            err.to_string(),
            "platform amzn-2023_epyc-gen-3_l4: no instance type of its families has GPU 'NVIDIA L4' (found: L40S on g6.8xlarge)"
        );
}

#[test]
fn gpu_models_match_by_words() {
    assert!(gpu_model_matches("NVIDIA H100", "H100"));
    assert!(gpu_model_matches("NVIDIA H100", "NVIDIA H100"));
    assert!(gpu_model_matches("NVIDIA A100 40GB", "A100"));
    assert!(gpu_model_matches("NVIDIA T4G", "T4g"));
    assert!(!gpu_model_matches("NVIDIA L40S", "L4"));
    assert!(!gpu_model_matches("NVIDIA T4G", "T4"));
    assert!(!gpu_model_matches("NVIDIA H100", ""));
}

#[test]
fn order_is_deterministic() {
    let p = platform("amzn-2023_graviton-3");
    let n = needs(8, Some(64));
    let opts = CapacityOptions::default();
    let plan = choose(&p, &catalog(), &n, &opts).unwrap();
    let mut reversed = catalog();
    reversed.reverse();
    reversed.extend(catalog()); // duplicates from paging change nothing
    assert_eq!(choose(&p, &reversed, &n, &opts).unwrap(), plan);
    // Exact ties fall to the name.
    let twins = vec![
        arm("m7g.4xlarge", 16, 64, 0.6, 0.2),
        arm("c7g.4xlarge", 16, 64, 0.6, 0.2),
    ];
    let plan = choose(&p, &twins, &n, &opts).unwrap();
    assert_eq!(names(&plan.types), ["c7g.4xlarge", "m7g.4xlarge"]);
}

#[test]
fn batch_size_sets_the_cores() {
    let p = platform("amzn-2023_graviton-3");
    let small = BatchNeeds::for_batch(3, &p);
    assert_eq!((small.min_vcpus, small.max_vcpus), (4, Some(16)));
    assert_eq!(small.min_memory_mib, 8 * GIB);
    assert_eq!(small.min_gpus, 0);
    let mid = BatchNeeds::for_batch(50, &p);
    assert_eq!((mid.min_vcpus, mid.max_vcpus), (16, Some(64)));
    let huge = BatchNeeds::for_batch(5000, &p);
    assert_eq!((huge.min_vcpus, huge.max_vcpus), (32, Some(192)));
    assert_eq!(BatchNeeds::for_batch(0, &p), small);
    // A 3-module batch does not pay for 64 vCPUs.
    let plan = choose(&p, &catalog(), &small, &CapacityOptions::default()).unwrap();
    assert_eq!(
        names(&plan.types),
        ["c7g.2xlarge", "c7g.4xlarge", "m7g.4xlarge"]
    );
}

#[test]
fn ami_parameter_per_os_and_arch() {
    assert_eq!(
        ssm_ami_parameter("amzn-2023", Arch::X86_64).unwrap(),
        "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
    );
    assert_eq!(
        ssm_ami_parameter("amzn-2023", Arch::Aarch64).unwrap(),
        "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64"
    );
    assert_eq!(
        ssm_ami_parameter("ubuntu-24.04", Arch::Aarch64).unwrap(),
        "/aws/service/canonical/ubuntu/server/24.04/stable/current/arm64/hvm/ebs-gp3/ami-id"
    );
    assert_eq!(
        AmiSource::for_platform(&platform("amzn-2023_graviton-3"), None).unwrap(),
        AmiSource::SsmParameter(
            "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64".into()
        )
    );
    let err = AmiSource::for_platform(&platform("rocky-9_unsold"), None).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("unsupported os 'rocky-9' for x86_64"),
        "{err}"
    );
    // A pinned AMI wins over the parameter, even for an unsupported os.
    assert_eq!(
        AmiSource::for_platform(&platform("rocky-9_unsold"), Some("ami-0abcdef1234567890"))
            .unwrap(),
        AmiSource::Pinned("ami-0abcdef1234567890".into())
    );
}

#[test]
fn every_default_platform_has_an_ami_and_needs() {
    for p in Platforms::default_set().unwrap().platforms {
        let source = AmiSource::for_platform(&p, None).unwrap();
        let arch = match p.arch() {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "arm64",
        };
        assert!(matches!(source, AmiSource::SsmParameter(ref s) if s.ends_with(arch)));
        assert_eq!(
            BatchNeeds::for_batch(10, &p).min_gpus,
            u32::from(p.builds_on_gpu())
        );
    }
}

#[test]
fn pinned_ami_is_validated() {
    for ok in ["ami-12345678", "ami-0abcdef1234567890"] {
        assert_eq!(AmiSource::pinned(ok).unwrap(), AmiSource::Pinned(ok.into()));
    }
    for bad in [
        "",
        "ami-",
        "ami-1234567",
        "ami-0abcdef12345678901",
        "ami-0ABCDEF1234567890",
        "AMI-12345678",
        "ami-1234567g",
        "snap-12345678",
        "ami-12345678; reboot",
        " ami-12345678",
    ] {
        assert_eq!(
            AmiSource::pinned(bad).unwrap_err(),
            AmiError::InvalidAmiId(bad.into()),
            "{bad:?}"
        );
    }
}

#[test]
fn launch_spec_is_locked_down() {
    let p = platform("amzn-2023_graviton-3");
    let plan = choose(
        &p,
        &catalog(),
        &needs(16, Some(16)),
        &CapacityOptions::default(),
    )
    .unwrap();
    let ami = AmiSource::for_platform(&p, None).unwrap();
    let exec = "arn:aws:states:us-east-1:123456789012:execution:ebfleet:run-2026-11-24";
    let spec = LaunchSpec::new(exec, &p, "b0007", &plan, ami.clone()).unwrap();
    assert_eq!(spec.tags[TAG_EXECUTION], exec);
    assert_eq!(spec.tags[TAG_PLATFORM], "amzn-2023_graviton-3");
    assert_eq!(spec.tags[TAG_BATCH], "b0007");
    assert_eq!(spec.tags.len(), 3);
    assert!(spec.metadata.http_tokens_required);
    assert_eq!(spec.metadata.http_put_response_hop_limit, 1);
    assert_eq!(spec.key_name, None);
    assert_eq!(spec.instance_count, 1);
    assert!(spec.purchase.is_spot());
    assert_eq!(spec.instance_types, ["c7g.4xlarge", "m7g.4xlarge"]);
    assert_eq!(spec.ami, ami);
    assert_eq!(spec.root_volume.size_gib, DEFAULT_ROOT_VOLUME_GIB);
    assert_eq!(spec.root_volume.volume_type, "gp3");
    assert!(spec.root_volume.encrypted && spec.root_volume.delete_on_termination);

    let fallback = spec.on_demand_fallback().unwrap();
    assert_eq!(
        fallback.purchase,
        Purchase::OnDemand {
            reason: OnDemandReason::SpotUnavailable
        }
    );
    assert_eq!(fallback.instance_types, plan.fallback_type_names());
    assert_eq!(
        (fallback.tags.clone(), fallback.key_name.clone()),
        (spec.tags.clone(), None)
    );
    assert!(fallback.on_demand_fallback().is_none());

    let big = spec.clone().with_root_volume(RootVolume::gp3(500).unwrap());
    assert_eq!(big.root_volume.size_gib, 500);
    assert_eq!(
        big.on_demand_fallback().unwrap().root_volume,
        big.root_volume
    );

    for bad in ["", "b1;reboot", "$(id)", &"x".repeat(257)] {
        let err = LaunchSpec::new(exec, &p, bad, &plan, ami.clone()).unwrap_err();
        assert!(
            matches!(err, LaunchSpecError::InvalidTagValue { ref key, .. } if key == TAG_BATCH)
        );
    }
}

#[test]
fn root_volume_size_is_range_checked() {
    assert_eq!(RootVolume::default(), RootVolume::gp3(200).unwrap());
    for ok in [MIN_ROOT_VOLUME_GIB, 200, MAX_ROOT_VOLUME_GIB] {
        let v = RootVolume::gp3(ok).unwrap();
        assert_eq!((v.size_gib, v.volume_type.as_str()), (ok, "gp3"));
        assert!(v.encrypted && v.delete_on_termination);
    }
    for bad in [0, 8, MIN_ROOT_VOLUME_GIB - 1, MAX_ROOT_VOLUME_GIB + 1] {
        let err = RootVolume::gp3(bad).unwrap_err();
        assert_eq!(err, LaunchSpecError::InvalidRootVolume(bad));
        assert!(err.to_string().contains("30 to 16384 GiB"), "{err}");
    }
}

#[test]
fn plan_serialises_for_the_state_machine() {
    let p = platform("amzn-2023_graviton-3");
    let plan = choose(
        &p,
        &catalog(),
        &needs(16, Some(16)),
        &CapacityOptions::default(),
    )
    .unwrap();
    let json = serde_json::to_value(&plan).unwrap();
    assert_eq!(json["purchase"]["market"], "spot");
    assert_eq!(
        json["purchase"]["allocation_strategy"],
        "price-capacity-optimized"
    );
    let back: CapacityPlan = serde_json::from_value(json).unwrap();
    assert_eq!(back, plan);
    let od = Purchase::OnDemand {
        reason: OnDemandReason::NoSpotPrice,
    };
    assert_eq!(
        serde_json::to_value(&od).unwrap(),
        serde_json::json!({"market": "on_demand", "reason": "no_spot_price"})
    );
}
