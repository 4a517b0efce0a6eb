//! The `ebfleet` command end to end on a small easyconfig tree it writes.

use std::path::Path;
use std::process::{Command, Output};

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn ec(name: &str, version: &str, tc: Option<(&str, &str)>, body: &str) -> String {
    let tc = match tc {
        Some((n, v)) => format!("{{'name': '{n}', 'version': '{v}'}}"),
        None => "SYSTEM".into(),
    };
    format!("name = '{name}'\nversion = '{version}'\nhomepage = 'x'\ndescription = 'x'\ntoolchain = {tc}\n{body}\n")
}

/// GCCcore < GCC with zlib, an app with a build dependency, an Arm-only
/// dependency, a CUDA variant, and one broken file.
fn fixture() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    write(
        r,
        "g/GCCcore/GCCcore-13.2.0.eb",
        &ec("GCCcore", "13.2.0", None, ""),
    );
    write(
        r,
        "g/GCC/GCC-13.2.0.eb",
        &ec(
            "GCC",
            "13.2.0",
            None,
            "dependencies = [('GCCcore', '13.2.0')]",
        ),
    );
    write(
        r,
        "z/zlib/zlib-1.2.13-GCCcore-13.2.0.eb",
        &ec("zlib", "1.2.13", Some(("GCCcore", "13.2.0")), ""),
    );
    write(
        r,
        "z/zlib/zlib-1.3-GCCcore-13.2.0.eb",
        &ec("zlib", "1.3", Some(("GCCcore", "13.2.0")), ""),
    );
    write(
        r,
        "c/CMake/CMake-3.27.6-GCCcore-13.2.0.eb",
        &ec(
            "CMake",
            "3.27.6",
            Some(("GCCcore", "13.2.0")),
            "dependencies = [('zlib', '1.3')]",
        ),
    );
    write(
        r,
        "a/Armlib/Armlib-1.0-GCC-13.2.0.eb",
        &ec("Armlib", "1.0", Some(("GCC", "13.2.0")), ""),
    );
    write(
        r,
        "a/App/App-2.0-GCC-13.2.0.eb",
        &ec(
            "App",
            "2.0",
            Some(("GCC", "13.2.0")),
            "builddependencies = [('CMake', '3.27.6')]\ndependencies = [('zlib', '1.3')]\nif ARCH == 'aarch64':\n    dependencies.append(('Armlib', '1.0'))",
        ),
    );
    write(r, "c/CUDA/CUDA-12.4.0.eb", &ec("CUDA", "12.4.0", None, ""));
    write(
        r,
        "a/App/App-2.0-GCC-13.2.0-CUDA-12.4.0.eb",
        &ec(
            "App",
            "2.0",
            Some(("GCC", "13.2.0")),
            "versionsuffix = '-CUDA-%(cudaver)s'\ndependencies = [('CUDA', '12.4.0', '', SYSTEM)]",
        ),
    );
    write(
        r,
        "b/Broken/Broken-1.eb",
        "name = 'Broken'\nversion = '1'\nimport os\n",
    );
    d
}

/// `ebfleet`, with no parse cache for the commands that read easyconfigs
/// (the cache's own test passes one).
fn ebfleet(args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ebfleet"));
    c.args(args);
    if !matches!(
        args.first(),
        Some(&"platforms" | &"completions" | &"run" | &"pull")
    ) {
        c.arg("--no-cache");
    }
    c.output().unwrap()
}

