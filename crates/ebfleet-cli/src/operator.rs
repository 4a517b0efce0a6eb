//! The operator's commands, against the deployed stack: `run`, `status`,
//! `logs`, `pull`, `report`. The stack is found by name (its CloudFormation
//! outputs); credentials, profile and region come from the standard chain
//! and the aws CLI's options.
//!
//! Exit codes a script can use: 0 done (or still running) with nothing
//! failed; 1 a module failed or was skipped; 2 an error (bad arguments, an
//! AWS call); 3 the run itself failed, timed out or was aborted.

use crate::args::{
    ExecutionArgs, LogsArgs, Output, PullArgs, ReportArgs, RunArgs, StackArgs, StatusArgs,
};
use crate::progress::Bar;
use crate::report::hms;
use anyhow::{bail, Context, Result};
use ebfleet_aws::dynamodb::Records;
use ebfleet_aws::kms::{signature_bytes, Kms};
use ebfleet_aws::s3::{S3Error, Store};
use ebfleet_aws::sfn::StepFunctions;
use ebfleet_aws::stack::Deployed;
use ebfleet_aws::ConfigOverrides;
use ebfleet_core::build_graph::graph_key;
use ebfleet_core::build_graph::BuildGraph;
use ebfleet_core::built::Recorded;
use ebfleet_core::clock::unix_now;
use ebfleet_core::layout::{log_prefix, plans_prefix, run_log_prefix, summary_key};
use ebfleet_core::names::{ExecutionName, ModuleName, PlatformName};
use ebfleet_core::record::{tarball_statement, ModuleRecord, Status};
use ebfleet_core::status::{apply_summary, platform_status, ModuleState, RunStatus};
use ebfleet_core::summary::RunSummary;
use ebfleet_core::trigger::{execution_name, ExecutionInput, RunOptions};
use ebfleet_node::transfer::{download, Verify};
use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

/// Exit code: a module failed or was skipped.
const MODULES_FAILED: u8 = 1;
/// Exit code: the run failed, timed out or was aborted.
const RUN_FAILED: u8 = 3;

/// Run `f` on a runtime of its own: the commands are one sequence of calls.
fn block_on<T, F: std::future::Future<Output = Result<T>>>(f: F) -> Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(f)
}

/// What the stack's records say of each of `platforms` (what is built, how
/// long builds took), as the Plan Lambda reads them: `ebfleet plan
/// --recorded`.
pub fn recorded(at: &StackArgs, platforms: &[&str]) -> Result<HashMap<String, Recorded>> {
    block_on(async move {
        let stack = connect(at).await?;
        let mut out = HashMap::new();
        for &p in platforms {
            let name: PlatformName = p.parse()?;
            let r = stack.records.recorded(&name).await?;
            out.insert(p.to_string(), r);
        }
        Ok(out)
    })
}

/// The deployed stack's resources, with a client each.
struct Stack {
    deployed: Deployed,
    store: Store,
    records: Records,
    sfn: StepFunctions,
    kms: Kms,
}

async fn connect(a: &StackArgs) -> Result<Stack> {
    let config = ebfleet_aws::load_config_with(&ConfigOverrides {
        profile: a.profile.clone(),
        region: a.region.clone(),
        endpoint_url: a.endpoint_url.clone(),
    })
    .await;
    let deployed = ebfleet_aws::stack::find(&config, &a.stack).await?;
    Ok(Stack {
        store: Store::from_conf(&config, &deployed.bucket),
        records: Records::from_conf(&config, &deployed.table),
        sfn: StepFunctions::from_conf(&config),
        kms: Kms::from_conf(&config),
        deployed,
    })
}

/// The ARN of the run named `name` (execution names are unique per state
/// machine).
fn execution_arn(d: &Deployed, name: &str) -> String {
    format!(
        "{}:{name}",
        d.state_machine_arn
            .replacen(":stateMachine:", ":execution:", 1)
    )
}

impl Stack {
    /// The run `--execution` names, or the newest.
    async fn execution(&self, a: &ExecutionArgs) -> Result<String> {
        if let Some(e) = &a.execution {
            return Ok(if e.starts_with("arn:") {
                e.clone()
            } else {
                execution_arn(&self.deployed, e)
            });
        }
        let all = self
            .sfn
            .executions(&self.deployed.state_machine_arn)
            .await?;
        match all.first() {
            Some(newest) => Ok(newest.arn.clone()),
            None => bail!("stack {} has no run yet", self.deployed.stack),
        }
    }

