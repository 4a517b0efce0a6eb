//! Bytes `sync` downloads for one batch against every tarball of the
//! platform (what a node that mirrors the platform downloads), on a real
//! plan (`ebfleet plan --json` over EasyBuild's easyconfigs) and a bucket
//! holding a tarball for each module of the plan's first batches (at least
//! `--min-built` modules). Run by `scripts/bench-sync.sh` against moto.
//!
//! Tarball sizes are not known without building: each module gets
//! incompressible content of a size drawn log-uniformly between 32 KiB and
//! 4 MiB from its name (deterministic), so the byte ratio follows the
//! module-count ratio; both are printed.

use anyhow::{bail, Context as _, Result};
use ebfleet_aws::s3::{Store, Upload};
use ebfleet_core::arch::Arch;
use ebfleet_core::checksum::sha256_hex;
use ebfleet_core::layout::{batch_key, module_file_key, tarball_key};
use ebfleet_core::names::{ExecutionName, ModuleName, PlatformName};
use ebfleet_core::platform::Platforms;
use ebfleet_node::archive::{file_sha256, pack};
use ebfleet_node::transfer::{upload_file, UploadOptions};
use ebfleet_planner::plan::{build_environment, Batch, ModuleTable, PlatformPlan};
use ebfleet_planner::wire::batch_file;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// What the bench reads of `ebfleet plan --json`.
#[derive(Deserialize)]
struct PlanJson {
    platforms: Vec<PlatformPlan>,
    modules: HashMap<Arch, ModuleTable>,
}

struct Args {
    plan: PathBuf,
    easyconfigs: PathBuf,
    node: PathBuf,
    work: PathBuf,
    bucket: String,
    min_built: usize,
}

fn args() -> Result<Args> {
    let mut a = std::env::args().skip(1);
    let mut get = BTreeMap::new();
    while let Some(k) = a.next() {
        let v = a.next().with_context(|| format!("{k} needs a value"))?;
        get.insert(k, v);
    }
    let take = |k: &str| get.get(k).cloned().with_context(|| format!("missing {k}"));
    Ok(Args {
        plan: take("--plan")?.into(),
        easyconfigs: take("--easyconfigs")?.into(),
        node: take("--node")?.into(),
        work: take("--work")?.into(),
        bucket: take("--bucket")?,
        min_built: take("--min-built")?.parse()?,
    })
}

/// A size in [32 KiB, 4 MiB], log-uniform, from the module's name.
fn size_of(module: &str) -> u64 {
    let h = sha256_hex(module.as_bytes());
    let x = u64::from_str_radix(&h[..12], 16).unwrap_or(0) as f64 / (1u64 << 48) as f64;
    let (lo, hi) = ((32u64 << 10) as f64, (4u64 << 20) as f64);
    (lo * (hi / lo).powf(x)) as u64
}

/// Incompressible bytes from a seed (xorshift).
fn noise(seed: &str, n: u64) -> Vec<u8> {
    let h = sha256_hex(seed.as_bytes());
    let mut s = u64::from_str_radix(&h[..16], 16).unwrap_or(1) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 24) as u8
        })
        .collect()
}

