//! One easyconfig file: what EasyBuild reads from it to name the module and
//! find its dependencies (`EasyConfig.parse`, `_parse_dependency`,
//! `handle_multi_deps`, templates).
//!
//! Reading happens in two steps, as in EasyBuild: [`parse`] runs the file and
//! reads its parameters with templates left as written; then
//! [`Easyconfig::apply_templates`] resolves them once the toolchain's own
//! dependencies are known (they can define `%(cudaver)s`, for example).

use crate::templates::{TemplateInputs, Templates};
use crate::toolchain::Toolchain;
use ebfleet_core::arch::Arch;
use ebfleet_python::{self, Namespace, Value};
use serde::{Deserialize, Serialize};

/// The value of EasyBuild's `EXTERNAL_MODULE` constant.
const EXTERNAL_MODULE: &str = "EXTERNAL_MODULE";

/// A dependency as EasyBuild's `_parse_dependency` leaves it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Dependency {
    pub name: String,
    pub version: String,
    pub versionsuffix: String,
    /// The toolchain it is built with. While `toolchain_inherited` holds, this
    /// is the parent's toolchain and the robot searches its hierarchy.
    pub toolchain: Toolchain,
    pub toolchain_inherited: bool,
    pub hidden: bool,
    /// `('name/version', EXTERNAL_MODULE)`: a module the site provides; `name`
    /// holds the module name.
    pub external: bool,
}

impl Dependency {
    /// EasyBuild's `det_full_ec_version`: `version[-tcname-tcversion]versionsuffix`.
    pub fn full_version(&self) -> String {
        full_version("", &self.version, &self.toolchain, &self.versionsuffix)
    }

    /// The module name under EasyBuild's default naming scheme.
    pub fn module_name(&self) -> String {
        if self.external {
            return self.name.clone();
        }
        module_name(&self.name, &self.full_version(), self.hidden)
    }
}

/// `versionprefix + version[-tcname-tcversion] + versionsuffix`.
pub fn full_version(
    versionprefix: &str,
    version: &str,
    tc: &Toolchain,
    versionsuffix: &str,
) -> String {
    let mut s =
        String::with_capacity(versionprefix.len() + version.len() + versionsuffix.len() + 24);
    s.push_str(versionprefix);
    s.push_str(version);
    if !tc.is_system() {
        s.push('-');
        s.push_str(&tc.name);
        s.push('-');
        s.push_str(&tc.version);
    }
    s.push_str(versionsuffix);
    s
}

/// `name/fullversion`, or `name/.fullversion` for a hidden module.
pub fn module_name(name: &str, full_version: &str, hidden: bool) -> String {
    if hidden {
        format!("{name}/.{full_version}")
    } else {
        format!("{name}/{full_version}")
    }
}

/// The parameters of one easyconfig that planning needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Easyconfig {
    pub name: String,
    pub version: String,
    pub versionprefix: String,
    pub versionsuffix: String,
    pub toolchain: Toolchain,
    pub hidden: bool,
    /// Flattened and de-duplicated when given as a list of lists or through `multi_deps`.
    pub builddependencies: Vec<Dependency>,
    pub dependencies: Vec<Dependency>,
    pub hiddendependencies: Vec<Dependency>,
    /// Build dependencies are iterated over (list of lists, `multi_deps`);
    /// EasyBuild then leaves them out of the template values.
    pub iterate_builddependencies: bool,
    /// Read by the `%(github_account)s`-style templates.
    github_account: Option<String>,
    bitbucket_account: Option<String>,
}

impl Easyconfig {
    /// `version[-tc]suffix` with the prefix, as in the file name.
    pub fn full_version(&self) -> String {
        full_version(
            &self.versionprefix,
            &self.version,
            &self.toolchain,
            &self.versionsuffix,
        )
    }

    pub fn module_name(&self) -> String {
        module_name(&self.name, &self.full_version(), self.hidden)
    }

    /// The name EasyBuild insists the file has: `Name-fullversion.eb`.
    pub fn file_name(&self) -> String {
        format!("{}-{}.eb", self.name, self.full_version())
    }

