//! The node's settings file, written by the OS bootstrap
//! (`/etc/ebfleet/node.env` by default) and read by every step.
//!
//! # Format
//!
//! UTF-8 text, one setting per line, `KEY=VALUE`:
//!
//! ```text
//! # written by bootstrap.sh
//! EASYBUILD_ALLOW_USE_AS_ROOT_AND_ACCEPT_CONSEQUENCES=1
//! EASYBUILD_PREFIX=/opt/eb
//! EASYBUILD_BUILDPATH=/mnt/instance-store/eb-build
//! EASYBUILD_OPTARCH=GCC:march=znver4
//! EASYBUILD_PARALLEL=16
//! EASYBUILD_ROBOT_PATHS=/opt/eb/venv/easybuild/easyconfigs
//! LMOD_CMD=/usr/share/lmod/lmod/libexec/lmod
//! EBFLEET_EB=/opt/eb/venv/bin/eb
//! EBFLEET_ARCHSPEC=zen4
//! EBFLEET_INSTANCE_TYPE=c7a.4xlarge
//! ```
//!
//! - Empty lines and lines starting with `#` are ignored.
//! - `KEY` is `[A-Z_][A-Z0-9_]*`; each key at most once.
//! - `VALUE` is everything after the first `=`, taken literally: no quotes
//!   are removed, nothing is expanded, so the characters `"` `'` `$` `` ` ``
//!   `\` are refused rather than silently kept (they mean the writer
//!   expected a shell). No control characters (tabs, `\r`), no leading or
//!   trailing spaces; may be empty.
//! - No `export`, no line continuations.
//!
//! A line that breaks a rule is an error naming the file and the line
//! number: a node must not build with settings it half understood.
//!
//! Every setting reaches `eb`'s environment, and only these: `EASYBUILD_*`
//! variables the node inherits (from SSM Agent, a shell) are dropped, so
//! what a node builds with is this file. A node that runs as root (SSM Run
//! Command does) needs `EASYBUILD_ALLOW_USE_AS_ROOT_AND_ACCEPT_CONSEQUENCES=1`
//! here. `EASYBUILD_PREFIX`, `EASYBUILD_INSTALLPATH` and
//! `EASYBUILD_SOURCEPATH` may be left out (the node sets them from its
//! root); when present they must be the root, the root and `<root>/sources`.
//! The node reads these itself:
//! `EBFLEET_EB` (the `eb` to run, default `eb` on `PATH`),
//! `EBFLEET_ARCHSPEC` (the CPU as archspec names it; a batch for another
//! CPU is refused), `EBFLEET_INSTANCE_TYPE` (for the manifest), and the
//! `EASYBUILD_*` paths, which must agree with the node's `--root` (see
//! [`crate::eb`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Characters refused in values: shell quoting and expansion.
const SHELL_CHARS: &[char] = &['"', '\'', '$', '`', '\\'];

#[derive(Debug, thiserror::Error)]
pub enum EnvFileError {
    #[error("reading node settings {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {reason}")]
    Line {
        path: PathBuf,
        line: usize,
        reason: String,
    },
}

/// The settings of one node, in key order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeEnv {
    vars: BTreeMap<String, String>,
    path: PathBuf,
}

fn valid_key(k: &str) -> bool {
    let mut b = k.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_uppercase() || c == b'_')
        && b.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'_')
}

impl NodeEnv {
    /// Parse the text of `path`.
    pub fn parse(text: &str, path: &Path) -> Result<Self, EnvFileError> {
        let err = |line: usize, reason: String| EnvFileError::Line {
            path: path.to_path_buf(),
            line,
            reason,
        };
        let mut vars = BTreeMap::new();
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for (i, raw) in text.split('\n').enumerate() {
            let n = i + 1;
            if raw.is_empty() || raw.starts_with('#') {
                continue;
            }
            if let Some(c) = raw.chars().find(|c| c.is_control()) {
                return Err(err(
                    n,
                    format!("control character {c:?} (only KEY=VALUE lines)"),
                ));
            }
            if raw.trim().is_empty() {
                continue;
            }
            if raw.starts_with("export ") {
                return Err(err(
                    n,
                    "shell syntax: write KEY=VALUE without `export`".into(),
                ));
            }
            let Some((key, value)) = raw.split_once('=') else {
                return Err(err(n, format!("not KEY=VALUE: {raw:?}")));
            };
            if !valid_key(key) {
                return Err(err(n, format!("key {key:?} is not [A-Z_][A-Z0-9_]*")));
            }
            if let Some(c) = value.chars().find(|c| SHELL_CHARS.contains(c)) {
                return Err(err(
                    n,
                    format!(
                        "{key}: {c:?} in the value; values are taken literally (no quotes, no expansion)"
                    ),
                ));
            }
            if value.trim() != value {
                return Err(err(
                    n,
                    format!("{key}: leading or trailing spaces in the value"),
                ));
            }
            if let Some(first) = seen.insert(key.to_string(), n) {
                return Err(err(n, format!("{key} is already set on line {first}")));
            }
            vars.insert(key.to_string(), value.to_string());
        }
        Ok(NodeEnv {
            vars,
            path: path.to_path_buf(),
        })
    }