    /// Where run `arn` stands on each of its platforms (or `only` those).
    async fn status(&self, arn: &str, only: &[String]) -> Result<RunStatus> {
        let info = self.sfn.describe(arn).await?;
        let execution: ExecutionName = info
            .name
            .parse()
            .with_context(|| format!("execution {arn} has a name ebfleet did not give"))?;
        let running = info.is_running();
        let node_seconds =
            ebfleet_core::status::node_seconds(info.output.as_deref().unwrap_or_default());
        // One listing of the run's platform directories, not of their
        // thousands of unit files.
        let plans = plans_prefix(&execution);
        let mut platforms = Vec::new();
        for dir in self.store.list_dirs(&plans).await? {
            let p = dir[plans.len()..].trim_end_matches('/');
            if !only.is_empty() && !only.iter().any(|q| q == p) {
                continue;
            }
            let platform: PlatformName = p.parse()?;
            let key = graph_key(&execution, &platform);
            let bytes = match self.store.get_bytes(&key).await {
                Ok(b) => b,
                // Planned nothing there (yet).
                Err(S3Error::NotFound { .. }) => continue,
                Err(e) => return Err(e.into()),
            };
            let text = String::from_utf8(bytes).with_context(|| format!("{key} is not UTF-8"))?;
            let graph = BuildGraph::from_json(&text).with_context(|| key.clone())?;
            let records = self.records.modules(&platform).await?;
            let mut status =
                platform_status(&graph, &records, execution.as_str(), info.started, running);
            status.node_seconds = node_seconds.get(p).copied();
            platforms.push(status);
        }
        let mut status = RunStatus {
            execution: execution.to_string(),
            execution_arn: arn.to_string(),
            status: info.status,
            started: info.started,
            stopped: info.stopped,
            error: info.error,
            cause: info.cause,
            summary_key: None,
            instance_hours: None,
            usd: None,
            platforms,
        };
        // The run's stored summary, once it ended: actual instance hours
        // and dollars. A missing one (still running, or a run of before)
        // or one that cannot be read leaves them out.
        let key = summary_key(&execution);
        match self.store.get_json::<RunSummary>(&key).await {
            Ok(summary) => apply_summary(&mut status, &summary, &key),
            Err(S3Error::NotFound { .. }) => {}
            Err(e) => eprintln!("ebfleet: the run's summary is left out: {e}"),
        }
        Ok(status)
    }
}

/// What a run's status tells a script.
fn exit_code(s: &RunStatus) -> ExitCode {
    if !s.is_running() && s.status != "SUCCEEDED" {
        return ExitCode::from(RUN_FAILED);
    }
    let failed = s
        .platforms
        .iter()
        .any(|p| p.counts.failed + p.counts.skipped > 0);
    if failed {
        ExitCode::from(MODULES_FAILED)
    } else {
        ExitCode::SUCCESS
    }
}

// ---------------------------------------------------------------------------
// run

pub fn run(a: RunArgs) -> Result<ExitCode> {
    let mut options = RunOptions {
        toolchains: a.toolchains.clone(),
        floors: a.select.floors.clone(),
        include: a.select.include.clone(),
        exclude: a.select.exclude.clone(),
        easystack: Vec::new(),
    };
    if let Some(f) = &a.select.easystack {
        options.easystack = crate::commands::read_easystack(f)?;
    }
    let platforms: Vec<PlatformName> = parse_each(&a.platform, "--platform")?;
    let name: ExecutionName = match &a.name {
        Some(n) => n.parse().with_context(|| format!("--name {n:?}"))?,
        None => execution_name(&"run".parse()?, unix_now(), &[]),
    };
    let input = ExecutionInput::full(name.clone())
        .with_platforms(platforms)
        .with_retry_failed(a.retry_failed)
        .with_options(options)?;
    block_on(async move {
        let stack = connect(&a.aws.at).await?;
        let sm = &stack.deployed.state_machine_arn;
        let running = stack.sfn.running(sm).await?;
        if !running.is_empty() && !a.force {
            bail!(
                "a run is going on ({}); it will plan what is new when it ends. \
                 Start anyway with --force",
                running.join(", ")
            );
        }
        let arn = stack.sfn.start(sm, &name, &input).await?;
        if !a.wait {
            print_started(&name, &arn, a.aws.output)?;
            return Ok(ExitCode::SUCCESS);
        }
        eprintln!("started {name}; following it (Ctrl-C stops following, not the run)");
        let status = follow(&stack, &arn, a.poll).await?;
        print_status(&status, a.aws.output)?;
        Ok(exit_code(&status))
    })
}

