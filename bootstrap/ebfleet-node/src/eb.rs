//! Running EasyBuild: its environment ([`environment`]), its command line,
//! its output.
//!
//! `eb` is started with [`std::process::Command`] and an argv — never a
//! shell — whose only variable parts are the easyconfig's path (built from
//! a validated [`EasyconfigPath`](ebfleet_core::names::EasyconfigPath)) and
//! fixed options, with the environment [`environment`] decides from
//! node.env, the layout and the batch.

use crate::build_user::BuildUser;
use crate::classify::Ended;
use crate::envfile::NodeEnv;
use crate::machine;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Instant;

mod environment;
pub use environment::{environment, EbEnvError, ALLOW_ROOT};

/// The `eb` to run: node.env's `EBFLEET_EB`, else `eb` on `PATH`.
pub fn program(node: &NodeEnv) -> OsString {
    node.get("EBFLEET_EB").unwrap_or("eb").into()
}

#[derive(Debug, thiserror::Error)]
pub enum EbError {
    #[error("cannot run {program:?}: {source}")]
    Spawn {
        program: OsString,
        #[source]
        source: std::io::Error,
    },
    #[error("{program:?} --version: {detail}")]
    Version { program: OsString, detail: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// `program` as `user` (uid, gid, no supplementary groups), when there is one.
fn command(program: &OsString, user: Option<&BuildUser>) -> Command {
    let mut c = Command::new(program);
    if let Some(u) = user {
        // std drops the supplementary groups (setgroups(0)) when root sets a uid.
        c.uid(u.uid).gid(u.gid).current_dir(&u.home);
    }
    c
}

/// EasyBuild's version, from `eb --version` ("This is EasyBuild 5.4.1 (...)").
pub fn version(
    program: &OsString,
    env: &BTreeMap<OsString, OsString>,
    user: Option<&BuildUser>,
) -> Result<String, EbError> {
    let out = command(program, user)
        .arg("--version")
        .env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| EbError::Spawn {
            program: program.clone(),
            source,
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    parse_version(&text).ok_or_else(|| EbError::Version {
        program: program.clone(),
        detail: format!(
            "{}; no \"This is EasyBuild X\" in its output: {:?}",
            out.status,
            text.chars().take(200).collect::<String>()
        ),
    })
}

fn parse_version(text: &str) -> Option<String> {
    let rest = text.split("This is EasyBuild ").nth(1)?;
    let v: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+'))
        .collect();
    (!v.is_empty()).then_some(v)
}

/// How one `eb` run went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub ended: Ended,
    pub seconds: u64,
    /// CPU seconds of eb and everything under it.
    pub cpu_s: u64,
    /// The largest resident set of one process of it (or of anything this
    /// process waited for before: one build per node process, so its own),
    /// MiB.
    pub peak_memory_mib: u64,
    /// eb's stdout and stderr, as they came.
    pub output: PathBuf,
}

/// Run `program args…` with `env` (as `user`, when there is one), copying
/// every line of its output to `output` and to this process's stderr
/// (prefixed with `label`), so SSM and CloudWatch show the build as it goes.
pub fn run(
    program: &OsString,
    args: &[OsString],
    env: &BTreeMap<OsString, OsString>,
    user: Option<&BuildUser>,
    output: &Path,
    label: &str,
) -> Result<Run, EbError> {
    let io_err = |source| EbError::Io {
        path: output.to_path_buf(),
        source,
    };
    let file = Arc::new(Mutex::new(std::fs::File::create(output).map_err(io_err)?));
    let started = Instant::now();
    let before = machine::children_usage();
    let mut child = command(program, user)
        .args(args)
        .env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| EbError::Spawn {
            program: program.clone(),
            source,
        })?;
    let pipes: Vec<Box<dyn Read + Send>> = vec![
        Box::new(child.stdout.take().expect("piped stdout")),
        Box::new(child.stderr.take().expect("piped stderr")),
    ];
    let copiers: Vec<_> = pipes
        .into_iter()
        .map(|pipe| {
            let file = Arc::clone(&file);
            let label = label.to_string();
            std::thread::spawn(move || {
                let mut r = BufReader::new(pipe);
                let mut line = Vec::new();
                while r.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
                    if let Ok(mut f) = file.lock() {
                        let _ = f.write_all(&line);
                    }
                    let mut err = std::io::stderr().lock();
                    let _ = write!(err, "[{label}] ");
                    let _ = err.write_all(&line);
                    line.clear();
                }
            })
        })
        .collect();
    let status = child.wait().map_err(|source| EbError::Spawn {
        program: program.clone(),
        source,
    })?;
    for c in copiers {
        let _ = c.join();
    }
    let ended = match (status.code(), status.signal()) {
        (Some(c), _) => Ended::Exit(c),
        (None, Some(s)) => Ended::Signal(s),
        (None, None) => Ended::Exit(-1),
    };
    let after = machine::children_usage();
    Ok(Run {
        ended,
        seconds: started.elapsed().as_secs(),
        cpu_s: after.cpu_ms.saturating_sub(before.cpu_ms) / 1000,
        peak_memory_mib: after.max_rss_kib.div_ceil(1024),
        output: output.to_path_buf(),
    })
}