    /// Read and parse the file at `path`.
    pub fn load(path: &Path) -> Result<Self, EnvFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| EnvFileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// [`NodeEnv::load`], or no settings when the file does not exist.
    pub fn load_or_empty(path: &Path) -> Result<Self, EnvFileError> {
        match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(NodeEnv {
                vars: BTreeMap::new(),
                path: path.to_path_buf(),
            }),
            _ => Self::load(path),
        }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars.get(key).map(String::as_str)
    }

    /// Every setting, in key order.
    pub fn vars(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The file the settings came from.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<NodeEnv, EnvFileError> {
        NodeEnv::parse(text, Path::new("node.env"))
    }

    fn line_error(text: &str) -> (usize, String) {
        match parse(text).unwrap_err() {
            EnvFileError::Line { line, reason, path } => {
                assert_eq!(path, Path::new("node.env"));
                (line, reason)
            }
            other => panic!("{other}"),
        }
    }

    #[test]
    fn reads_key_value_lines_comments_and_blanks() {
        let env = parse(
            "# bootstrap\n\nEASYBUILD_OPTARCH=GCC:march=znver4 -mtune=znver4\nEASYBUILD_PARALLEL=16\n\
             EBFLEET_EMPTY=\nEASYBUILD_ROBOT_PATHS=/a:/b=c\n",
        )
        .unwrap();
        assert_eq!(
            env.get("EASYBUILD_OPTARCH"),
            Some("GCC:march=znver4 -mtune=znver4")
        );
        assert_eq!(env.get("EASYBUILD_PARALLEL"), Some("16"));
        assert_eq!(env.get("EBFLEET_EMPTY"), Some(""));
        assert_eq!(env.get("EASYBUILD_ROBOT_PATHS"), Some("/a:/b=c"));
        assert_eq!(env.get("MISSING"), None);
        assert_eq!(
            env.vars().map(|(k, _)| k).collect::<Vec<_>>(),
            [
                "EASYBUILD_OPTARCH",
                "EASYBUILD_PARALLEL",
                "EASYBUILD_ROBOT_PATHS",
                "EBFLEET_EMPTY"
            ]
        );
    }

    #[test]
    fn shell_syntax_is_refused_with_its_line() {
        for (text, line, needle) in [
            ("A=1\nexport B=2\n", 2, "export"),
            ("A=\"quoted\"\n", 1, "literally"),
            ("A='x'\n", 1, "literally"),
            ("A=$HOME/x\n", 1, "literally"),
            ("A=`id`\n", 1, "literally"),
            ("A=x\\\n", 1, "literally"),
            ("A=1\n\nnot a setting\n", 3, "not KEY=VALUE"),
            ("lower=1\n", 1, "key"),
            ("1A=1\n", 1, "key"),
            ("A B=1\n", 1, "key"),
            ("A = 1\n", 1, "key"),
            ("A= 1\n", 1, "spaces"),
            ("A=1\r\n", 1, "control"),
            ("A=1\tb\n", 1, "control"),
            ("A=1\nB=2\nA=3\n", 3, "line 1"),
        ] {
            let (got_line, reason) = line_error(text);
            assert_eq!(got_line, line, "{text:?}: {reason}");
            assert!(reason.contains(needle), "{text:?}: {reason}");
        }
    }

    #[test]
    fn a_missing_file_is_empty_only_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.env");
        assert!(matches!(
            NodeEnv::load(&path),
            Err(EnvFileError::Read { .. })
        ));
        assert_eq!(NodeEnv::load_or_empty(&path).unwrap().vars().count(), 0);
        std::fs::write(&path, "EBFLEET_EB=/x/eb\n").unwrap();
        let env = NodeEnv::load_or_empty(&path).unwrap();
        assert_eq!(env.get("EBFLEET_EB"), Some("/x/eb"));
        assert_eq!(env.path(), path);
        std::fs::write(&path, "oops\n").unwrap();
        let err = NodeEnv::load_or_empty(&path).unwrap_err().to_string();
        assert!(err.starts_with(&format!("{}:1:", path.display())), "{err}");
    }
}