fn print_started(name: &ExecutionName, arn: &str, output: Output) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match output {
        Output::Json => writeln!(
            out,
            "{}",
            serde_json::json!({"execution": name.as_str(), "execution_arn": arn})
        )?,
        Output::Table => writeln!(out, "started {name}\n  {arn}")?,
        Output::Text => writeln!(out, "{name}\t{arn}")?,
    }
    Ok(())
}

/// Look at run `arn` every `poll` seconds until it ends, with a progress
/// bar of its modules on a terminal; its final status. The modules are
/// counted every [`COUNT_EVERY`] looks only: a count reads every platform's
/// records (7,000 items each at full scale), a look is one call.
async fn follow(stack: &Stack, arn: &str, poll: u64) -> Result<RunStatus> {
    let bar = Bar::new();
    let pause = std::time::Duration::from_secs(poll.max(1));
    let mut looks = 0u64;
    loop {
        let count = looks.is_multiple_of(COUNT_EVERY);
        looks += 1;
        if !count && stack.sfn.describe(arn).await?.is_running() {
            tokio::time::sleep(pause).await;
            continue;
        }
        let status = stack.status(arn, &[]).await?;
        if !status.is_running() {
            bar.finish();
            return Ok(status);
        }
        let (planned, done, failed) = status.platforms.iter().fold((0, 0, 0), |(p, d, f), s| {
            let c = s.counts;
            (
                p + s.planned,
                d + c.built + c.failed + c.skipped,
                f + c.failed + c.skipped,
            )
        });
        bar.show(
            &format!(
                "{} platform(s), {failed} failed or skipped",
                status.platforms.len()
            ),
            done,
            planned,
        );
        tokio::time::sleep(pause).await;
    }
}

/// Looks at a followed run per count of its modules.
const COUNT_EVERY: u64 = 10;

// ---------------------------------------------------------------------------
// status

pub fn status(a: StatusArgs) -> Result<ExitCode> {
    block_on(async move {
        let stack = connect(&a.aws.at).await?;
        let arn = stack.execution(&a.execution).await?;
        let status = stack.status(&arn, &a.platform).await?;
        print_status(&status, a.aws.output)?;
        Ok(exit_code(&status))
    })
}

/// The first line of `s`, cut to `max` characters.
fn short(s: &str, max: usize) -> String {
    let line = s
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    if line.chars().count() > max {
        format!("{}…", line.chars().take(max).collect::<String>())
    } else {
        line.to_string()
    }
}

fn print_status(s: &RunStatus, output: Output) -> Result<()> {
    write_status(&mut std::io::stdout().lock(), s, output)
}

/// A platform's actual instance hours and dollars from the run's stored
/// summary: `-` without a summary, `?` for dollars it could not price.
fn cost_cells(s: &RunStatus, instance_hours: Option<f64>, usd: Option<f64>) -> [String; 2] {
    let stored = s.summary_key.is_some();
    [
        instance_hours.map_or_else(|| "-".to_string(), |h| format!("{h:.2}")),
        match usd {
            Some(d) => format!("{d:.2}"),
            None if stored && instance_hours.is_some() => "?".to_string(),
            None => "-".to_string(),
        },
    ]
}

