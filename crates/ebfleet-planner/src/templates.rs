//! Easyconfig templates (`%(version)s`, `%(pyshortver)s`, ...), resolved as
//! EasyBuild resolves them (`framework/easyconfig/templates.py`).
//!
//! The values come from the easyconfig's own name, version and toolchain,
//! and from the versions of a few well-known dependencies (Python, Perl,
//! Java, R, CUDA) among its dependencies, build dependencies (unless they are
//! iterated over) and its toolchain's own runtime dependencies; the last one
//! seen wins. Values may themselves hold templates and are resolved until
//! nothing changes.

use std::collections::HashMap;

/// Dependency names whose versions become templates, with their prefix.
const SOFTWARE_VERSION_PREFIXES: &[(&str, &str)] = &[
    ("cuda", "cuda"),
    ("cudacore", "cuda"),
    ("java", "java"),
    ("perl", "perl"),
    ("python", "py"),
    ("r", "r"),
];

/// EasyBuild's `ALTERNATIVE_EASYCONFIG_TEMPLATES`: other spellings of a template.
const ALTERNATIVES: &[(&str, &str)] = &[
    ("build_dir", "builddir"),
    ("cuda_cc_comma_sep", "cuda_compute_capabilities"),
    ("cuda_maj_ver", "cudamajver"),
    ("cuda_short_ver", "cudashortver"),
    ("cuda_ver", "cudaver"),
    ("install_dir", "installdir"),
    ("java_maj_ver", "javamajver"),
    ("java_short_ver", "javashortver"),
    ("java_ver", "javaver"),
    ("name_letter_lower", "nameletterlower"),
    ("name_letter", "nameletter"),
    ("name_lower", "namelower"),
    ("perl_maj_ver", "perlmajver"),
    ("perl_short_ver", "perlshortver"),
    ("perl_ver", "perlver"),
    ("py_maj_ver", "pymajver"),
    ("py_short_ver", "pyshortver"),
    ("py_ver", "pyver"),
    ("r_maj_ver", "rmajver"),
    ("r_short_ver", "rshortver"),
    ("r_ver", "rver"),
    ("toolchain_ver", "toolchain_version"),
    ("ver_maj_min_patch", "version_major_minor_patch"),
    ("ver_maj_min", "version_major_minor"),
    ("ver_maj", "version_major"),
    ("ver_min_patch", "version_minor_patch"),
    ("ver_min", "version_minor"),
    ("ver_patch", "version_patch"),
    ("version_prefix", "versionprefix"),
    ("version_suffix", "versionsuffix"),
];

/// What template values are made of, before any is resolved.
#[derive(Debug, Clone, Default)]
pub struct TemplateInputs<'a> {
    pub arch: &'a str,
    pub name: &'a str,
    pub version: &'a str,
    pub versionprefix: &'a str,
    pub versionsuffix: &'a str,
    pub toolchain_name: &'a str,
    pub toolchain_version: &'a str,
    pub github_account: Option<&'a str>,
    pub bitbucket_account: Option<&'a str>,
    /// (name, version) of every dependency that may define a software
    /// version template, in EasyBuild's order: runtime dependencies, build
    /// dependencies (when not iterated), the toolchain's runtime dependencies.
    pub software: Vec<(&'a str, &'a str)>,
}

/// The template values of one easyconfig.
#[derive(Debug, Clone, Default)]
pub struct Templates {
    values: HashMap<String, String>,
}