/// Pack and upload one module as if a node had built it.
async fn publish(
    store: &Store,
    platform: &PlatformName,
    m: &ModuleName,
    root: &Path,
    scratch: &Path,
) -> Result<u64> {
    let install = scratch.join("software").join(m.install_subdir());
    std::fs::create_dir_all(install.join("lib"))?;
    std::fs::write(
        install.join("lib/payload.bin"),
        noise(m.as_str(), size_of(m.as_str())),
    )?;
    let tarball = scratch.join("t.tar.zst");
    let packed = pack(&install, &m.install_subdir(), &tarball)?;
    let opts = UploadOptions::default();
    let state = scratch.join("multipart");
    let up = Upload {
        content_type: "application/zstd".into(),
        sha256: packed.sha256.clone(),
        metadata: [("installpath".to_string(), root.display().to_string())].into(),
    };
    upload_file(
        store,
        &tarball_key(platform, m),
        &tarball,
        &up,
        &opts,
        &state,
    )
    .await?;
    let lua = scratch.join("m.lua");
    std::fs::write(
        &lua,
        format!(
            "-- {m}\nsetenv(\"EBROOT\", \"{}\")\n",
            root.join("software").join(m.install_subdir()).display()
        ),
    )?;
    let (_, sha) = file_sha256(&lua)?;
    let up = Upload {
        content_type: "text/x-lua".into(),
        sha256: sha,
        metadata: BTreeMap::new(),
    };
    upload_file(
        store,
        &module_file_key(platform, m),
        &lua,
        &up,
        &opts,
        &state,
    )
    .await?;
    std::fs::remove_dir_all(scratch.join("software"))?;
    Ok(packed.size)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

#[tokio::main]
async fn main() -> Result<()> {
    let a = args()?;
    let plan: PlanJson =
        serde_json::from_slice(&std::fs::read(&a.plan)?).context("reading the plan")?;
    let pp = plan.platforms.first().context("the plan has no platform")?;
    let table = plan.modules.get(&pp.arch).context("no module table")?;
    let platforms = Platforms::default_set()?;
    let platform = platforms
        .platforms
        .iter()
        .find(|p| p.name == pp.platform)
        .context("platform not in the default set")?;
    let pname = PlatformName::of(platform)?;

    // The platform's state: the first batches, at least --min-built modules.
    let mut built: Vec<&String> = Vec::new();
    let mut next = 0;
    while built.len() < a.min_built {
        let Some(b) = pp.batches.get(next) else {
            bail!("the plan has fewer than {} modules", a.min_built)
        };
        built.extend(&b.modules);
        next += 1;
    }
    let target = pp
        .batches
        .get(next)
        .context("no batch after the built ones")?;
    let built_set: HashSet<&str> = built.iter().map(|m| m.as_str()).collect();
    let needs_of = |b: &Batch| {
        build_environment(table, &b.modules).map_err(|m| anyhow::anyhow!("{m} not in the table"))
    };
    if let Some(n) = needs_of(target)?.iter().find(|n| !built_set.contains(*n)) {
        bail!("batch {next} needs {n}, which is not built");
    }

    let conf = ebfleet_aws::load_config().await;
    let store = Store::from_conf(&conf, &a.bucket);
    let root = a.work.join("root");
    let scratch = a.work.join("scratch");
    eprintln!(
        "publishing {} modules of {} (batches 0..{next})",
        built.len(),
        pp.platform
    );
    let mut total = 0u64;
    for (i, m) in built.iter().enumerate() {
        total += publish(&store, &pname, &m.parse()?, &root, &scratch).await?;
        if (i + 1) % 50 == 0 {
            eprintln!("  {} / {}", i + 1, built.len());
        }
    }
    // The batch to sync: its file and its easyconfigs, from the real tree.
    let execution: ExecutionName = "bench-sync".parse()?;
    let file = batch_file(pp, table, platform, &execution, next)?;
    for b in &file.builds {
        let bytes = std::fs::read(a.easyconfigs.join(b.easyconfig.as_str()))?;
        store
            .put_bytes(&b.easyconfig_key, bytes, "text/plain")
            .await?;
    }
    store
        .put_json(&batch_key(&execution, &pname, next), &file)
        .await?;

    // Everything a mirroring node downloads: every tarball of the platform.
    let all = store.list(&format!("{pname}/software/")).await?;
    let all_bytes: u64 = all.iter().map(|o| o.size).sum();

    let started = std::time::Instant::now();
    let out = Command::new(&a.node)
        .args([
            "sync",
            "--bucket",
            &a.bucket,
            "--batch",
            &batch_key(&execution, &pname, next),
        ])
        .args([
            "--execution",
            execution.as_str(),
            "--platform",
            pname.as_str(),
        ])
        .env("EBFLEET_NODE_ROOT", &root)
        .env("EBFLEET_NODE_ENV", a.work.join("none.env"))
        .output()?;
    let secs = started.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!("sync failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let sync: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let tarball_bytes = sync["needs"]["bytes"].as_u64().unwrap_or(0);
    let synced = sync["bytes_downloaded"].as_u64().unwrap_or(0);

    // Plan-wide: how much of what is built before each batch it needs.
    let mut before = 0usize;
    let fractions: Vec<f64> = pp
        .batches
        .iter()
        .map(|b| {
            let f = if before == 0 {
                0.0
            } else {
                needs_of(b)?.len() as f64 / before as f64
            };
            before += b.modules.len();
            Ok(f)
        })
        .skip(1)
        .collect::<Result<_>>()?;

    println!("platform                {}", pp.platform);
    println!(
        "platform state          {} modules, {} tarballs, {} bytes ({:.1} MiB)",
        built.len(),
        all.len(),
        all_bytes,
        all_bytes as f64 / 1048576.0
    );
    println!(
        "batch                   {next}: {} builds, {} needs",
        file.builds.len(),
        file.needs.len()
    );
    println!("sync downloaded         {synced} bytes ({:.1} MiB) in {secs:.1} s: {} tarballs + module files = {tarball_bytes} bytes, {} easyconfigs", synced as f64 / 1048576.0, sync["needs"]["downloaded"], sync["easyconfigs"]["downloaded"]);
    println!("naive node downloads    {all_bytes} bytes (every tarball of the platform)");
    println!(
        "ratio (bytes)           {:.4}  ({:.1}x less)",
        synced as f64 / all_bytes as f64,
        all_bytes as f64 / synced.max(1) as f64
    );
    println!(
        "ratio (modules)         {:.4}  ({} of {})",
        file.needs.len() as f64 / built.len() as f64,
        file.needs.len(),
        built.len()
    );
    println!(
        "whole plan              {} batches; median needs / modules built before a batch: {:.4}",
        pp.batches.len(),
        median(fractions)
    );
    let _ = total;
    Ok(())
}