fn write_status(out: &mut impl Write, s: &RunStatus, output: Output) -> Result<()> {
    if output == Output::Json {
        serde_json::to_writer_pretty(&mut *out, s)?;
        writeln!(out)?;
        return Ok(());
    }
    let took = hms(s.stopped.unwrap_or_else(unix_now).saturating_sub(s.started));
    let rows: Vec<Vec<String>> = s
        .platforms
        .iter()
        .map(|p| {
            let c = p.counts;
            let [hours, usd] = cost_cells(s, p.instance_hours, p.usd);
            vec![
                p.platform.clone(),
                p.planned.to_string(),
                c.built.to_string(),
                c.failed.to_string(),
                c.skipped.to_string(),
                c.running.to_string(),
                c.pending.to_string(),
                c.not_built.to_string(),
                hms(p.build_seconds),
                p.node_seconds.map_or_else(|| "-".to_string(), hms),
                hours,
                usd,
            ]
        })
        .collect();
    let problems: Vec<Vec<String>> = s
        .platforms
        .iter()
        .flat_map(|p| {
            p.modules
                .iter()
                .filter(|m| matches!(m.state, ModuleState::Failed | ModuleState::Skipped))
                .map(|m| {
                    vec![
                        p.platform.clone(),
                        m.module.clone(),
                        m.state.as_str().to_string(),
                        m.error_class.map_or("", |c| c.as_str()).to_string(),
                        short(m.reason.as_deref().unwrap_or(""), 100),
                    ]
                })
        })
        .collect();
    if output == Output::Text {
        writeln!(out, "RUN\t{}\t{}\t{took}", s.execution, s.status)?;
        for r in rows {
            writeln!(out, "PLATFORM\t{}", r.join("\t"))?;
        }
        for r in problems {
            writeln!(out, "MODULE\t{}", r.join("\t"))?;
        }
        return Ok(());
    }
    writeln!(out, "run {}: {} after {took}", s.execution, s.status)?;
    if let Some(e) = &s.error {
        writeln!(
            out,
            "  {e}: {}",
            short(s.cause.as_deref().unwrap_or(""), 200)
        )?;
    }
    if s.summary_key.is_some() {
        let [hours, usd] = cost_cells(s, s.instance_hours, s.usd);
        let usd = if usd == "?" {
            "dollars unknown (a price was not known)".to_string()
        } else {
            format!("{usd} USD")
        };
        writeln!(out, "  actual: {hours} instance hours, {usd}")?;
    }
    if rows.is_empty() {
        writeln!(out, "  no platform planned yet")?;
        return Ok(());
    }
    writeln!(out)?;
    let head = [
        "PLATFORM",
        "PLANNED",
        "BUILT",
        "FAILED",
        "SKIPPED",
        "RUNNING",
        "PENDING",
        "NOT BUILT",
        "BUILD TIME",
        "NODE TIME",
        "INSTANCE HOURS",
        "USD",
    ];
    write!(out, "{}", table(&head, &rows))?;
    if !problems.is_empty() {
        writeln!(out)?;
        write!(
            out,
            "{}",
            table(
                &["PLATFORM", "MODULE", "STATE", "CLASS", "REASON"],
                &problems
            )
        )?;
        writeln!(
            out,
            "\n(ebfleet logs MODULE --platform PLATFORM prints a build's log)"
        )?;
    }
    Ok(())
}

/// Columns aligned to their widest cell.
fn table(head: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut l = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                l.push_str(c);
            } else {
                l.push_str(&format!("{c:<w$}  "));
            }
        }
        l.trim_end().to_string() + "\n"
    };
    let mut out = line(head.to_vec());
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

// ---------------------------------------------------------------------------
// logs

