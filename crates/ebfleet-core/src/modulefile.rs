//! What an EasyBuild module file (Lmod, Lua) loads: its runtime
//! dependencies as Lmod sees them, which is what a cluster needs beside a
//! module (`ebfleet pull`). Module files are written by build nodes, so
//! only module names that validate are believed, and nothing is evaluated.

use crate::names::ModuleName;

/// The modules `text` loads, in order, each once: the string literal
/// argument of every `load("…")` and `depends_on("…")` call (EasyBuild
/// writes one or the other, the first under `if not isloaded(…)`).
/// An argument that is not a valid module name is returned as `Err`.
pub fn loads(text: &str) -> Vec<Result<ModuleName, String>> {
    let mut out: Vec<Result<ModuleName, String>> = Vec::new();
    for line in text.lines() {
        let line = line.trim_start();
        if line.starts_with("--") {
            continue;
        }
        for call in ["depends_on(", "load("] {
            let mut rest = line;
            while let Some(at) = rest.find(call) {
                // `isloaded(` and `unload(` end in `load(` too.
                let before = rest[..at].chars().next_back();
                let after = &rest[at + call.len()..];
                rest = after;
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    continue;
                }
                let Some(arg) = string_literal(after.trim_start()) else {
                    continue;
                };
                let m = arg.parse::<ModuleName>().map_err(|_| arg.to_string());
                if !out.contains(&m) {
                    out.push(m);
                }
            }
        }
    }
    out
}

/// The contents of a leading `"…"` or `'…'` without escapes.
fn string_literal(s: &str) -> Option<&str> {
    let q = s.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let body = &s[1..];
    let end = body.find(q)?;
    let lit = &body[..end];
    (!lit.contains('\\')).then_some(lit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(text: &str) -> Vec<String> {
        loads(text)
            .into_iter()
            .map(|m| m.map_or_else(|bad| format!("bad:{bad}"), |m| m.to_string()))
            .collect()
    }

    #[test]
    fn both_forms_easybuild_writes_are_read() {
        let lua = r#"help([==[zlib]==])
whatis([==[Description: zlib]==])
local root = "/opt/eb/software/Python/3.11.5-GCCcore-13.2.0"
conflict("Python")
if not ( isloaded("GCCcore/13.2.0") ) then
    load("GCCcore/13.2.0")
end
depends_on("zlib/1.3-GCCcore-13.2.0")
depends_on('bzip2/1.0.8-GCCcore-13.2.0')
-- load("commented/1.0")
unload("Other/1")
prepend_path("PATH", pathJoin(root, "bin"))
"#;
        assert_eq!(
            names(lua),
            [
                "GCCcore/13.2.0",
                "zlib/1.3-GCCcore-13.2.0",
                "bzip2/1.0.8-GCCcore-13.2.0"
            ]
        );
    }

    #[test]
    fn hostile_arguments_are_not_names() {
        let lua =
            "load(\"../../etc/passwd\")\nload(x)\ndepends_on(\"a/1\" .. x)\nload(\"a\\\"b/1\")\n";
        assert_eq!(names(lua), ["bad:../../etc/passwd", "a/1"]);
        assert!(names("").is_empty());
    }
}
