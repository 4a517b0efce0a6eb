//! Why an `eb` run failed, from what it left: its exit status, its output
//! and its log. Pure, so every rule is tested on text.
//!
//! EasyBuild 5 exits with a code per failing step and per kind of failure
//! (`EasyBuildExit` in `easybuild/tools/build_log.py`): 16 for the build
//! step, 17 the test step, 41 a failed download, 30 missing sources, ...
//! That code decides most cases. The text decides what codes cannot:
//! memory exhaustion shows up as a compiler "Killed" in a build step;
//! "Missing modules for dependencies" (exit 1) means a dependency is not
//! installed; download instructions mean a source that must be provided by
//! hand. A process killed by a signal without output to say why is taken as
//! the kernel's OOM killer (SIGKILL) or an unknown end.

use ebfleet_core::record::{truncate_message, ErrorClass, MAX_ERROR_MESSAGE_BYTES};

/// EasyBuild 5's exit codes (`EasyBuildExit`) this classifier uses.
pub mod exit {
    pub const FAIL_FETCH_STEP: i32 = 10;
    pub const FAIL_SOURCE_STEP: i32 = 12;
    pub const FAIL_PATCH_STEP: i32 = 13;
    pub const FAIL_PREPARE_STEP: i32 = 14;
    pub const FAIL_CONFIGURE_STEP: i32 = 15;
    pub const FAIL_BUILD_STEP: i32 = 16;
    pub const FAIL_TEST_STEP: i32 = 17;
    pub const FAIL_INSTALL_STEP: i32 = 18;
    pub const FAIL_EXTENSIONS_STEP: i32 = 19;
    pub const FAIL_POST_PROC_STEP: i32 = 21;
    pub const FAIL_SANITY_CHECK_STEP: i32 = 22;
    pub const FAIL_TEST_CASES_STEP: i32 = 27;
    pub const MISSING_SOURCES: i32 = 30;
    pub const MISSING_DEPENDENCY: i32 = 31;
    pub const FAIL_DOWNLOAD: i32 = 41;
    pub const FAIL_CHECKSUM: i32 = 42;
    pub const FAIL_EXTRACT: i32 = 43;
    pub const FAIL_PATCH_APPLY: i32 = 44;
    pub const FAIL_SANITY_CHECK: i32 = 45;
}

/// How an `eb` process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    Exit(i32),
    Signal(i32),
}

/// A failed run, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub class: ErrorClass,
    /// EasyBuild's error line, with the first compiler error when there is
    /// one; at most [`MAX_ERROR_MESSAGE_BYTES`].
    pub message: String,
    /// Modules EasyBuild reported missing ("Missing modules for
    /// dependencies"), for the caller to tell a skip from a failure.
    pub missing: Vec<String>,
}

const SIGKILL: i32 = 9;

/// Text that means the build ran out of memory, lowercase: what compilers,
/// the C++ runtime and Python print then, not words a test name could hold.
const OOM_TEXT: &[&str] = &[
    "killed signal terminated program",
    "virtual memory exhausted",
    "cannot allocate memory",
    "out of memory allocating",
    "std::bad_alloc",
    "memoryerror",
    "internal compiler error: killed",
];

/// Text of eb's error that means a source must be provided by hand,
/// lowercase. Looked for in eb's output only: EasyBuild's log also holds
/// the same words for optional files it merely warns about.
const MANUAL_SOURCE_TEXT: &[&str] = &[
    "please follow the download instructions",
    "downloading it is disabled",
];

const MISSING_DEPS: &str = "Missing modules for dependencies";

/// `s` without ANSI colour sequences (EasyBuild colours its errors).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// EasyBuild's own error line: `ERROR: Installation of X failed: ...`, else
/// `== FAILED: Installation ended unsuccessfully: ...`, else the last
/// `ERROR:` line.
fn error_line(text: &str) -> Option<String> {
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let find =
        |pred: &dyn Fn(&str) -> bool| lines.iter().rev().find(|l| pred(l)).map(|l| l.to_string());
    find(&|l| l.starts_with("ERROR: Installation of"))
        .or_else(|| find(&|l| l.starts_with("== FAILED:")))
        .or_else(|| find(&|l| l.starts_with("ERROR:")))
}