    /// Build dependencies then runtime dependencies: EasyBuild's `dependencies()`.
    pub fn all_dependencies(&self) -> impl Iterator<Item = &Dependency> {
        self.builddependencies
            .iter()
            .chain(self.dependencies.iter())
    }

    /// Resolve templates everywhere planning looks, given the runtime
    /// dependencies of this easyconfig's toolchain as (name, version).
    pub fn apply_templates(
        &mut self,
        arch: Arch,
        toolchain_deps: &[(String, String)],
    ) -> Result<(), String> {
        let mut software: Vec<(&str, &str)> = Vec::new();
        let deps = self.dependencies.iter();
        let builddeps = self
            .builddependencies
            .iter()
            .filter(|_| !self.iterate_builddependencies);
        for d in deps.chain(builddeps).filter(|d| !d.external) {
            software.push((&d.name, &d.version));
        }
        software.extend(toolchain_deps.iter().map(|(n, v)| (n.as_str(), v.as_str())));
        let templates = Templates::new(&TemplateInputs {
            arch: arch.as_str(),
            name: &self.name,
            version: &self.version,
            versionprefix: &self.versionprefix,
            versionsuffix: &self.versionsuffix,
            toolchain_name: &self.toolchain.name,
            toolchain_version: &self.toolchain.version,
            github_account: self.github_account.as_deref(),
            bitbucket_account: self.bitbucket_account.as_deref(),
            software,
        });
        let strict = |field: &str, s: &mut String| -> Result<(), String> {
            *s = templates
                .try_resolve(s)
                .ok_or_else(|| format!("failed to resolve all templates in {field} '{s}'"))?;
            Ok(())
        };
        strict("name", &mut self.name)?;
        strict("version", &mut self.version)?;
        strict("versionprefix", &mut self.versionprefix)?;
        strict("versionsuffix", &mut self.versionsuffix)?;
        strict("toolchain name", &mut self.toolchain.name)?;
        strict("toolchain version", &mut self.toolchain.version)?;
        for list in [
            &mut self.builddependencies,
            &mut self.dependencies,
            &mut self.hiddendependencies,
        ] {
            for d in list.iter_mut() {
                for s in [
                    &mut d.name,
                    &mut d.version,
                    &mut d.versionsuffix,
                    &mut d.toolchain.name,
                    &mut d.toolchain.version,
                ] {
                    // Dependencies may keep unresolved templates (EasyBuild does not insist).
                    if s.contains('%') {
                        *s = templates.resolve(s);
                    }
                }
            }
        }
        Ok(())
    }
}

/// Why an easyconfig could not be read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct ParseError {
    /// 1-based; 0 when the problem is not tied to one line.
    pub line: u32,
    pub reason: String,
}

impl ParseError {
    fn at(source: &str, param: &str, reason: impl Into<String>) -> Self {
        ParseError {
            line: assignment_line(source, param),
            reason: reason.into(),
        }
    }
}

/// The line where `param` is first assigned, for errors about its value.
fn assignment_line(source: &str, param: &str) -> u32 {
    for (i, line) in source.lines().enumerate() {
        if let Some(rest) = line.strip_prefix(param) {
            let rest = rest.trim_start();
            if rest.starts_with('=') || rest.starts_with("+=") {
                return i as u32 + 1;
            }
        }
    }
    0
}

/// Run an easyconfig file and read its parameters, templates unresolved.
pub fn parse(source: &str, arch: Arch) -> Result<Easyconfig, ParseError> {
    let globals = |name: &str| ebfleet_python::constants::easybuild_constant(name, arch.as_str());
    let ns = ebfleet_python::exec(source, &globals).map_err(|e| ParseError {
        line: e.line,
        reason: e.message,
    })?;
    Reader {
        source,
        ns: &ns,
        arch,
    }
    .read()
}

struct Reader<'a> {
    source: &'a str,
    ns: &'a Namespace,
    arch: Arch,
}

