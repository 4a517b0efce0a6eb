//! Evaluate easyconfig files with ebfleet's Python-subset evaluator.
//!
//! ```text
//! python_eval [--arch ARCH] DIR|FILE...        JSON Lines, one per file:
//!     {"path": ..., "namespace": {name: value, ...}}  or  {"path": ..., "error": "line N: ..."}
//! python_eval [--arch ARCH] --time [--repeat N] DIR|FILE...
//!     time `exec` over all files (single-threaded, files read into memory first)
//! python_eval [--arch ARCH] --dump-constants
//!     the predefined constants as one JSON object
//! ```
//!
//! Paths under a directory argument are printed relative to it. Values are encoded so
//! that every Python type is distinct: str, int, bool, None and list map to JSON; tuple
//! is `{"tuple": [...]}`, dict `{"dict": [[k, v], ...]}` (insertion order), set
//! `{"set": [...]}` (sorted by repr), float `{"float": repr}`.
//! `tests/easybuild/python_eval_check.py` compares this output with CPython.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use ebfleet_python::constants::easybuild_constant_names;
use ebfleet_python::{easybuild_constant, exec, Value};
use serde_json::{json, Value as Json};

fn encode(v: &Value) -> Json {
    match v {
        Value::None => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(i) => json!(i),
        Value::Float(_) => json!({ "float": v.py_repr() }),
        Value::Str(s) => Json::String(s.clone()),
        Value::List(items) => Json::Array(items.iter().map(encode).collect()),
        Value::Tuple(items) => json!({ "tuple": items.iter().map(encode).collect::<Vec<_>>() }),
        Value::Set(items) => {
            let mut keyed: Vec<(String, Json)> =
                items.iter().map(|x| (x.py_repr(), encode(x))).collect();
            keyed.sort_by(|a, b| a.0.cmp(&b.0));
            json!({ "set": keyed.into_iter().map(|(_, j)| j).collect::<Vec<_>>() })
        }
        Value::Dict(items) => json!({
            "dict": items
                .iter()
                .map(|(k, v)| Json::Array(vec![encode(k), encode(v)]))
                .collect::<Vec<_>>()
        }),
    }
}

fn collect(arg: &Path, out: &mut Vec<(PathBuf, String)>) -> std::io::Result<()> {
    if arg.is_dir() {
        let mut stack = vec![arg.to_path_buf()];
        let mut found = Vec::new();
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir)? {
                let p = entry?.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|e| e == "eb") {
                    found.push(p);
                }
            }
        }
        found.sort();
        for p in found {
            let rel = p
                .strip_prefix(arg)
                .unwrap_or(&p)
                .to_string_lossy()
                .into_owned();
            out.push((p, rel));
        }
    } else {
        out.push((arg.to_path_buf(), arg.to_string_lossy().into_owned()));
    }
    Ok(())
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: python_eval [--arch ARCH] [--time [--repeat N]] DIR|FILE...\n       python_eval [--arch ARCH] --dump-constants"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut arch = "x86_64".to_string();
    let mut time = false;
    let mut dump = false;
    let mut repeat = 1usize;
    let mut inputs = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--arch" => match args.next() {
                Some(v) => arch = v,
                None => return usage(),
            },
            "--time" => time = true,
            "--repeat" => match args.next().and_then(|v| v.parse().ok()) {
                Some(n) if n > 0 => repeat = n,
                _ => return usage(),
            },
            "--dump-constants" => dump = true,
            "-h" | "--help" => return usage(),
            _ => inputs.push(PathBuf::from(a)),
        }
    }
    let globals = |name: &str| easybuild_constant(name, &arch);

    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    if dump {
        let mut line = String::from("{");
        for (i, name) in easybuild_constant_names().enumerate() {
            if i > 0 {
                line.push(',');
            }
            let v = globals(name).expect("listed constants resolve");
            line.push_str(&Json::String(name.to_string()).to_string());
            line.push(':');
            line.push_str(&encode(&v).to_string());
        }
        line.push('}');
        let _ = writeln!(out, "{line}");
        return ExitCode::SUCCESS;
    }
    if inputs.is_empty() {
        return usage();
    }
    let mut files = Vec::new();
    for i in &inputs {
        if let Err(e) = collect(i, &mut files) {
            eprintln!("{}: {e}", i.display());
            return ExitCode::FAILURE;
        }
    }

    if time {
        let mut sources = Vec::with_capacity(files.len());
        let mut bytes = 0usize;
        for (p, _) in &files {
            match std::fs::read_to_string(p) {
                Ok(s) => {
                    bytes += s.len();
                    sources.push(s);
                }
                Err(e) => {
                    eprintln!("{}: {e}", p.display());
                    return ExitCode::FAILURE;
                }
            }
        }
        let mut best = f64::INFINITY;
        let mut errors = 0;
        for _ in 0..repeat {
            errors = 0;
            let start = Instant::now();
            for src in &sources {
                if exec(src, &globals).is_err() {
                    errors += 1;
                }
            }
            best = best.min(start.elapsed().as_secs_f64());
        }
        let _ = writeln!(
            out,
            "{} files, {:.1} MB: {} evaluated, {} errors; best of {}: {:.3} s single-threaded ({:.0} MB/s, {:.1} us/file)",
            sources.len(),
            bytes as f64 / 1e6,
            sources.len() - errors,
            errors,
            repeat,
            best,
            bytes as f64 / 1e6 / best,
            best * 1e6 / sources.len().max(1) as f64
        );
        return ExitCode::SUCCESS;
    }

    for (p, rel) in &files {
        let src = match std::fs::read_to_string(p) {
            Ok(s) => s,
            Err(e) => {
                let _ = writeln!(
                    out,
                    "{}",
                    json!({ "path": rel, "error": format!("read: {e}") })
                );
                continue;
            }
        };
        match exec(&src, &globals) {
            Ok(ns) => {
                // Written by hand to keep first-assignment order.
                let mut line = String::with_capacity(src.len());
                line.push_str("{\"path\":");
                line.push_str(&Json::String(rel.clone()).to_string());
                line.push_str(",\"namespace\":{");
                for (i, (k, v)) in ns.iter().enumerate() {
                    if i > 0 {
                        line.push(',');
                    }
                    line.push_str(&Json::String(k.to_string()).to_string());
                    line.push(':');
                    line.push_str(&encode(v).to_string());
                }
                line.push_str("}}");
                let _ = writeln!(out, "{line}");
            }
            Err(e) => {
                let _ = writeln!(out, "{}", json!({ "path": rel, "error": e.to_string() }));
            }
        }
    }
    ExitCode::SUCCESS
}