fn ebfleet_cached(cache: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ebfleet"))
        .args(args)
        .env("EBFLEET_PARSE_CACHE", cache)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn resolve_prints_closures_like_eb_dry_run() {
    let d = fixture();
    let dir = d.path().to_str().unwrap();
    let o = ebfleet(&[
        "resolve",
        "--json",
        "--easyconfigs",
        dir,
        "App-2.0-GCC-13.2.0.eb",
        "Nope-1.eb",
    ]);
    assert_eq!(o.status.code(), Some(1), "one target fails: {}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v[0]["target"], "App-2.0-GCC-13.2.0.eb");
    assert_eq!(v[0]["module"], "App/2.0-GCC-13.2.0");
    let closure: Vec<&str> = v[0]["closure"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    assert_eq!(closure.last(), Some(&"App/2.0-GCC-13.2.0"));
    let mut sorted = closure.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [
            "App/2.0-GCC-13.2.0",
            "CMake/3.27.6-GCCcore-13.2.0",
            "GCC/13.2.0",
            "GCCcore/13.2.0",
            "zlib/1.3-GCCcore-13.2.0"
        ]
    );
    assert!(v[1]["error"].as_str().unwrap().contains("Nope-1.eb"));
    // A mistyped file name gets the closest one.
    let o = ebfleet(&["resolve", "--easyconfigs", dir, "App-2.0-GCC-13.2.eb"]);
    assert!(
        stdout(&o).contains("did you mean 'App-2.0-GCC-13.2.0.eb'?"),
        "{}",
        stdout(&o)
    );

    // On Arm the same file has another dependency.
    let o = ebfleet(&[
        "resolve",
        "--json",
        "--arch",
        "aarch64",
        "--easyconfigs",
        dir,
        "App-2.0-GCC-13.2.0.eb",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("Armlib/1.0-GCC-13.2.0"));

    // A path works too, and the text output looks like eb's.
    let path = d.path().join("a/App/App-2.0-GCC-13.2.0.eb");
    let o = ebfleet(&["resolve", "--easyconfigs", dir, path.to_str().unwrap()]);
    assert!(stdout(&o).contains(
        " * [ ] c/CMake/CMake-3.27.6-GCCcore-13.2.0.eb (module: CMake/3.27.6-GCCcore-13.2.0)"
    ));
}

#[test]
fn plan_covers_platforms_with_cuda_only_on_gpus() {
    let d = fixture();
    let dir = d.path().to_str().unwrap();
    let built = d.path().join("built.json");
    std::fs::write(
        &built,
        r#"{"amzn-2023_graviton-3": ["GCCcore/13.2.0", "GCC/13.2.0"]}"#,
    )
    .unwrap();
    let o = ebfleet(&[
        "plan",
        "--json",
        "--easyconfigs",
        dir,
        "--platform",
        "graviton-3",
        "--platform",
        "epyc-gen-3_h100",
        "--built",
        built.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // The broken file is reported with file, line and reason, and skipped.
    assert!(
        stderr(&o).contains("b/Broken/Broken-1.eb:3:"),
        "{}",
        stderr(&o)
    );
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let plats = v["platforms"].as_array().unwrap();
    // The overlay brings its base.
    assert_eq!(plats.len(), 3);
    assert_eq!(plats[1]["platform"], "amzn-2023_epyc-gen-3");
    let arm = &plats[0];
    assert_eq!(arm["platform"], "amzn-2023_graviton-3");
    assert_eq!(arm["already_built"], 2);
    let targets: Vec<&str> = arm["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(targets.contains(&"App/2.0-GCC-13.2.0"));
    assert!(
        !targets.iter().any(|t| t.contains("CUDA")),
        "no CUDA on a CPU platform: {targets:?}"
    );
    // Latest zlib is 1.3, not 1.2.13.
    assert!(targets.contains(&"zlib/1.3-GCCcore-13.2.0"));
    assert!(!targets.contains(&"zlib/1.2.13-GCCcore-13.2.0"));
    // The GPU platform is a CUDA overlay: it plans only what holds CUDA;
    // GCC and GCCcore, which the CUDA App needs, are its base's.
    let gpu = &plats[2];
    assert_eq!(gpu["base"], "amzn-2023_epyc-gen-3");
    let mut targets: Vec<&str> = gpu["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    targets.sort_unstable();
    assert_eq!(targets, ["App/2.0-GCC-13.2.0-CUDA-12.4.0", "CUDA/12.4.0"]);
    assert_eq!(gpu["closure"], 2);
    assert_eq!(gpu["from_base"], 2);
    assert_eq!(gpu["already_built"], 0);
    // Its base builds what it needs, and none of the CUDA modules.
    let base: Vec<&str> = plats[1]["batches"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|b| b["modules"].as_array().unwrap())
        .map(|m| m.as_str().unwrap())
        .collect();
    assert!(
        base.contains(&"GCC/13.2.0") && base.contains(&"App/2.0-GCC-13.2.0"),
        "{base:?}"
    );
    assert!(!base.iter().any(|m| m.contains("CUDA")), "{base:?}");

    let dot = d.path().join("g.dot");
    let o = ebfleet(&[
        "plan",
        "--easyconfigs",
        dir,
        "--platform",
        "graviton-3",
        "--dot",
        dot.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("amzn-2023_graviton-3"));
    let dot = std::fs::read_to_string(dot).unwrap();
    assert!(
        dot.contains("\"App/2.0-GCC-13.2.0\" -> \"CMake/3.27.6-GCCcore-13.2.0\" [style=dashed]")
    );
}

#[test]
fn easystack_names_exactly_what_to_build() {
    let d = fixture();
    let dir = d.path().to_str().unwrap();
    let stack = d.path().join("stack.yml");
    // An older zlib than the latest, a name without .eb, one with options, one missing.
    std::fs::write(
        &stack,
        "easyconfigs:\n  - zlib-1.2.13-GCCcore-13.2.0.eb\n  - CMake-3.27.6-GCCcore-13.2.0\n  - Nope-1.eb:\n      options:\n        robot: true\n",
    )
    .unwrap();
    let o = ebfleet(&[
        "plan",
        "--json",
        "--easyconfigs",
        dir,
        "--platform",
        "graviton-3",
        "--easystack",
        stack.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let p = &v["platforms"][0];
    let targets: Vec<&str> = p["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(
        targets,
        ["zlib/1.2.13-GCCcore-13.2.0", "CMake/3.27.6-GCCcore-13.2.0"]
    );
    assert_eq!(p["unresolvable"][0]["easyconfig"], "Nope-1.eb");
    assert!(
        stderr(&o).contains("not honoured by ebfleet: Nope-1.eb: robot"),
        "{}",
        stderr(&o)
    );
    // CMake pulls in zlib 1.3 and GCCcore: 4 modules in all.
    assert_eq!(p["closure"], 4);
    let bad = d.path().join("bad.yml");
    std::fs::write(&bad, "software:\n  GCC: {}\n").unwrap();
    let o = ebfleet(&[
        "plan",
        "--easyconfigs",
        dir,
        "--easystack",
        bad.to_str().unwrap(),
    ]);
    assert!(
        stderr(&o).contains("lists no easyconfigs"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn clear_errors_for_bad_input() {
    let d = fixture();
    let dir = d.path().to_str().unwrap();
    let o = ebfleet(&["plan", "--easyconfigs", "/no/such/dir"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("/no/such/dir does not exist"),
        "{}",
        stderr(&o)
    );
    let o = ebfleet(&["plan", "--easyconfigs", dir, "--platform", "pentium-4"]);
    assert!(
        stderr(&o).contains("unknown platform 'pentium-4'"),
        "{}",
        stderr(&o)
    );
    let o = ebfleet(&["plan", "--easyconfigs", dir, "--floor", "foss"]);
    assert!(stderr(&o).contains("NAME>=VERSION"), "{}", stderr(&o));
    let o = ebfleet(&["parse", "--easyconfigs", dir]);
    assert!(
        stdout(&o).contains("b/Broken/Broken-1.eb: line 3"),
        "{}",
        stdout(&o)
    );
    // Names that would silently plan nothing are errors, with a hint.
    let o = ebfleet(&[
        "latest",
        "--easyconfigs",
        dir,
        "--toolchains",
        "SYSTEM,fooss",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("unknown toolchain 'fooss'; did you mean 'foss'?"),
        "{}",
        stderr(&o)
    );
    let o = ebfleet(&["latest", "--easyconfigs", dir, "--include", "cmak"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("--include 'cmak' matches no software name; did you mean 'CMake'?"),
        "{}",
        stderr(&o)
    );
    let o = ebfleet(&["latest", "--easyconfigs", dir, "--include", "cmake"]);
    assert_eq!(
        stdout(&o),
        "CMake-3.27.6-GCCcore-13.2.0.eb\n",
        "{}",
        stderr(&o)
    );
    let built = d.path().join("built.json");
    std::fs::write(&built, r#"{"amzn-2023_gravitn-4": ["GCCcore/13.2.0"]}"#).unwrap();
    let o = ebfleet(&[
        "plan",
        "--easyconfigs",
        dir,
        "--built",
        built.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains(
            "unknown platform 'amzn-2023_gravitn-4'; did you mean 'amzn-2023_graviton-4'?"
        ),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_reader_that_goes_away_ends_the_output_quietly() {
    use std::io::BufRead;
    let d = fixture();
    // Many lines of output: one per file of a bigger tree.
    for i in 0..2000 {
        write(
            d.path(),
            &format!("m/M{i}/M{i}-1.eb"),
            &ec(&format!("M{i}"), "1", None, ""),
        );
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_ebfleet"))
        .args(["parse", "--json", "--no-cache", "--easyconfigs"])
        .arg(d.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.contains("\"path\""), "{first}");
    // The pipe's reader is dropped here; the rest of the output has nowhere to go.
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{:?} {}", o.status, stderr(&o));
    assert_eq!(stderr(&o), "");
}

#[test]
fn platforms_lists_the_defaults() {
    let o = ebfleet(&["platforms"]);
    assert!(o.status.success());
    let out = stdout(&o);
    assert!(out.contains("amzn-2023_graviton-3"));
    assert!(out.contains("neoverse_v1"));
    let o = ebfleet(&["platforms", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(v
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["gpu"]["cuda_compute_capability"] == "9.0"));
}

#[test]
fn the_parse_cache_is_reused_and_follows_edits() {
    let d = fixture();
    let dir = d.path().to_str().unwrap();
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = cache_dir.path().join("parse-cache.bin");
    let parse = ["parse", "--json", "--easyconfigs", dir];
    let cold = ebfleet_cached(&cache, &parse);
    assert!(cold.status.success(), "{}", stderr(&cold));
    assert_eq!(stdout(&cold), stdout(&ebfleet(&parse)), "same as no cache");
    let written = std::fs::metadata(&cache).unwrap().modified().unwrap();
    // Warm: the same answer, and nothing new to write.
    let warm = ebfleet_cached(&cache, &parse);
    assert_eq!(stdout(&warm), stdout(&cold));
    assert_eq!(
        std::fs::metadata(&cache).unwrap().modified().unwrap(),
        written
    );

    // An edited file is parsed again: the cache is keyed by content.
    write(
        d.path(),
        "c/CMake/CMake-3.27.6-GCCcore-13.2.0.eb",
        &ec(
            "CMake",
            "3.27.6",
            Some(("GCCcore", "13.2.0")),
            "dependencies = [('zlib', '1.2.13')]",
        ),
    );
    let resolve = [
        "resolve",
        "--json",
        "--easyconfigs",
        dir,
        "CMake-3.27.6-GCCcore-13.2.0.eb",
    ];
    let o = ebfleet_cached(&cache, &resolve);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let closure = v[0]["closure"].to_string();
    assert!(closure.contains("zlib/1.2.13-GCCcore-13.2.0"), "{closure}");
    assert!(!closure.contains("zlib/1.3-"), "{closure}");

    // A broken cache is said and replaced, never believed.
    std::fs::write(&cache, b"not a cache").unwrap();
    let o = ebfleet_cached(&cache, &parse);
    assert!(
        stderr(&o).contains("parse cache not used"),
        "{}",
        stderr(&o)
    );
    let o = ebfleet_cached(&cache, &parse);
    assert!(
        !stderr(&o).contains("parse cache not used"),
        "{}",
        stderr(&o)
    );
    assert!(stdout(&o).contains("zlib/1.2.13-GCCcore-13.2.0"));
}

#[test]
fn completions_cover_the_subcommands_and_their_options() {
    let o = ebfleet(&["completions", "bash"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let script = stdout(&o);
    for word in ["_ebfleet", "resolve", "--parse-cache", "--easystack"] {
        assert!(script.contains(word), "{word} not in the bash completions");
    }
    let o = ebfleet(&["completions", "tcsh"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn a_bad_run_is_refused_before_any_aws_call() {
    // Nothing listens here: an argument check that let these through would
    // fail on the connection instead, with another message.
    let nowhere = [
        "--endpoint-url",
        "http://127.0.0.1:9",
        "--region",
        "us-east-1",
    ];
    for (args, why) in [
        (vec!["run", "--name", "a;b"], "--name"),
        (vec!["run", "--include", ""], "options.include"),
        (vec!["run", "--platform", "../etc"], "--platform"),
        (
            vec![
                "pull",
                "--platform",
                "amzn-2023_graviton-3",
                "--prefix",
                "/tmp",
                "../x/1",
            ],
            "module",
        ),
    ] {
        let o = ebfleet(&[args.as_slice(), &nowhere].concat());
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(why), "{args:?}: {}", stderr(&o));
    }
    let script = stdout(&ebfleet(&["completions", "bash"]));
    for word in ["status", "pull", "--endpoint-url", "--output"] {
        assert!(script.contains(word), "{word} not in the bash completions");
    }
}

#[test]
fn an_estimate_simulates_each_platforms_run() {
    let d = fixture();
    let dir = d.path().to_str().unwrap();
    let write = |name: &str, text: &str| {
        let p = d.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    // Every module an hour: the closure takes at least its depth in hours,
    // and one node builds it all in its size in hours.
    let durations = write("durations.json", r#"{"default_s": 3600}"#);
    let prices = write("prices.json", r#"{"graviton-3": 2.0}"#);
    let plan = |nodes: &str| {
        let o = ebfleet(&[
            "plan",
            "--json",
            "--easyconfigs",
            dir,
            "--platform",
            "graviton-3",
            "--platform",
            "epyc-gen-3",
            "--estimate",
            "--durations",
            &durations,
            "--prices",
            &prices,
            "--nodes",
            nodes,
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_str::<serde_json::Value>(&stdout(&o)).unwrap()
    };
    let one = plan("1");
    let many = plan("8");
    let est = |v: &serde_json::Value, p: usize| v["platforms"][p]["estimate"].clone();
    let modules = one["platforms"][0]["closure"].as_u64().unwrap() as f64;
    assert!(modules > 1.0);
    let (n1, m1) = (
        est(&one, 0)["node_hours"].as_f64().unwrap(),
        est(&one, 0)["makespan_hours"].as_f64().unwrap(),
    );
    assert!(
        n1 >= modules && m1 >= modules,
        "one node builds {modules} modules of an hour each: {n1} h, {m1} h"
    );
    let m8 = est(&many, 0)["makespan_hours"].as_f64().unwrap();
    assert!(m8 < m1, "more nodes, shorter: {m8} h against {m1} h");
    assert_eq!(est(&one, 0)["usd"].as_f64(), Some(n1 * 2.0));
    assert!(est(&one, 1)["usd"].is_null(), "no price for epyc-gen-3");
    assert!(
        one["platforms"][0].get("graph").is_none(),
        "the graph stays out of the plan"
    );
    let o = ebfleet(&["plan", "--easyconfigs", dir, "--nodes", "4"]);
    assert_eq!(o.status.code(), Some(2), "--nodes without --estimate");
}