impl Templates {
    pub fn new(inputs: &TemplateInputs<'_>) -> Self {
        let mut v: HashMap<String, String> = HashMap::new();
        let mut set = |k: &str, val: &str| {
            v.insert(k.to_string(), val.to_string());
        };
        set("arch", inputs.arch);
        set("rpath_enabled", "false");
        set("sysroot", "");
        set("software_commit", "");
        set("toolchain_name", inputs.toolchain_name);
        set("toolchain_version", inputs.toolchain_version);
        let parts: Vec<&str> = inputs.version.split('.').collect();
        if parts.len() >= 2 {
            set("version_major", parts[0]);
            set("version_minor", parts[1]);
            set("version_major_minor", &parts[..2].join("."));
            if parts.len() > 2 {
                set("version_patch", parts[2]);
                set("version_minor_patch", &parts[1..3].join("."));
                set("version_major_minor_patch", &parts[..3].join("."));
            }
        } else {
            // EasyBuild sets the major version before failing on the minor one.
            set("version_major", parts[0]);
        }
        if let Some(c) = inputs.name.chars().next() {
            set("nameletter", &c.to_string());
        }
        for (dep_name, dep_version) in &inputs.software {
            let lower = dep_name.to_lowercase();
            let Some((_, prefix)) = SOFTWARE_VERSION_PREFIXES.iter().find(|(n, _)| *n == lower)
            else {
                continue;
            };
            if dep_version.is_empty() {
                continue;
            }
            let parts: Vec<&str> = dep_version.split('.').collect();
            set(&format!("{prefix}ver"), dep_version);
            set(&format!("{prefix}majver"), parts[0]);
            if parts.len() > 1 {
                set(&format!("{prefix}minver"), parts[1]);
            }
            set(
                &format!("{prefix}shortver"),
                &parts[..parts.len().min(2)].join("."),
            );
        }
        set("name", inputs.name);
        set("version", inputs.version);
        set("versionsuffix", inputs.versionsuffix);
        set("versionprefix", inputs.versionprefix);
        // Both default to the template '%(namelower)s' in EasyBuild.
        set(
            "github_account",
            inputs.github_account.unwrap_or("%(namelower)s"),
        );
        set(
            "bitbucket_account",
            inputs.bitbucket_account.unwrap_or("%(namelower)s"),
        );
        set("namelower", &inputs.name.to_lowercase());
        if let Some(letter) = v.get("nameletter").map(|l| l.to_lowercase()) {
            v.insert("nameletterlower".into(), letter);
        }
        let mut t = Templates { values: v };
        t.resolve_values();
        t.add_alternatives();
        t
    }

    /// `generate_template_values`: substitute values into each other until stable.
    fn resolve_values(&mut self) {
        let mut keys: Vec<String> = self.values.keys().cloned().collect();
        keys.sort();
        for _ in 0..16 {
            let mut changed = false;
            for k in &keys {
                let cur = &self.values[k];
                if !cur.contains('%') {
                    continue;
                }
                if let Ok(new) = percent_format(cur, &self.values) {
                    if &new != cur {
                        self.values.insert(k.clone(), new);
                        changed = true;
                    }
                }
            }
            if !changed {
                break;
            }
        }
    }

    /// EasyBuild retries a failed resolution with the alternative spellings
    /// added in both directions; adding them up front gives the same result.
    fn add_alternatives(&mut self) {
        for (old, new) in ALTERNATIVES {
            if let Some(v) = self.values.get(*new).cloned() {
                self.values.entry(old.to_string()).or_insert(v);
            } else if let Some(v) = self.values.get(*old).cloned() {
                self.values.insert(new.to_string(), v);
            }
        }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// `resolve_template` on a string: `%(key)s` replaced, any other `%` kept
    /// as it is; when a key is unknown the string is returned unchanged.
    pub fn resolve(&self, s: &str) -> String {
        self.try_resolve(s).unwrap_or_else(|| s.to_string())
    }

    /// Like [`Self::resolve`], but `None` when a template is left unresolved.
    pub fn try_resolve(&self, s: &str) -> Option<String> {
        if !s.contains('%') {
            return Some(s.to_string());
        }
        percent_format(&escape_non_templates(s), &self.values).ok()
    }
}

/// EasyBuild's `re.sub(r'(%)(?!%*\(\w+\)s)', r'\1\1', value)`: double every
/// `%` that does not start (a run of `%` before) a `%(name)s` template.
fn escape_non_templates(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len() + 4);
    for (i, ch) in s.char_indices() {
        out.push(ch);
        if ch == '%' && !starts_template(&b[i + 1..]) {
            out.push('%');
        }
    }
    out
}

/// Whether `rest` matches `%*\(\w+\)s` at its start.
fn starts_template(rest: &[u8]) -> bool {
    let mut i = 0;
    while i < rest.len() && rest[i] == b'%' {
        i += 1;
    }
    if rest.get(i) != Some(&b'(') {
        return false;
    }
    let start = i + 1;
    let mut j = start;
    while j < rest.len() && (rest[j].is_ascii_alphanumeric() || rest[j] == b'_') {
        j += 1;
    }
    j > start && rest.get(j) == Some(&b')') && rest.get(j + 1) == Some(&b's')
}

