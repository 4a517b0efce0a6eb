//! The optarch chains against a real compiler: this machine's GCC must
//! accept the flags each x86_64 platform gives modules of GCCcore 12.2.0
//! (the 2022b toolchains) and of its own release.

use ebfleet_core::platform::Platforms;
use ebfleet_core::Arch;
use std::io::Write;
use std::process::{Command, Stdio};

/// This machine's GCC release, e.g. `12.2.0`.
fn gcc_release() -> String {
    let out = Command::new("gcc")
        .arg("-dumpfullversion")
        .output()
        .expect("gcc runs (the end-to-end tests build with it too)");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Whether `gcc -<flags>` compiles a small C file.
fn accepts(optarch: &str) -> bool {
    let flags = optarch.strip_prefix("GCC:").expect("a GCC optarch");
    let mut child = Command::new("gcc")
        .args([
            &format!("-{flags}"),
            "-O2",
            "-x",
            "c",
            "-c",
            "-",
            "-o",
            "/dev/null",
        ])
        .stdin(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"double dot(const double *a, const double *b, int n) {\n  double s = 0;\n  for (int i = 0; i < n; i++) s += a[i] * b[i];\n  return s;\n}\n")
        .unwrap();
    child.wait().unwrap().success()
}

#[test]
fn this_machines_gcc_accepts_what_each_x86_64_platform_gives_its_modules() {
    if std::env::consts::ARCH != "x86_64" {
        eprintln!("not an x86_64 machine: nothing to compile for");
        return;
    }
    let release = gcc_release();
    let platforms = Platforms::default_set().unwrap();
    let x86: Vec<_> = platforms
        .cpus
        .iter()
        .filter(|(_, c)| c.arch == Arch::X86_64)
        .collect();
    assert!(x86.len() >= 10, "the shipped x86_64 CPUs");
    let mut tried = 0;
    for (name, cpu) in &x86 {
        for gcc in ["12.2.0", release.as_str()] {
            // Only what this GCC is at least: an older module GCC's flags
            // are a subset of what a newer one accepts.
            if !ebfleet_core::platform::gcc_at_least(&release, gcc) {
                continue;
            }
            let optarch = cpu.optarch_for_gcc(gcc);
            assert!(
                accepts(&optarch),
                "{name}: GCC {release} rejects {optarch} (chosen for GCC {gcc})"
            );
            tried += 1;
        }
    }
    assert!(
        tried >= x86.len(),
        "GCC {release} is older than 12.2: nothing checked"
    );
    // The test can fail: a CPU's own optarch newer than this GCC is refused.
    let too_new: Vec<_> = x86
        .iter()
        .filter(|(_, c)| c.optarch_for_gcc(&release) != c.optarch)
        .collect();
    for (name, cpu) in too_new {
        assert!(
            !accepts(&cpu.optarch),
            "{name}: GCC {release} accepts {} after all",
            cpu.optarch
        );
    }
}