pub fn logs(a: LogsArgs) -> Result<ExitCode> {
    let platform: PlatformName = a.platform.parse().context("--platform")?;
    let module: ModuleName = a.module.parse().context("the module")?;
    block_on(async move {
        let stack = connect(&a.aws.at).await?;
        let execution = match &a.execution {
            Some(e) => e.parse::<ExecutionName>().context("--execution")?,
            None => {
                let record = stack.records.get(&platform, &module).await?;
                let Some(e) = record.and_then(|r| r.execution) else {
                    bail!("{module} has no recorded build on {platform}");
                };
                e.parse()?
            }
        };
        let prefix = run_log_prefix(&platform, &module, &execution);
        let objects = stack.store.list(&prefix).await?;
        if objects.is_empty() {
            bail!(
                "no logs of {module} on {platform} in run {execution} (s3://{}/{prefix})",
                stack.deployed.bucket
            );
        }
        let mut out = std::io::stdout().lock();
        for o in objects {
            let rel = &o.key[prefix.len()..];
            let Some(rel) = ebfleet_node::sync::safe_relative(rel) else {
                tracing::warn!(
                    "skipping a log whose name is not safe as a path: {:?}",
                    o.key
                );
                continue;
            };
            let bytes = stack.store.get_bytes(&o.key).await?;
            match &a.out {
                Some(dir) => {
                    let path = dir.join(&rel);
                    write_file(&path, &bytes)?;
                    writeln!(out, "{}", path.display())?;
                }
                None => {
                    writeln!(out, "==> s3://{}/{} <==", stack.deployed.bucket, o.key)?;
                    out.write_all(&bytes)?;
                    writeln!(out)?;
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

// ---------------------------------------------------------------------------
// pull

/// The metadata a tarball carries: the installpath it was built under.
const INSTALLPATH_METADATA: &str = ebfleet_node::sync::INSTALLPATH_METADATA;

pub fn pull(a: PullArgs) -> Result<ExitCode> {
    let platform: PlatformName = a.platform.parse().context("--platform")?;
    let wanted: Vec<ModuleName> = parse_each(&a.modules, "module")?;
    std::fs::create_dir_all(&a.prefix).with_context(|| a.prefix.display().to_string())?;
    let prefix = a.prefix.canonicalize()?;
    block_on(async move {
        let stack = connect(&a.aws.at).await?;
        let mut seen: BTreeSet<ModuleName> = wanted.iter().cloned().collect();
        let mut queue = wanted;
        let mut installed = Vec::new();
        while let Some(m) = queue.pop() {
            let record = stack.records.get(&platform, &m).await?;
            let loads = install(&stack, &platform, &m, record.as_ref(), &prefix).await?;
            for dep in loads {
                if seen.insert(dep.clone()) {
                    queue.push(dep);
                }
            }
            installed.push(record.expect("install checked it"));
        }
        print_pulled(&installed, &prefix, a.aws.output)?;
        Ok(ExitCode::SUCCESS)
    })
}

/// Install module `m` of `platform` from its record into `prefix`: its
/// tarball verified against the record's sha256 and unpacked, then its
/// module file; what the module file loads.
async fn install(
    stack: &Stack,
    platform: &PlatformName,
    m: &ModuleName,
    record: Option<&ModuleRecord>,
    prefix: &Path,
) -> Result<Vec<ModuleName>> {
    let Some(r) = record else {
        bail!("{m} has never been built on {platform}");
    };
    let (Status::Built, Some(tarball), Some(module_file_key)) =
        (r.status, &r.tarball, &r.module_file_key)
    else {
        bail!(
            "{m} is not built on {platform} (its record says {})",
            r.status
        );
    };
    let head = stack.store.head(&tarball.key).await?.with_context(|| {
        format!(
            "{m}: its tarball s3://{}/{} is gone",
            stack.store.bucket(),
            tarball.key
        )
    })?;
    if let Some(theirs) = head.metadata.get(INSTALLPATH_METADATA) {
        if Path::new(theirs) != prefix {
            bail!(
                "{m} was built under {theirs} (its module file and RPATHs hold that path); \
                 pull it with --prefix {theirs}"
            );
        }
    }
    // Signed by the stack's key for this key and digest (Record signs what
    // it verified and promoted), or not installed.
    let signature = tarball
        .signature
        .as_deref()
        .and_then(signature_bytes)
        .with_context(|| format!("{m}: its record carries no signature: not installed"))?;
    let statement = tarball_statement(&tarball.key, &tarball.sha256);
    if !stack
        .kms
        .verify(&stack.deployed.signing_key, &statement, &signature)
        .await?
    {
        bail!(
            "{m}: its record's signature does not verify with {}: not installed",
            stack.deployed.signing_key
        );
    }
    let staging = prefix.join(".ebfleet-pull");
    let local = staging.join(format!("{}@{}.tar.zst", m.name(), m.version()));
    download(
        &stack.store,
        &tarball.key,
        &local,
        Verify::Sha256(&tarball.sha256),
    )
    .await?;
    let lua = staging.join(format!("{}@{}.lua", m.name(), m.version()));
    download(&stack.store, module_file_key, &lua, Verify::Metadata).await?;
    let text = std::fs::read_to_string(&lua).with_context(|| format!("{m}: its module file"))?;
    let loads = ebfleet_core::modulefile::loads(&text)
        .into_iter()
        .map(|l| {
            l.map_err(|bad| {
                anyhow::anyhow!("{m}: its module file loads {bad:?}, not a module name")
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let software = prefix.join("software");
    let subdir = m.install_subdir();
    tokio::task::spawn_blocking({
        let local = local.clone();
        move || ebfleet_node::archive::unpack(&local, &software, &subdir)
    })
    .await??;
    let module_file = prefix
        .join("modules/all")
        .join(m.name())
        .join(format!("{}.lua", m.version()));
    std::fs::create_dir_all(module_file.parent().expect("a file under modules/all"))?;
    std::fs::rename(&lua, &module_file)?;
    std::fs::remove_file(&local)?;
    let _ = std::fs::remove_dir(&staging);
    Ok(loads)
}

fn print_pulled(records: &[ModuleRecord], prefix: &Path, output: Output) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let tarballs = records.iter().map(|r| {
        let t = r.tarball.as_ref().expect("installed modules have tarballs");
        (r.module.as_str(), t)
    });
    match output {
        Output::Json => {
            let modules: Vec<_> = tarballs
                .map(|(m, t)| serde_json::json!({"module": m, "bytes": t.size, "sha256": t.sha256}))
                .collect();
            let v = serde_json::json!({"prefix": prefix, "modules": modules});
            writeln!(out, "{v}")?;
        }
        Output::Text => {
            for (m, t) in tarballs {
                writeln!(out, "{m}\t{}\t{}", t.size, t.sha256)?;
            }
        }
        Output::Table => {
            let rows: Vec<Vec<String>> = tarballs
                .map(|(m, t)| vec![m.to_string(), t.size.to_string(), t.sha256.clone()])
                .collect();
            write!(out, "{}", table(&["MODULE", "BYTES", "SHA256"], &rows))?;
            writeln!(out, "\nmodule use {}", prefix.join("modules/all").display())?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// report

pub fn report(a: ReportArgs) -> Result<ExitCode> {
    block_on(async move {
        let stack = connect(&a.aws.at).await?;
        let arn = stack.execution(&a.execution).await?;
        let status = stack.status(&arn, &[]).await?;
        std::fs::create_dir_all(&a.out).with_context(|| a.out.display().to_string())?;
        for p in &status.platforms {
            let platform: PlatformName = p.platform.parse()?;
            for m in &p.modules {
                let Some(key) = m.log_key.as_deref() else {
                    continue;
                };
                // Keys come from build nodes (Record checked them): only
                // the module's own logs, and only names safe as a path,
                // land beside the page.
                let own = m
                    .module
                    .parse::<ModuleName>()
                    .ok()
                    .map(|module| log_prefix(&platform, &module));
                let safe = own
                    .filter(|own| key.starts_with(own.as_str()))
                    .and_then(|_| ebfleet_node::sync::safe_relative(key));
                let Some(rel) = safe else {
                    tracing::warn!("not saving log {key:?}: not a log of {}", m.module);
                    continue;
                };
                write_file(
                    &a.out.join("logs").join(rel),
                    &stack.store.get_bytes(key).await?,
                )?;
            }
        }
        let page = a.out.join("index.html");
        std::fs::write(&page, crate::report::render(&status))
            .with_context(|| page.display().to_string())?;
        println!("{}", page.display());
        Ok(ExitCode::SUCCESS)
    })
}

/// Each of `values` as a `T`; the first that is not, named as `what`.
fn parse_each<T>(values: &[String], what: &str) -> Result<Vec<T>>
where
    T: std::str::FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    values
        .iter()
        .map(|v| v.parse().with_context(|| format!("{what} {v:?}")))
        .collect()
}

/// Write `bytes` to `path`, making its directory.
fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, bytes).with_context(|| path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ebfleet_core::status::{Counts, PlatformStatus};

    fn run(status: &str, failed: usize) -> RunStatus {
        RunStatus {
            execution: "r".into(),
            execution_arn: "arn:aws:states:us-east-1:1:execution:sm:r".into(),
            status: status.into(),
            started: 0,
            stopped: None,
            error: None,
            cause: None,
            summary_key: None,
            instance_hours: None,
            usd: None,
            platforms: vec![PlatformStatus {
                platform: "p".into(),
                planned: 2,
                counts: Counts {
                    built: 2 - failed,
                    failed,
                    ..Counts::default()
                },
                build_seconds: 0,
                node_seconds: None,
                instance_hours: None,
                usd: None,
                modules: Vec::new(),
            }],
        }
    }

    #[test]
    fn exit_codes_tell_a_script_what_happened() {
        let code = |s: &str, f| format!("{:?}", exit_code(&run(s, f)));
        assert_eq!(code("SUCCEEDED", 0), format!("{:?}", ExitCode::SUCCESS));
        assert_eq!(code("RUNNING", 0), format!("{:?}", ExitCode::SUCCESS));
        assert_eq!(
            code("SUCCEEDED", 1),
            format!("{:?}", ExitCode::from(MODULES_FAILED))
        );
        assert_eq!(
            code("RUNNING", 1),
            format!("{:?}", ExitCode::from(MODULES_FAILED))
        );
        for ended in ["FAILED", "TIMED_OUT", "ABORTED"] {
            assert_eq!(code(ended, 0), format!("{:?}", ExitCode::from(RUN_FAILED)));
        }
    }

    #[test]
    fn tables_align_and_reasons_are_one_short_line() {
        let t = table(
            &["A", "LONGER"],
            &[
                vec!["xyz".into(), "1".into()],
                vec!["q".into(), "22".into()],
            ],
        );
        assert_eq!(t, "A    LONGER\nxyz  1\nq    22\n");
        assert_eq!(
            short("\n  make: *** Error 2\nmore", 100),
            "make: *** Error 2"
        );
        assert_eq!(short("abcdef", 3), "abc…");
        assert_eq!(hms(3_723), "1:02:03");
    }

    fn shown(s: &RunStatus, output: Output) -> String {
        let mut v = Vec::new();
        write_status(&mut v, s, output).unwrap();
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn status_shows_each_platforms_actual_hours_and_dollars_from_the_stored_summary() {
        use ebfleet_core::summary::{RunOutput, RunSummary};
        let mut s = run("SUCCEEDED", 0);
        s.stopped = Some(10);
        let mut q = s.platforms[0].clone();
        q.platform = "q".into();
        s.platforms.push(q);
        // Before a summary: nothing made up.
        let text = shown(&s, Output::Text);
        assert!(
            text.contains("PLATFORM\tp\t2\t2\t0\t0\t0\t0\t0\t0:00:00\t-\t-\t-"),
            "{text}"
        );
        let out: RunOutput = serde_json::from_value(serde_json::json!({
            "execution": "r",
            "platforms": [
                {"platform": "p", "node_seconds": 5400,
                 "cost": {"node_seconds": 5400, "instance_hours": 1.5, "usd": 0.75, "usd_priced": 0.75,
                          "unpriced_instance_hours": 0.0, "types": []}},
                {"platform": "q", "node_seconds": 3600,
                 "cost": {"node_seconds": 3600, "instance_hours": 1.0, "usd": null, "usd_priced": 0.0,
                          "unpriced_instance_hours": 1.0, "types": []}}
            ]
        }))
        .unwrap();
        let summary = RunSummary::from_output(out, 10);
        ebfleet_core::status::apply_summary(&mut s, &summary, "plans/r/summary.json");

        let text = shown(&s, Output::Text);
        let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
        assert_eq!(rows[1][0..2], ["PLATFORM", "p"]);
        assert_eq!(rows[1][10..], ["1:30:00", "1.50", "0.75"], "{text}");
        assert_eq!(
            rows[2][10..],
            ["1:00:00", "1.00", "?"],
            "unknown, not zero: {text}"
        );

        let table = shown(&s, Output::Table);
        assert!(
            table.contains("INSTANCE HOURS") && table.contains("USD"),
            "{table}"
        );
        assert!(
            table.contains("actual: 2.50 instance hours, dollars unknown"),
            "{table}"
        );
        let line = table.lines().find(|l| l.starts_with("p ")).unwrap();
        assert!(line.ends_with("1.50            0.75"), "{line:?}");

        let j: serde_json::Value = serde_json::from_str(&shown(&s, Output::Json)).unwrap();
        assert_eq!(j["platforms"][0]["usd"], 0.75);
        assert_eq!(j["platforms"][0]["instance_hours"], 1.5);
        assert!(j["platforms"][1].get("usd").is_none());
        assert_eq!(j["summary_key"], "plans/r/summary.json");
        assert_eq!(
            j["platforms"][0]["counts"]["built"], 2,
            "the fields of before keep their names"
        );
    }

    #[test]
    fn a_runs_arn_is_its_state_machines() {
        let d = Deployed {
            stack: "s".into(),
            bucket: "b".into(),
            table: "t".into(),
            state_machine_arn: "arn:aws:states:us-east-1:1:stateMachine:ebfleet-pipeline".into(),
            signing_key: "alias/k".into(),
        };
        assert_eq!(
            execution_arn(&d, "run-1"),
            "arn:aws:states:us-east-1:1:execution:ebfleet-pipeline:run-1"
        );
    }
}