/// The first compiler or linker error in a log: `file.c:1:18: error: ...`,
/// `ld: ... undefined reference ...`, `make: *** ...`.
fn first_compiler_error(text: &str) -> Option<String> {
    text.lines().map(str::trim).find_map(|l| {
        let hit = (l.contains(": error: ") && !l.contains("EasyBuild"))
            || l.contains("undefined reference to")
            || l.starts_with("collect2: error")
            || l.contains("fatal error: ");
        hit.then(|| l.to_string())
    })
}

/// The module names after "Missing modules for dependencies (use --robot?): ".
fn missing_modules(text: &str) -> Vec<String> {
    let Some(line) = text.lines().rev().find(|l| l.contains(MISSING_DEPS)) else {
        return Vec::new();
    };
    let after = &line[line.find(MISSING_DEPS).unwrap_or(0) + MISSING_DEPS.len()..];
    let rest = after.split_once(": ").map_or("", |(_, r)| r);
    // A module name has no space: the first word of each item, whatever
    // follows (" (took 0 secs)" on eb's line, " (at easybuild/...)" in its log).
    rest.split(',')
        .filter_map(|item| item.split_whitespace().next())
        .filter(|m| m.contains('/'))
        .map(str::to_string)
        .collect()
}

fn has_any(lower: &str, needles: &[&str]) -> bool {
    needles.iter().any(|n| lower.contains(n))
}

