//! The names EasyBuild predefines for easyconfig files: `EASYCONFIG_CONSTANTS` (with fixed
//! values for the machine-dependent ones) and the template constants, including their
//! alternative spellings (`ALTERNATIVE_EASYCONFIG_TEMPLATE_CONSTANTS`). Template constants
//! are strings with unexpanded `%(name)s` templates, exactly as EasyBuild defines them.

use super::Value;

/// Template constants: every name of a constant (the first one is EasyBuild's own, the
/// others its alternative spellings) and its value.
pub const TEMPLATE_CONSTANTS: &[(&[&str], &str)] = &[
    (
        &["APACHE_SOURCE", "APACHE_URL"],
        "https://archive.apache.org/dist/%(namelower)s",
    ),
    (
        &["BITBUCKET_SOURCE", "BITBUCKET_GET_URL"],
        "https://bitbucket.org/%(bitbucket_account)s/%(namelower)s/get",
    ),
    (
        &["BITBUCKET_DOWNLOADS", "BITBUCKET_DOWNLOADS_URL"],
        "https://bitbucket.org/%(bitbucket_account)s/%(namelower)s/downloads",
    ),
    (
        &["CRAN_SOURCE", "CRAN_URL"],
        "https://cran.r-project.org/src/contrib",
    ),
    (
        &["FTPGNOME_SOURCE", "FTP_GNOME_URL"],
        "https://ftp.gnome.org/pub/GNOME/sources/%(namelower)s/%(version_major_minor)s",
    ),
    (
        &["GITHUB_SOURCE", "GITHUB_URL"],
        "https://github.com/%(github_account)s/%(name)s/archive",
    ),
    (
        &["GITHUB_LOWER_SOURCE", "GITHUB_URL_LOWER"],
        "https://github.com/%(github_account)s/%(namelower)s/archive",
    ),
    (
        &["GITHUB_RELEASE", "GITHUB_RELEASE_URL"],
        "https://github.com/%(github_account)s/%(name)s/releases/download/v%(version)s",
    ),
    (
        &["GITHUB_LOWER_RELEASE", "GITHUB_RELEASE_URL_LOWER"],
        "https://github.com/%(github_account)s/%(namelower)s/releases/download/v%(version)s",
    ),
    (
        &["GNU_SAVANNAH_SOURCE", "GNU_SAVANNAH_URL"],
        "https://download-mirror.savannah.gnu.org/releases/%(namelower)s",
    ),
    (
        &["GNU_SOURCE", "GNU_URL"],
        "https://ftpmirror.gnu.org/gnu/%(namelower)s",
    ),
    (
        &["GNU_FTP_SOURCE", "GNU_FTP_URL"],
        "https://ftp.gnu.org/gnu/%(namelower)s",
    ),
    (
        &["GOOGLECODE_SOURCE", "GOOGLECODE_URL"],
        "http://%(namelower)s.googlecode.com/files",
    ),
    (
        &["LAUNCHPAD_SOURCE", "LAUNCHPAD_URL"],
        "https://launchpad.net/%(namelower)s/%(version_major_minor)s.x/%(version)s/+download/",
    ),
    (
        &["PYPI_SOURCE", "PYPI_URL"],
        "https://pypi.python.org/packages/source/%(nameletter)s/%(name)s",
    ),
    (
        &["PYPI_LOWER_SOURCE", "PYPI_URL_LOWER"],
        "https://pypi.python.org/packages/source/%(nameletterlower)s/%(namelower)s",
    ),
    (
        &["R_SOURCE", "R_URL"],
        "https://cran.r-project.org/src/base/R-%(version_major)s",
    ),
    (
        &["SOURCEFORGE_SOURCE", "SOURCEFORGE_URL"],
        "https://download.sourceforge.net/%(namelower)s",
    ),
    (
        &["XORG_DATA_SOURCE", "XORG_DATA_URL"],
        "https://xorg.freedesktop.org/archive/individual/data/",
    ),
    (
        &["XORG_LIB_SOURCE", "XORG_LIB_URL"],
        "https://xorg.freedesktop.org/archive/individual/lib/",
    ),
    (
        &["XORG_PROTO_SOURCE", "XORG_PROTO_URL"],
        "https://xorg.freedesktop.org/archive/individual/proto/",
    ),
    (
        &["XORG_UTIL_SOURCE", "XORG_UTIL_URL"],
        "https://xorg.freedesktop.org/archive/individual/util/",
    ),
    (
        &["XORG_XCB_SOURCE", "XORG_XCB_URL"],
        "https://xorg.freedesktop.org/archive/individual/xcb/",
    ),
    (&["SOURCE_TAR_GZ"], "%(name)s-%(version)s.tar.gz"),
    (
        &["SOURCELOWER_TAR_GZ", "SOURCE_LOWER_TAR_GZ"],
        "%(namelower)s-%(version)s.tar.gz",
    ),
    (&["VERSION_TAR_GZ"], "%(version)s.tar.gz"),
    (&["V_VERSION_TAR_GZ"], "v%(version)s.tar.gz"),
    (&["SOURCE_TAR_XZ"], "%(name)s-%(version)s.tar.xz"),
    (
        &["SOURCELOWER_TAR_XZ", "SOURCE_LOWER_TAR_XZ"],
        "%(namelower)s-%(version)s.tar.xz",
    ),
    (&["VERSION_TAR_XZ"], "%(version)s.tar.xz"),
    (&["V_VERSION_TAR_XZ"], "v%(version)s.tar.xz"),
    (&["SOURCE_TAR_BZ2"], "%(name)s-%(version)s.tar.bz2"),
    (
        &["SOURCELOWER_TAR_BZ2", "SOURCE_LOWER_TAR_BZ2"],
        "%(namelower)s-%(version)s.tar.bz2",
    ),
    (&["VERSION_TAR_BZ2"], "%(version)s.tar.bz2"),
    (&["V_VERSION_TAR_BZ2"], "v%(version)s.tar.bz2"),
    (&["SOURCE_TGZ"], "%(name)s-%(version)s.tgz"),
    (
        &["SOURCELOWER_TGZ", "SOURCE_LOWER_TGZ"],
        "%(namelower)s-%(version)s.tgz",
    ),
    (&["VERSION_TGZ"], "%(version)s.tgz"),
    (&["V_VERSION_TGZ"], "v%(version)s.tgz"),
    (&["SOURCE_TXZ"], "%(name)s-%(version)s.txz"),
    (
        &["SOURCELOWER_TXZ", "SOURCE_LOWER_TXZ"],
        "%(namelower)s-%(version)s.txz",
    ),
    (&["VERSION_TXZ"], "%(version)s.txz"),
    (&["V_VERSION_TXZ"], "v%(version)s.txz"),
    (&["SOURCE_TBZ2"], "%(name)s-%(version)s.tbz2"),
    (
        &["SOURCELOWER_TBZ2", "SOURCE_LOWER_TBZ2"],
        "%(namelower)s-%(version)s.tbz2",
    ),
    (&["VERSION_TBZ2"], "%(version)s.tbz2"),
    (&["V_VERSION_TBZ2"], "v%(version)s.tbz2"),
    (&["SOURCE_TB2"], "%(name)s-%(version)s.tb2"),
    (
        &["SOURCELOWER_TB2", "SOURCE_LOWER_TB2"],
        "%(namelower)s-%(version)s.tb2",
    ),
    (&["VERSION_TB2"], "%(version)s.tb2"),
    (&["V_VERSION_TB2"], "v%(version)s.tb2"),
    (&["SOURCE_GTGZ"], "%(name)s-%(version)s.gtgz"),
    (
        &["SOURCELOWER_GTGZ", "SOURCE_LOWER_GTGZ"],
        "%(namelower)s-%(version)s.gtgz",
    ),
    (&["VERSION_GTGZ"], "%(version)s.gtgz"),
    (&["V_VERSION_GTGZ"], "v%(version)s.gtgz"),
    (&["SOURCE_ZIP"], "%(name)s-%(version)s.zip"),
    (
        &["SOURCELOWER_ZIP", "SOURCE_LOWER_ZIP"],
        "%(namelower)s-%(version)s.zip",
    ),
    (&["VERSION_ZIP"], "%(version)s.zip"),
    (&["V_VERSION_ZIP"], "v%(version)s.zip"),
    (&["SOURCE_TAR"], "%(name)s-%(version)s.tar"),
    (
        &["SOURCELOWER_TAR", "SOURCE_LOWER_TAR"],
        "%(namelower)s-%(version)s.tar",
    ),
    (&["VERSION_TAR"], "%(version)s.tar"),
    (&["V_VERSION_TAR"], "v%(version)s.tar"),
    (&["SOURCE_XZ"], "%(name)s-%(version)s.xz"),
    (
        &["SOURCELOWER_XZ", "SOURCE_LOWER_XZ"],
        "%(namelower)s-%(version)s.xz",
    ),
    (&["VERSION_XZ"], "%(version)s.xz"),
    (&["V_VERSION_XZ"], "v%(version)s.xz"),
    (&["SOURCE_TAR_Z"], "%(name)s-%(version)s.tar.Z"),
    (
        &["SOURCELOWER_TAR_Z", "SOURCE_LOWER_TAR_Z"],
        "%(namelower)s-%(version)s.tar.Z",
    ),
    (&["VERSION_TAR_Z"], "%(version)s.tar.Z"),
    (&["V_VERSION_TAR_Z"], "v%(version)s.tar.Z"),
    (&["SOURCE_WHL"], "%(name)s-%(version)s-py2.py3-none-any.whl"),
    (
        &["SOURCELOWER_WHL", "SOURCE_LOWER_WHL"],
        "%(namelower)s-%(version)s-py2.py3-none-any.whl",
    ),
    (&["SOURCE_PY2_WHL"], "%(name)s-%(version)s-py2-none-any.whl"),
    (
        &["SOURCELOWER_PY2_WHL", "SOURCE_LOWER_PY2_WHL"],
        "%(namelower)s-%(version)s-py2-none-any.whl",
    ),
    (&["SOURCE_PY3_WHL"], "%(name)s-%(version)s-py3-none-any.whl"),
    (
        &["SOURCELOWER_PY3_WHL", "SOURCE_LOWER_PY3_WHL"],
        "%(namelower)s-%(version)s-py3-none-any.whl",
    ),
    (&["SHLIB_EXT"], "so"),
];