/// EasyBuild's `ALTERNATIVE_EASYCONFIG_PARAMETERS` that planning reads:
/// (parameter, other accepted spelling).
const ALTERNATIVE_NAMES: &[(&str, &str)] = &[
    ("builddependencies", "build_deps"),
    ("dependencies", "deps"),
    ("hiddendependencies", "hidden_deps"),
    ("versionprefix", "version_prefix"),
    ("versionsuffix", "version_suffix"),
];

impl Reader<'_> {
    /// A parameter's value under its name or its alternative spelling.
    fn get(&self, param: &str) -> Option<&Value> {
        self.ns.get(param).or_else(|| {
            let (_, alt) = ALTERNATIVE_NAMES.iter().find(|(p, _)| *p == param)?;
            self.ns.get(alt)
        })
    }

    fn err(&self, param: &str, reason: impl Into<String>) -> ParseError {
        ParseError::at(self.source, param, reason)
    }

    fn required_str(&self, param: &str) -> Result<String, ParseError> {
        match self.get(param) {
            Some(Value::Str(s)) => Ok(s.clone()),
            Some(other) => Err(self.err(
                param,
                format!("{param} must be a string, not {}", other.py_repr()),
            )),
            None => Err(ParseError {
                line: 0,
                reason: format!("mandatory parameter '{param}' is not set"),
            }),
        }
    }

    fn optional_str(&self, param: &str) -> Result<Option<String>, ParseError> {
        match self.get(param) {
            None | Some(Value::None) => Ok(None),
            Some(Value::Str(s)) => Ok(Some(s.clone())),
            Some(other) => Err(self.err(
                param,
                format!("{param} must be a string, not {}", other.py_repr()),
            )),
        }
    }

    fn read(&self) -> Result<Easyconfig, ParseError> {
        let name = self.required_str("name")?;
        let version = self.required_str("version")?;
        let toolchain = match self.get("toolchain") {
            Some(v) => toolchain_spec(v).map_err(|r| self.err("toolchain", r))?,
            None => return Err(self.err("toolchain", "mandatory parameter 'toolchain' is not set")),
        };
        let hidden = self.get("hidden").is_some_and(Value::truthy);

        let dependencies = self.dep_list("dependencies", false)?;
        let hiddendependencies = self.dep_list("hiddendependencies", true)?;
        let (builddependencies, iterate) = self.build_deps()?;

        Ok(Easyconfig {
            name,
            version,
            versionprefix: self.optional_str("versionprefix")?.unwrap_or_default(),
            versionsuffix: self.optional_str("versionsuffix")?.unwrap_or_default(),
            hidden,
            dependencies: dependencies
                .into_iter()
                .map(|d| inherit(d, &toolchain))
                .collect(),
            hiddendependencies: hiddendependencies
                .into_iter()
                .map(|d| inherit(d, &toolchain))
                .collect(),
            builddependencies: builddependencies
                .into_iter()
                .map(|d| inherit(d, &toolchain))
                .collect(),
            toolchain,
            iterate_builddependencies: iterate,
            github_account: self.optional_str("github_account")?,
            bitbucket_account: self.optional_str("bitbucket_account")?,
        })
    }

    fn dep_list(&self, param: &str, hidden: bool) -> Result<Vec<ParsedDep>, ParseError> {
        match self.get(param) {
            None | Some(Value::None) => Ok(Vec::new()),
            Some(v) => {
                let items = sequence(v)
                    .ok_or_else(|| self.err(param, format!("{param} must be a list")))?;
                self.deps_of(param, items, hidden, false)
            }
        }
    }

    /// `iterated`: inside a list of lists EasyBuild does not drop `False`
    /// versions; the version becomes the text `False` (and never resolves).
    fn deps_of(
        &self,
        param: &str,
        items: &[Value],
        hidden: bool,
        iterated: bool,
    ) -> Result<Vec<ParsedDep>, ParseError> {
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match parse_dependency(item, hidden, iterated, self.arch) {
                Ok(Some(d)) => out.push(d),
                Ok(None) => {} // version False: dropped on this architecture
                Err(r) => return Err(self.err(param, format!("{param}[{i}]: {r}"))),
            }
        }
        Ok(out)
    }

    /// Build dependencies, with `multi_deps` and lists of lists flattened and
    /// de-duplicated as EasyBuild's `builddependencies()` returns them.
    fn build_deps(&self) -> Result<(Vec<ParsedDep>, bool), ParseError> {
        let param = "builddependencies";
        let raw: Vec<Value> = match self.get(param) {
            None | Some(Value::None) => Vec::new(),
            Some(v) => sequence(v)
                .ok_or_else(|| self.err(param, "builddependencies must be a list"))?
                .to_vec(),
        };
        let mut groups: Vec<Vec<Value>> = Vec::new();
        let multi = match self.get("multi_deps") {
            Some(Value::Dict(pairs)) if !pairs.is_empty() => Some(pairs),
            _ => None,
        };
        let iterate;
        if let Some(pairs) = multi {
            let mut keyed: Vec<(&str, &[Value])> = Vec::new();
            for (k, v) in pairs {
                let (Some(k), Some(vs)) = (k.as_str(), sequence(v)) else {
                    return Err(self.err(
                        "multi_deps",
                        "multi_deps must map names to lists of versions",
                    ));
                };
                keyed.push((k, vs));
            }
            keyed.sort_by(|a, b| a.0.cmp(b.0));
            let count = keyed[0].1.len();
            if keyed.iter().any(|(_, vs)| vs.len() != count) {
                return Err(self.err(
                    "multi_deps",
                    "Not all the dependencies listed in multi_deps have the same number of versions!",
                ));
            }
            if !raw.is_empty() && raw.iter().all(|b| matches!(b, Value::List(_))) {
                return Err(self.err(
                    "multi_deps",
                    "Can't combine multi_deps with builddependencies specified as list of lists",
                ));
            }
            for idx in 0..count {
                let mut group: Vec<Value> = keyed
                    .iter()
                    .map(|(k, vs)| Value::Tuple(vec![Value::Str(k.to_string()), vs[idx].clone()]))
                    .collect();
                group.extend(raw.iter().cloned());
                groups.push(group);
            }
            iterate = true;
        } else {
            // EasyBuild: all(isinstance(x, (list, tuple)) for b in builddeps for x in b)
            iterate = !raw.is_empty()
                && raw.iter().all(|b| {
                    sequence(b).is_some_and(|xs| {
                        xs.iter()
                            .all(|x| matches!(x, Value::List(_) | Value::Tuple(_)))
                    })
                });
            if iterate {
                groups = raw
                    .iter()
                    .map(|b| sequence(b).unwrap_or(&[]).to_vec())
                    .collect();
            } else {
                groups.push(raw);
            }
        }
        let mut out: Vec<ParsedDep> = Vec::new();
        for group in &groups {
            for d in self.deps_of(param, group, false, iterate)? {
                if !out.contains(&d) {
                    out.push(d);
                }
            }
        }
        Ok((out, iterate))
    }
}