/// Classify a failed run from how it ended, eb's output and its log.
pub fn classify(ended: Ended, output: &str, log: &str) -> Failure {
    let output = strip_ansi(output);
    let log = strip_ansi(log);
    let headline = error_line(&output)
        .or_else(|| error_line(&log))
        .unwrap_or_else(|| match ended {
            Ended::Exit(c) => format!("eb exited with code {c} without an error line"),
            Ended::Signal(s) => format!("eb was killed by signal {s}"),
        });
    let mut missing = missing_modules(&output);
    if missing.is_empty() {
        missing = missing_modules(&log);
    }
    let out_lower = output.to_lowercase();
    let oom = has_any(&out_lower, OOM_TEXT) || has_any(&log.to_lowercase(), OOM_TEXT);
    let manual = has_any(&out_lower, MANUAL_SOURCE_TEXT);
    use exit::*;
    let class = match ended {
        _ if !missing.is_empty() => ErrorClass::DependencyFailed,
        Ended::Exit(MISSING_DEPENDENCY) => ErrorClass::DependencyFailed,
        _ if manual => ErrorClass::MissingSource,
        Ended::Exit(MISSING_SOURCES) => ErrorClass::MissingSource,
        Ended::Exit(FAIL_FETCH_STEP | FAIL_DOWNLOAD | FAIL_CHECKSUM) => ErrorClass::DownloadFailed,
        // Past fetching, memory exhaustion shows as whatever step it hit.
        _ if oom => ErrorClass::OutOfMemory,
        Ended::Signal(SIGKILL) => ErrorClass::OutOfMemory,
        Ended::Exit(
            FAIL_TEST_STEP | FAIL_TEST_CASES_STEP | FAIL_SANITY_CHECK_STEP | FAIL_SANITY_CHECK,
        ) => ErrorClass::TestFailure,
        Ended::Exit(
            FAIL_SOURCE_STEP | FAIL_PATCH_STEP | FAIL_PREPARE_STEP | FAIL_CONFIGURE_STEP
            | FAIL_BUILD_STEP | FAIL_INSTALL_STEP | FAIL_EXTENSIONS_STEP | FAIL_POST_PROC_STEP
            | FAIL_EXTRACT | FAIL_PATCH_APPLY,
        ) => ErrorClass::CompileError,
        // Older or generic exits: what the error line says.
        _ => {
            let h = headline.to_lowercase();
            if h.contains("couldn't find file") {
                ErrorClass::DownloadFailed
            } else if h.contains("in test step") || h.contains("sanity check failed") {
                ErrorClass::TestFailure
            } else if ["in build step", "in configure step", "in install step"]
                .iter()
                .any(|s| h.contains(s))
            {
                ErrorClass::CompileError
            } else {
                ErrorClass::Unknown
            }
        }
    };
    let mut message = headline;
    if matches!(class, ErrorClass::CompileError | ErrorClass::OutOfMemory) {
        if let Some(e) = first_compiler_error(&log).or_else(|| first_compiler_error(&output)) {
            if !message.contains(&e) {
                message = format!("{message} — {e}");
            }
        }
    }
    Failure {
        class,
        message: truncate_message(&message, MAX_ERROR_MESSAGE_BYTES),
        missing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tail of EasyBuild 5.4.1's output for `make` failing in the build
    /// step (colours included, as eb prints them).
    const BUILD_FAIL_OUTPUT: &str = "\
== building...
  >> running shell command:
\tmake  -j 2

\u{1b}[0;31mERROR: Shell command failed!\u{1b}[0m
    full command              ->  make  -j 2
    exit code                 ->  2
== FAILED: Installation ended unsuccessfully: shell command 'make ...' failed with exit code 2 in build step for broken-1.0.eb (took 0 secs)
== Summary:
   * [FAILED]  broken/1.0


ERROR: Installation of broken-1.0.eb failed: shell command 'make ...' failed with exit code 2 in build step for broken-1.0.eb
";

    const BUILD_FAIL_LOG: &str = "\
== 2026-11-24 03:51:27,590 run.py:700 INFO Output of 'make ...' shell command (stdout + stderr):
cc -o broken broken.c
broken.c:1:18: error: unknown type name 'this'
    1 | int main(void) { this is not C; }
broken.c:1:26: error: expected '=', ',', ';', 'asm' or '__attribute__' before 'not'
make: *** [Makefile:2: all] Error 1
";

    #[test]
    fn compile_error_from_the_build_step_with_the_compiler_line() {
        let f = classify(Ended::Exit(16), BUILD_FAIL_OUTPUT, BUILD_FAIL_LOG);
        assert_eq!(f.class, ErrorClass::CompileError);
        assert!(
            f.message.starts_with(
                "ERROR: Installation of broken-1.0.eb failed: shell command 'make ...'"
            ),
            "{}",
            f.message
        );
        assert!(
            f.message
                .ends_with("broken.c:1:18: error: unknown type name 'this'"),
            "{}",
            f.message
        );
        assert!(!f.message.contains('\u{1b}'));
        assert!(f.missing.is_empty());
    }

    #[test]
    fn out_of_memory_wins_over_the_step() {
        let log =
            "g++: fatal error: Killed signal terminated program cc1plus\ncompilation terminated.\n";
        let f = classify(Ended::Exit(16), BUILD_FAIL_OUTPUT, log);
        assert_eq!(f.class, ErrorClass::OutOfMemory);
        assert!(
            f.message
                .contains("Killed signal terminated program cc1plus"),
            "{}",
            f.message
        );
        // Python running out.
        let f = classify(
            Ended::Exit(18),
            "ERROR: Installation of x.eb failed: MemoryError",
            "",
        );
        assert_eq!(f.class, ErrorClass::OutOfMemory);
        // eb itself killed by the kernel's OOM killer, no output.
        let f = classify(Ended::Signal(9), "== building...\n", "");
        assert_eq!(f.class, ErrorClass::OutOfMemory);
        assert_eq!(f.message, "eb was killed by signal 9");
        // Another signal is not memory.
        assert_eq!(
            classify(Ended::Signal(15), "", "").class,
            ErrorClass::Unknown
        );
    }

    #[test]
    fn downloads_and_sources() {
        let out = "ERROR: Installation of x-1.eb failed: Couldn't find file x-1.tar.gz anywhere, and downloading it didn't work either... Paths attempted (in order): https://example.org/x-1.tar.gz";
        let f = classify(Ended::Exit(41), out, "");
        assert_eq!(f.class, ErrorClass::DownloadFailed);
        assert!(f.message.contains("x-1.tar.gz"));
        // Same text without EasyBuild 5's code (an older eb): from the line.
        assert_eq!(
            classify(Ended::Exit(1), out, "").class,
            ErrorClass::DownloadFailed
        );
        // Checksum mismatch of a fetched source.
        assert_eq!(
            classify(
                Ended::Exit(42),
                "ERROR: Installation of x.eb failed: Checksum verification for x.tar.gz failed",
                ""
            )
            .class,
            ErrorClass::DownloadFailed
        );
        // A licensed source: download instructions.
        let out = "ERROR: Installation of VASP-6.eb failed: Couldn't find file vasp.6.tgz anywhere, please follow the download instructions above, and make the file available in the active source path (/opt/eb/sources)";
        assert_eq!(
            classify(Ended::Exit(41), out, "").class,
            ErrorClass::MissingSource
        );
        let out = "ERROR: Installation of x.eb failed: Couldn't find file 'x.run' anywhere, and downloading it is disabled...";
        assert_eq!(
            classify(Ended::Exit(30), out, "").class,
            ErrorClass::MissingSource
        );
    }

    #[test]
    fn tests_and_sanity_checks() {
        for code in [17, 22, 27, 45] {
            let f = classify(Ended::Exit(code), "ERROR: Installation of x.eb failed: shell command 'make check' failed in test step", "");
            assert_eq!(f.class, ErrorClass::TestFailure, "{code}");
        }
        assert_eq!(
            classify(
                Ended::Exit(1),
                "ERROR: Installation of x.eb failed: Sanity check failed: no file found at 'bin/x'",
                ""
            )
            .class,
            ErrorClass::TestFailure
        );
    }

    #[test]
    fn missing_dependencies_are_listed() {
        let out = "== FAILED: Installation ended unsuccessfully: Missing modules for dependencies (use --robot?): hello/1.0, zlib/1.3.1-GCCcore-13.3.0 (took 0 secs)\n\
                   ERROR: Installation of greeter-1.0.eb failed: Missing modules for dependencies (use --robot?): hello/1.0, zlib/1.3.1-GCCcore-13.3.0\n";
        let f = classify(Ended::Exit(1), out, "");
        assert_eq!(f.class, ErrorClass::DependencyFailed);
        assert_eq!(f.missing, ["hello/1.0", "zlib/1.3.1-GCCcore-13.3.0"]);
        assert_eq!(
            classify(Ended::Exit(31), "ERROR: Missing dependencies: x/1", "").class,
            ErrorClass::DependencyFailed
        );
    }

    #[test]
    fn words_elsewhere_in_the_log_do_not_decide() {
        // EasyBuild logs a warning with these words for an optional file
        // (config.guess) it could not fetch; the build failed compiling.
        let log = format!(
            "{BUILD_FAIL_LOG}== WARNING Couldn't find file 'config.guess' anywhere, and downloading it is disabled...\n\
             test_out_of_memory_handling PASSED\n"
        );
        assert_eq!(
            classify(Ended::Exit(16), BUILD_FAIL_OUTPUT, &log).class,
            ErrorClass::CompileError
        );
        // A download failure is one even when the log mentions memory.
        let out = "ERROR: Installation of x.eb failed: Couldn't find file x.tgz anywhere, and downloading it didn't work either...";
        assert_eq!(
            classify(Ended::Exit(41), out, "std::bad_alloc in a test log").class,
            ErrorClass::DownloadFailed
        );
    }

    #[test]
    fn missing_modules_from_the_log_line_too() {
        let log = "== 2026-11-24 04:19:55,123 build_log.py:233 ERROR EasyBuild encountered an error: \
                   Missing modules for dependencies (use --robot?): broken/1.0, zlib/.1.3 (at easybuild/tools/toolchain/toolchain.py:603 in _check_dependencies)\n";
        let f = classify(Ended::Exit(1), "", log);
        assert_eq!(f.missing, ["broken/1.0", "zlib/.1.3"]);
    }

    #[test]
    fn configure_install_patch_and_unknown() {
        for code in [12, 13, 14, 15, 18, 19, 21, 43, 44] {
            assert_eq!(
                classify(Ended::Exit(code), "ERROR: x", "").class,
                ErrorClass::CompileError,
                "{code}"
            );
        }
        let f = classify(Ended::Exit(2), "usage: eb [options]\n", "");
        assert_eq!(f.class, ErrorClass::Unknown);
        assert_eq!(f.message, "eb exited with code 2 without an error line");
    }

    #[test]
    fn long_messages_are_cut() {
        let out = format!("ERROR: Installation of x.eb failed: {}", "é".repeat(2000));
        let f = classify(Ended::Exit(16), &out, "");
        assert!(f.message.len() <= MAX_ERROR_MESSAGE_BYTES);
        assert!(f.message.ends_with('…'));
    }
}