/// Constants with a fixed string value. `ARCH` and `SYSTEM` and the `OS_PKG_*` tuples are
/// handled by [`easybuild_constant`]. `HOME`, `OS_*` and `SYS_PYTHON_VERSION` depend on the
/// build host in EasyBuild; these are the values ebfleet evaluates easyconfigs with.
pub const STRING_CONSTANTS: &[(&str, &str)] = &[
    ("EXTERNAL_MODULE", "EXTERNAL_MODULE"),
    ("HOME", "/home/ebfleet"),
    ("MODULE_LOAD_ENV_HEADERS", "CPP_HEADERS"),
    ("OS_TYPE", "Linux"),
    ("OS_NAME", "debian"),
    ("OS_VERSION", "12"),
    ("SYS_PYTHON_VERSION", "3.11.7"),
    // A plain string in EasyBuild (`('openssl')` is not a tuple).
    ("OS_PKG_OPENSSL_BIN", "openssl"),
];

/// Constants whose value is a tuple of strings.
pub const TUPLE_CONSTANTS: &[(&str, &[&str])] = &[
    (
        "OS_PKG_IBVERBS_DEV",
        &["libibverbs-dev", "libibverbs-devel", "rdma-core-devel"],
    ),
    ("OS_PKG_OPENSSL_LIB", &["libssl", "libopenssl"]),
    (
        "OS_PKG_OPENSSL_DEV",
        &["openssl-devel", "libssl-dev", "libopenssl-devel"],
    ),
    ("OS_PKG_PAM_DEV", &["pam-devel", "libpam0g-dev"]),
];