/// A dependency before the parent's toolchain is filled in.
#[derive(Clone, Debug, PartialEq)]
struct ParsedDep {
    name: String,
    version: String,
    versionsuffix: String,
    toolchain: Option<Toolchain>,
    hidden: bool,
    external: bool,
}

fn inherit(d: ParsedDep, parent: &Toolchain) -> Dependency {
    let inherited = d.toolchain.is_none() && !d.external;
    Dependency {
        name: d.name,
        version: d.version,
        versionsuffix: d.versionsuffix,
        toolchain: d.toolchain.unwrap_or_else(|| parent.clone()),
        toolchain_inherited: inherited,
        hidden: d.hidden,
        external: d.external,
    }
}

fn sequence(v: &Value) -> Option<&[Value]> {
    match v {
        Value::List(xs) | Value::Tuple(xs) | Value::Set(xs) => Some(xs),
        _ => None,
    }
}

/// `toolchain = {'name': ..., 'version': ...}` or `SYSTEM`.
fn toolchain_spec(v: &Value) -> Result<Toolchain, String> {
    match v {
        Value::Dict(_) => match (v.dict_get("name"), v.dict_get("version")) {
            (Some(Value::Str(n)), Some(Value::Str(ver))) => {
                Ok(Toolchain::new(n.clone(), ver.clone()))
            }
            _ => Err(format!(
                "toolchain needs string 'name' and 'version': {}",
                v.py_repr()
            )),
        },
        other => Err(format!("toolchain must be a dict, not {}", other.py_repr())),
    }
}