/// Why a `%`-format failed.
#[derive(Debug, PartialEq)]
pub enum FormatError {
    UnknownKey(String),
    BadSpec,
}

/// Python's `s % mapping`, for the `%(key)s` and `%%` forms templates use.
pub fn percent_format(s: &str, values: &HashMap<String, String>) -> Result<String, FormatError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('%') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(stripped) = after.strip_prefix('%') {
            out.push('%');
            rest = stripped;
            continue;
        }
        let Some(inner) = after.strip_prefix('(') else {
            return Err(FormatError::BadSpec);
        };
        let Some(close) = inner.find(')') else {
            return Err(FormatError::BadSpec);
        };
        let key = &inner[..close];
        let tail = &inner[close + 1..];
        let Some(tail) = tail.strip_prefix('s') else {
            return Err(FormatError::BadSpec);
        };
        match values.get(key) {
            Some(v) => out.push_str(v),
            None => return Err(FormatError::UnknownKey(key.to_string())),
        }
        rest = tail;
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs<'a>(software: Vec<(&'a str, &'a str)>) -> TemplateInputs<'a> {
        TemplateInputs {
            arch: "x86_64",
            name: "Biopython",
            version: "1.83.1",
            versionsuffix: "-Python-%(pyver)s",
            toolchain_name: "foss",
            toolchain_version: "2023a",
            software,
            ..Default::default()
        }
    }

    #[test]
    fn version_parts_and_names() {
        let t = Templates::new(&inputs(vec![]));
        assert_eq!(t.get("version_major_minor"), Some("1.83"));
        assert_eq!(t.get("version_minor_patch"), Some("83.1"));
        assert_eq!(t.get("namelower"), Some("biopython"));
        assert_eq!(t.get("nameletterlower"), Some("b"));
        assert_eq!(t.get("github_account"), Some("biopython"));
        assert_eq!(t.get("ver_maj_min"), Some("1.83"));
    }

    #[test]
    fn software_versions_last_one_wins() {
        let t = Templates::new(&inputs(vec![
            ("Python", "3.10.4"),
            ("CUDA", "12.1.1"),
            ("Python", "3.11.3"),
        ]));
        assert_eq!(t.get("pyver"), Some("3.11.3"));
        assert_eq!(t.get("pyshortver"), Some("3.11"));
        assert_eq!(t.get("pymajver"), Some("3"));
        assert_eq!(t.get("cudaver"), Some("12.1.1"));
        assert_eq!(t.get("cudashortver"), Some("12.1"));
        // Template values are themselves resolved.
        assert_eq!(t.get("versionsuffix"), Some("-Python-3.11.3"));
        assert_eq!(t.resolve("%(versionsuffix)s"), "-Python-3.11.3");
    }

    #[test]
    fn resolve_keeps_non_templates_and_unknowns() {
        let t = Templates::new(&inputs(vec![("Python", "3.11.3")]));
        assert_eq!(t.resolve("-Python-%(pyshortver)s"), "-Python-3.11");
        assert_eq!(t.resolve("100% %s %d"), "100% %s %d");
        assert_eq!(t.resolve("%%(version)s"), "%(version)s");
        // An unknown template leaves the whole string unchanged, as EasyBuild
        // does when it does not expect everything to resolve.
        assert_eq!(
            t.resolve("%(version)s-%(nosuch)s"),
            "%(version)s-%(nosuch)s"
        );
        assert_eq!(t.try_resolve("%(nosuch)s"), None);
        assert_eq!(t.resolve("%(py_short_ver)s"), "3.11");
    }

    #[test]
    fn short_versions() {
        let mut i = inputs(vec![("R", "4")]);
        i.version = "7";
        let t = Templates::new(&i);
        assert_eq!(t.get("version_major"), Some("7"));
        assert_eq!(t.get("version_minor"), None);
        assert_eq!(t.get("rshortver"), Some("4"));
        assert_eq!(t.get("rminver"), None);
    }
}