/// Every name [`easybuild_constant`] knows, in a stable order.
pub fn easybuild_constant_names() -> impl Iterator<Item = &'static str> {
    ["ARCH", "SYSTEM"]
        .into_iter()
        .chain(STRING_CONSTANTS.iter().map(|(n, _)| *n))
        .chain(TUPLE_CONSTANTS.iter().map(|(n, _)| *n))
        .chain(
            TEMPLATE_CONSTANTS
                .iter()
                .flat_map(|(names, _)| names.iter().copied()),
        )
}

/// The value of the predefined easyconfig constant `name`, with `ARCH` set to `arch`.
pub fn easybuild_constant(name: &str, arch: &str) -> Option<Value> {
    let s = |v: &str| Some(Value::Str(v.to_string()));
    match name {
        "ARCH" => return s(arch),
        "SYSTEM" => {
            return Some(Value::Dict(vec![
                (Value::Str("name".into()), Value::Str("system".into())),
                (Value::Str("version".into()), Value::Str("system".into())),
            ]))
        }
        _ => {}
    }
    if let Some((_, v)) = STRING_CONSTANTS.iter().find(|(n, _)| *n == name) {
        return s(v);
    }
    if let Some((_, items)) = TUPLE_CONSTANTS.iter().find(|(n, _)| *n == name) {
        return Some(Value::Tuple(
            items.iter().map(|v| Value::Str(v.to_string())).collect(),
        ));
    }
    TEMPLATE_CONSTANTS
        .iter()
        .find(|(names, _)| names.contains(&name))
        .and_then(|(_, v)| s(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values() {
        assert_eq!(
            easybuild_constant("ARCH", "aarch64"),
            Some(Value::Str("aarch64".into()))
        );
        assert_eq!(
            easybuild_constant("SYSTEM", "x86_64")
                .unwrap()
                .dict_get("name"),
            Some(&Value::Str("system".into()))
        );
        assert_eq!(
            easybuild_constant("SOURCELOWER_TAR_GZ", "x86_64"),
            Some(Value::Str("%(namelower)s-%(version)s.tar.gz".into()))
        );
        // alternative spelling
        assert_eq!(
            easybuild_constant("SOURCE_LOWER_TAR_GZ", "x86_64"),
            easybuild_constant("SOURCELOWER_TAR_GZ", "x86_64")
        );
        assert_eq!(
            easybuild_constant("GITHUB_URL", "x86_64"),
            Some(Value::Str(
                "https://github.com/%(github_account)s/%(name)s/archive".into()
            ))
        );
        assert_eq!(
            easybuild_constant("SOURCE_PY3_WHL", "x86_64"),
            Some(Value::Str("%(name)s-%(version)s-py3-none-any.whl".into()))
        );
        assert_eq!(
            easybuild_constant("SHLIB_EXT", "x86_64"),
            Some(Value::Str("so".into()))
        );
        assert_eq!(
            easybuild_constant("OS_PKG_OPENSSL_DEV", "x86_64"),
            Some(Value::Tuple(vec![
                Value::Str("openssl-devel".into()),
                Value::Str("libssl-dev".into()),
                Value::Str("libopenssl-devel".into())
            ]))
        );
        assert_eq!(easybuild_constant("name", "x86_64"), None);
        assert_eq!(easybuild_constant("", "x86_64"), None);
    }

    #[test]
    fn names_are_unique_and_resolve() {
        let names: Vec<&str> = easybuild_constant_names().collect();
        // 14 easyconfig constants, 78 template constants, 38 alternative spellings
        assert_eq!(names.len(), 14 + 78 + 38);
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len());
        for n in names {
            assert!(easybuild_constant(n, "x86_64").is_some(), "{n}");
        }
    }
}