/// EasyBuild's `_parse_dependency` and `pick_dep_version`. `Ok(None)` when
/// the version is `False` for this architecture (the dependency is dropped),
/// unless `keep_false`.
fn parse_dependency(
    dep: &Value,
    hidden: bool,
    keep_false: bool,
    arch: Arch,
) -> Result<Option<ParsedDep>, String> {
    let (name, version, suffix, tc): (
        Option<&Value>,
        Option<&Value>,
        Option<&Value>,
        Option<&Value>,
    ) = match dep {
        Value::Tuple(xs) | Value::List(xs) => {
            if xs.last().and_then(Value::as_str) == Some(EXTERNAL_MODULE) {
                return match (xs.len(), xs[0].as_str()) {
                    (2, Some(module)) => Ok(Some(ParsedDep {
                        name: module.to_string(),
                        version: String::new(),
                        versionsuffix: String::new(),
                        toolchain: None,
                        hidden: hidden
                            || module
                                .rsplit('/')
                                .next()
                                .is_some_and(|b| b.starts_with('.')),
                        external: true,
                    })),
                    _ => Err(format!(
                        "incorrect external dependency specification: {}",
                        dep.py_repr()
                    )),
                };
            }
            (xs.first(), xs.get(1), xs.get(2), xs.get(3))
        }
        Value::Dict(_) => (
            dep.dict_get("name"),
            dep.dict_get("version"),
            dep.dict_get("versionsuffix"),
            dep.dict_get("toolchain").or_else(|| dep.dict_get("system")),
        ),
        other => {
            return Err(format!(
                "dependency of unsupported type: {}",
                other.py_repr()
            ))
        }
    };
    let version = match version {
        None | Some(Value::None) => {
            return Err(format!(
                "dependency specified without version: {}",
                dep.py_repr()
            ))
        }
        Some(v) => pick_version(v, arch)?,
    };
    let version = match version {
        Some(v) => v,
        None if keep_false => "False".to_string(),
        None => return Ok(None),
    };
    let name = match name {
        Some(Value::Str(s)) => s.clone(),
        _ => {
            return Err(format!(
                "dependency specified without name: {}",
                dep.py_repr()
            ))
        }
    };
    let versionsuffix = match suffix {
        None | Some(Value::None) => String::new(),
        Some(Value::Str(s)) => s.clone(),
        Some(other) => {
            return Err(format!(
                "versionsuffix must be a string, not {}",
                other.py_repr()
            ))
        }
    };
    let toolchain = match tc {
        None | Some(Value::None) => None,
        Some(Value::Bool(true)) => Some(Toolchain::system()),
        Some(Value::Tuple(xs)) | Some(Value::List(xs)) => match xs.as_slice() {
            [Value::Str(n), Value::Str(v)] => Some(Toolchain::new(n.clone(), v.clone())),
            _ => {
                return Err(format!(
                    "toolchain of a dependency needs two strings: {}",
                    dep.py_repr()
                ))
            }
        },
        Some(d @ Value::Dict(_)) => Some(toolchain_spec(d)?),
        Some(other) => return Err(format!("unsupported toolchain spec: {}", other.py_repr())),
    };
    Ok(Some(ParsedDep {
        name,
        version,
        versionsuffix,
        toolchain,
        hidden,
        external: false,
    }))
}