/// The log files eb names in "Results of the build can be found in the
/// log file(s) A, B".
pub fn named_logs(output: &str) -> Vec<PathBuf> {
    const MARK: &str = "can be found in the log file(s) ";
    output
        .lines()
        .filter_map(|l| l.split_once(MARK).map(|(_, r)| r))
        .flat_map(|r| r.split(',').map(|p| PathBuf::from(p.trim())))
        .filter(|p| p.is_absolute())
        .collect()
}

/// The last `max` bytes of a file, as text (a log may be huge; its end says
/// why it failed). Not through a symlink: a build may have left one.
pub fn tail(path: &Path, max: u64) -> String {
    use std::io::{Seek, SeekFrom};
    use std::os::unix::fs::OpenOptionsExt;
    let Ok(mut f) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
    else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(max)));
    let mut bytes = Vec::new();
    let _ = f.take(max).read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_and_log_names_from_eb_s_output() {
        assert_eq!(
            parse_version(
                "This is EasyBuild 5.4.1 (framework: 5.4.1, easyblocks: 5.4.1) on host vm.\n"
            )
            .as_deref(),
            Some("5.4.1")
        );
        assert_eq!(parse_version("command not found"), None);
        let out = "== COMPLETED: Installation ended successfully (took 1 secs)\n\
                   == Results of the build can be found in the log file(s) /opt/eb/software/hello/1.0/easybuild/easybuild-hello-1.0-20261124.035106.log\n";
        assert_eq!(
            named_logs(out),
            [PathBuf::from(
                "/opt/eb/software/hello/1.0/easybuild/easybuild-hello-1.0-20261124.035106.log"
            )]
        );
        assert!(named_logs("nothing here").is_empty());
    }

    #[test]
    fn run_copies_output_and_reports_how_it_ended() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.log");
        let sh: OsString = "/bin/sh".into();
        let env = BTreeMap::from([(OsString::from("GREETING"), OsString::from("hi"))]);
        let r = run(
            &sh,
            &[
                "-c".into(),
                "echo \"$GREETING\"; echo oops >&2; exit 16".into(),
            ],
            &env,
            None,
            &out,
            "t",
        )
        .unwrap();
        assert_eq!(r.ended, Ended::Exit(16));
        let text = std::fs::read_to_string(&out).unwrap();
        assert!(text.contains("hi\n") && text.contains("oops\n"), "{text:?}");
        let r = run(
            &sh,
            &["-c".into(), "kill -9 $$".into()],
            &env,
            None,
            &out,
            "t",
        )
        .unwrap();
        assert_eq!(r.ended, Ended::Signal(9));
        let err = run(&"/nonexistent/eb".into(), &[], &env, None, &out, "t").unwrap_err();
        assert!(err.to_string().contains("/nonexistent/eb"), "{err}");
        std::fs::write(&out, "0123456789").unwrap();
        assert_eq!(tail(&out, 4), "6789");
        let link = dir.path().join("link.log");
        std::os::unix::fs::symlink(&out, &link).unwrap();
        assert_eq!(tail(&link, 4), "", "read through a symlink");
    }
}