/// `pick_dep_version`: a string, `False` (drop), or an `arch=` dict.
fn pick_version(v: &Value, arch: Arch) -> Result<Option<String>, String> {
    let picked = match v {
        Value::Dict(pairs) => {
            if pairs.is_empty() {
                return Err("found empty dict as version".into());
            }
            if let Some((k, _)) = pairs
                .iter()
                .find(|(k, _)| !k.as_str().is_some_and(|k| k.starts_with("arch=")))
            {
                return Err(format!(
                    "unexpected key in version dict: {} (only 'arch=' keys)",
                    k.py_repr()
                ));
            }
            v.dict_get(arch.version_key())
                .or_else(|| v.dict_get("arch=*"))
                .ok_or_else(|| {
                    format!(
                        "no matches for version in {} (looking for {})",
                        v.py_repr(),
                        arch.version_key()
                    )
                })?
        }
        other => other,
    };
    match picked {
        Value::Str(s) => Ok(Some(s.clone())),
        Value::Bool(false) => Ok(None),
        other => Err(format!("version must be a string, not {}", other.py_repr())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(src: &str) -> Easyconfig {
        let mut ec = parse(src, Arch::X86_64).unwrap();
        ec.apply_templates(Arch::X86_64, &[]).unwrap();
        ec
    }

    const HEAD: &str = "name = 'Foo'\nversion = '1.2.3'\nhomepage = 'x'\ndescription = 'y'\n";

    #[test]
    fn module_and_file_names() {
        let ec = parsed(&format!(
            "{HEAD}versionsuffix = '-Python-%(pyver)s'\ntoolchain = {{'name': 'foss', 'version': '2023a'}}\n\
             dependencies = [('Python', '3.11.3')]\n"
        ));
        assert_eq!(ec.module_name(), "Foo/1.2.3-foss-2023a-Python-3.11.3");
        assert_eq!(ec.file_name(), "Foo-1.2.3-foss-2023a-Python-3.11.3.eb");
        let sys = parsed(&format!("{HEAD}toolchain = SYSTEM\n"));
        assert_eq!(sys.module_name(), "Foo/1.2.3");
    }

    #[test]
    fn every_dependency_form() {
        let ec = parsed(&format!(
            "{HEAD}toolchain = {{'name': 'GCC', 'version': '12.3.0'}}\n\
             dependencies = [\n\
               ('zlib', '1.2.13'),\n\
               ('Python', '3.11.3', '-bare'),\n\
               ('CUDA', '12.1.1', '', SYSTEM),\n\
               ('binutils', '2.40', '', True),\n\
               ('GMP', '6.2.1', '', ('GCCcore', '12.3.0')),\n\
               {{'name': 'Perl', 'version': '5.36.1'}},\n\
               ('Armlib', {{'arch=AArch64': '1.0', 'arch=x86_64': False}}),\n\
               ('numactl', {{'arch=x86_64': '2.0.16', 'arch=*': '9'}}),\n\
               ('site/1.0', EXTERNAL_MODULE),\n\
             ]\n"
        ));
        let mods: Vec<String> = ec
            .dependencies
            .iter()
            .map(Dependency::module_name)
            .collect();
        assert_eq!(
            mods,
            [
                "zlib/1.2.13-GCC-12.3.0",
                "Python/3.11.3-GCC-12.3.0-bare",
                "CUDA/12.1.1",
                "binutils/2.40",
                "GMP/6.2.1-GCCcore-12.3.0",
                "Perl/5.36.1-GCC-12.3.0",
                "numactl/2.0.16-GCC-12.3.0",
                "site/1.0",
            ]
        );
        assert!(ec.dependencies[0].toolchain_inherited);
        assert!(!ec.dependencies[2].toolchain_inherited);
        assert!(ec.dependencies[7].external);
        // On Arm the arch= dict picks another version and keeps Armlib.
        let arm = parse(
            &format!("{HEAD}toolchain = SYSTEM\ndependencies = [('Armlib', {{'arch=AArch64': '1.0', 'arch=x86_64': False}})]\n"),
            Arch::Aarch64,
        )
        .unwrap();
        assert_eq!(arm.dependencies[0].version, "1.0");
    }

    #[test]
    fn alternative_parameter_names() {
        let ec = parsed(&format!(
            "{HEAD}toolchain = SYSTEM\nversion_suffix = '-R-%(rver)s'\ndeps = [('R', '4.4.1')]\nbuild_deps = [('make', '4.4')]\n"
        ));
        assert_eq!(ec.module_name(), "Foo/1.2.3-R-4.4.1");
        assert_eq!(ec.builddependencies[0].name, "make");
    }

    #[test]
    fn arch_blocks_change_dependencies() {
        let src = format!(
            "{HEAD}toolchain = SYSTEM\ndependencies = [('a', '1')]\nif ARCH == 'aarch64':\n    dependencies += [('b', '2')]\n"
        );
        assert_eq!(parse(&src, Arch::X86_64).unwrap().dependencies.len(), 1);
        assert_eq!(parse(&src, Arch::Aarch64).unwrap().dependencies.len(), 2);
    }

    #[test]
    fn iterated_and_multi_builddeps_are_flattened_without_templates() {
        let ec = parsed(&format!(
            "{HEAD}toolchain = SYSTEM\nversionsuffix = '-%(pyver)s'\ndependencies = [('Python', '3.11.3')]\n\
             builddependencies = [[('Python', '2.7.18'), ('CMake', '3.26.3')], [('Python', '3.11.3'), ('CMake', '3.26.3')]]\n"
        ));
        assert!(ec.iterate_builddependencies);
        let b: Vec<String> = ec
            .builddependencies
            .iter()
            .map(Dependency::module_name)
            .collect();
        assert_eq!(b, ["Python/2.7.18", "CMake/3.26.3", "Python/3.11.3"]);
        // Iterated build dependencies do not define %(pyver)s; the runtime one does.
        assert_eq!(ec.versionsuffix, "-3.11.3");

        let m = parsed(&format!(
            "{HEAD}toolchain = SYSTEM\nmulti_deps = {{'Python': ['3.11.3', '2.7.18'], 'Boost': ['1.82.0', '1.79.0']}}\n\
             builddependencies = [('CMake', '3.26.3')]\n"
        ));
        let b: Vec<String> = m
            .builddependencies
            .iter()
            .map(Dependency::module_name)
            .collect();
        assert_eq!(
            b,
            [
                "Boost/1.82.0",
                "Python/3.11.3",
                "CMake/3.26.3",
                "Boost/1.79.0",
                "Python/2.7.18"
            ]
        );
    }

    #[test]
    fn builddeps_define_templates_when_not_iterated_and_toolchain_deps_last() {
        let mut ec = parse(
            &format!(
                "{HEAD}toolchain = {{'name': 'gcccuda', 'version': '2020b'}}\nversionsuffix = '-CUDA-%(cudaver)s-%(pyshortver)s'\n\
                 builddependencies = [('Python', '3.8.6')]\n"
            ),
            Arch::X86_64,
        )
        .unwrap();
        ec.apply_templates(Arch::X86_64, &[("CUDA".into(), "11.1.1".into())])
            .unwrap();
        assert_eq!(ec.versionsuffix, "-CUDA-11.1.1-3.8");
    }

    #[test]
    fn errors_name_the_line_and_reason() {
        let e = parse(
            &format!("{HEAD}toolchain = SYSTEM\ndependencies = [\n  ('a',),\n]\n"),
            Arch::X86_64,
        )
        .unwrap_err();
        assert_eq!(e.line, 6);
        assert!(e.reason.contains("without version"), "{}", e.reason);
        let e = parse("name = 'x'\nversion = '1'\n", Arch::X86_64).unwrap_err();
        assert!(e.reason.contains("toolchain"), "{}", e.reason);
        let e = parse(
            &format!("{HEAD}toolchain = SYSTEM\nversionsuffix = '%(nosuch)s'\n"),
            Arch::X86_64,
        )
        .and_then(|mut ec| {
            ec.apply_templates(Arch::X86_64, &[])
                .map_err(|r| ParseError { line: 0, reason: r })
        })
        .unwrap_err();
        assert!(e.reason.contains("nosuch"), "{}", e.reason);
    }
}
