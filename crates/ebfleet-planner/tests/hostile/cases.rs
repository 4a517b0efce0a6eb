// The hostile easyconfig cases, shared by the planner's suite (the entry the
// Plan Lambda calls) and the CLI's (`ebfleet plan` on a tree on disk): each is
// laid in a tree of good files, must be reported with its path and a reason,
// and must leave the good files planned.

use std::path::Path;

/// What a case puts in the tree.
pub enum Kind {
    /// A file with these bytes.
    File(Vec<u8>),
    /// A symlink to a good easyconfig (it could point anywhere).
    Symlink,
    /// A named pipe (reading it would block).
    Fifo,
    /// A Unix socket, standing in for a device (creating a device node needs root).
    Socket,
    /// A directory named like an easyconfig.
    Directory,
    /// Two easyconfigs that depend on each other: reported as unresolvable.
    Cycle,
}

pub struct Case {
    pub name: &'static str,
    /// Path of the hostile file, relative to the tree.
    pub path: String,
    pub kind: Kind,
    /// Part of the reason it must be reported with.
    pub reason: &'static str,
}

/// The good files around every case, and the modules they must plan as.
pub const GOOD: &[(&str, &str)] = &[
    (
        "g/GCCcore/GCCcore-13.2.0.eb",
        "name = 'GCCcore'\nversion = '13.2.0'\nhomepage = 'x'\ndescription = 'x'\ntoolchain = SYSTEM\n",
    ),
    (
        "z/zlib/zlib-1.3-GCCcore-13.2.0.eb",
        "name = 'zlib'\nversion = '1.3'\nhomepage = 'x'\ndescription = 'x'\ntoolchain = {'name': 'GCCcore', 'version': '13.2.0'}\n",
    ),
];
pub const GOOD_TARGETS: &[&str] = &["GCCcore/13.2.0", "zlib/1.3-GCCcore-13.2.0"];

/// A complete easyconfig for `name`/`version` (SYSTEM toolchain) followed by `body`.
fn ec(name: &str, version: &str, body: &str) -> Vec<u8> {
    format!("name = '{name}'\nversion = '{version}'\nhomepage = 'x'\ndescription = 'x'\ntoolchain = SYSTEM\n{body}\n").into_bytes()
}

/// A valid header for `h/Hostile/Hostile-1.eb` with a hostile `body` after it.
fn payload(name: &'static str, body: &str, reason: &'static str) -> Case {
    Case {
        name,
        path: "h/Hostile/Hostile-1.eb".into(),
        kind: Kind::File(ec("Hostile", "1", body)),
        reason,
    }
}

fn named(
    name: &'static str,
    path: &str,
    module: &str,
    version: &str,
    reason: &'static str,
) -> Case {
    Case {
        name,
        path: path.into(),
        kind: Kind::File(ec(module, version, "")),
        reason,
    }
}

const COPIES: &str = "copies too much data";
const TOO_LARGE: &str = "too large";
const SLOW: &str = "longer than 2 s";
const INVALID: &str = "not a valid module name";
const DISAGREE: &str = "path and contents disagree";
const SPECIAL: &str = "not a regular file";

pub fn cases() -> Vec<Case> {
    let deep_brackets = format!("x = {}{}", "[".repeat(5000), "]".repeat(5000));
    let deep_unary = format!("x = {}1", "-".repeat(1_000_000));
    let deep_indent: String = (0..200)
        .map(|i| format!("{}if True:\n", " ".repeat(i)))
        .chain([format!("{}x = 1", " ".repeat(200))])
        .collect();
    let big_list = format!("x = [{}]\ny = [x] * 100000", "0,".repeat(400_000));
    let mut invalid_utf8 = ec("Hostile", "1", "x = '");
    invalid_utf8.extend_from_slice(b"\xff\xfe\xc0\x80'\n");
    let mut bom = "\u{feff}".as_bytes().to_vec();
    bom.extend(ec("Hostile", "1", ""));
    vec![
        // Resource exhaustion: each must be refused before it allocates.
        payload(
            "repeat of a repeat",
            "x = 'a' * 16000000\ny = [x] * 1000",
            COPIES,
        ),
        payload("list repeat", "x = [0] * 4000000\ny = [x] * 64", COPIES),
        payload(
            "augmented repeat",
            "x = ['a' * 1000000]\nx *= 100000",
            COPIES,
        ),
        payload(
            "join of a repeat",
            "x = 'a' * 10000000\ny = ','.join([x] * 100)",
            COPIES,
        ),
        payload("%-format width", "x = '%999999999d' % 1", TOO_LARGE),
        payload("%-format precision", "x = '%.999999999f' % 1.0", TOO_LARGE),
        payload("%-format * width", "x = '%*d' % (999999999, 1)", TOO_LARGE),
        payload("format() width", "x = '{:>999999999}'.format(1)", TOO_LARGE),
        payload(
            "format() nested width",
            "x = '{:{}}'.format(1, 999999999)",
            TOO_LARGE,
        ),
        payload("f-string width", "x = f'{1:>999999999}'", TOO_LARGE),
        payload(
            "comprehension growth",
            "x = ['a' * 100000 for i in range(1000000)]",
            COPIES,
        ),
        payload(
            "+ concatenation growth",
            "x = []\nfor i in range(1000000):\n    x = x + [i]",
            COPIES,
        ),
        payload(
            "range of 10^9",
            "x = list(range(1000000000))",
            "range() of more than",
        ),
        payload(
            "range materialised and repeated",
            "x = list(range(1000000))\ny = [x] * 100",
            COPIES,
        ),
        payload(
            "dict(zip(...)) of 10^6",
            "x = dict(zip(range(1000000), range(1000000)))",
            COPIES,
        ),
        payload(
            "slices of a big list",
            "x = list(range(1000000))\ny = [x[::-1] for i in range(1000)]",
            COPIES,
        ),
        payload(
            "dict of 10^6 keys in a loop",
            "d = {}\nfor i in range(1000000):\n    d[i] = i",
            SLOW,
        ),
        payload(
            "set of 10^6 in a loop",
            "s = set()\nfor i in range(1000000):\n    s.add(i)",
            SLOW,
        ),
        payload(
            "linear scan per pass",
            "x = list(range(1000000))\ny = [i in x for i in range(1000000)]",
            SLOW,
        ),
        payload(
            "split into 16M parts",
            "x = ' ' * 16000000\ny = x.split(' ')",
            "more than 1048576 parts",
        ),
        payload(
            "list() of a 16M string",
            "x = list('a' * 16000000)",
            "iterating a string",
        ),
        payload(
            "str() of a nested repeat",
            "x = str([['a' * 100000] * 100] * 100)",
            COPIES,
        ),
        payload(
            "str.replace growth",
            "x = 'a' * 1000000\ny = x.replace('a', 'b' * 1000)",
            TOO_LARGE,
        ),
        payload("str.center width", "x = 'a'.center(999999999)", TOO_LARGE),
        // Deep nesting, huge literals, unterminated input.
        payload(
            "deep brackets",
            &deep_brackets,
            "too many nested parentheses",
        ),
        payload("deep unary operators", &deep_unary, "too deeply nested"),
        payload(
            "deep indentation",
            &deep_indent,
            "too many levels of indentation",
        ),
        payload(
            "huge integer literal",
            &format!("x = {}", "9".repeat(100_000)),
            TOO_LARGE,
        ),
        payload("huge list literal repeated", &big_list, COPIES),
        payload(
            "unterminated string",
            "x = 'abc",
            "unterminated string literal",
        ),
        payload(
            "unterminated triple-quoted string",
            "x = '''abc",
            "unterminated triple-quoted",
        ),
        payload("unterminated bracket", "x = [1, 2", "was never closed"),
        // Names and encodings.
        Case {
            name: "invalid UTF-8",
            path: "h/Hostile/Hostile-1.eb".into(),
            kind: Kind::File(invalid_utf8),
            reason: "not UTF-8",
        },
        payload("NUL byte", "x = 1\0", "U+0000"),
        Case {
            name: "byte order mark",
            path: "h/Hostile/Hostile-1.eb".into(),
            kind: Kind::File(bom),
            reason: "U+FEFF",
        },
        Case {
            name: "overlong line",
            path: "h/Hostile/Hostile-1.eb".into(),
            kind: Kind::File(ec(&"A".repeat(900_000), "1", "")),
            reason: DISAGREE,
        },
        named(
            "homoglyph name",
            "z/zl\u{456}b/zl\u{456}b-1.3.eb",
            "zl\u{456}b",
            "1.3",
            INVALID,
        ),
        named(
            "name with path separators",
            "e/etc/etc-1.eb",
            "../../etc",
            "1",
            INVALID,
        ),
        named(
            "name with shell metacharacters",
            "z/z;rm -rf ~/z;rm -rf ~-1.eb",
            "z;rm -rf ~",
            "1",
            INVALID,
        ),
        named(
            "version with a control character",
            "h/Hostile/Hostile-1\u{1b}[31m.eb",
            "Hostile",
            "1\\x1b[31m",
            INVALID,
        ),
        named(
            "version ..",
            "h/Hostile/Hostile-...eb",
            "Hostile",
            "..",
            INVALID,
        ),
        named(
            "version with a $()",
            "h/Hostile/Hostile-$(id).eb",
            "Hostile",
            "$(id)",
            INVALID,
        ),
        // Cycles and mismatched paths.
        Case {
            name: "dependency cycle",
            path: "c/CycleA/CycleA-1.eb".into(),
            kind: Kind::Cycle,
            reason: "dependency cycle",
        },
        named(
            "contents name another module",
            "x/Xx/Xx-1.eb",
            "zlib",
            "1.3.1",
            DISAGREE,
        ),
        named(
            "wrong letter directory",
            "q/zlib/zlib-1.3.1.eb",
            "zlib",
            "1.3.1",
            DISAGREE,
        ),
        named(
            "file name disagrees with version",
            "z/zlib/zlib-9.9.eb",
            "zlib",
            "1.3.1",
            DISAGREE,
        ),
        // Special files.
        Case {
            name: "symlink",
            path: "l/Link/Link-1.eb".into(),
            kind: Kind::Symlink,
            reason: SPECIAL,
        },
        Case {
            name: "FIFO",
            path: "f/Fifo/Fifo-1.eb".into(),
            kind: Kind::Fifo,
            reason: SPECIAL,
        },
        Case {
            name: "socket (device-like)",
            path: "s/Sock/Sock-1.eb".into(),
            kind: Kind::Socket,
            reason: SPECIAL,
        },
        Case {
            name: "directory named *.eb",
            path: "d/Dir/Dir-1.eb".into(),
            kind: Kind::Directory,
            reason: SPECIAL,
        },
        Case {
            name: "2 MiB file",
            path: "b/Big/Big-1.eb".into(),
            kind: Kind::File(ec("Big", "1", &format!("# {}", "x".repeat(2 << 20)))),
            reason: "refused: 2097",
        },
    ]
}

fn write(root: &Path, rel: &str, bytes: &[u8]) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
}

/// The bytes of every file a case puts in an object store (as the Plan
/// Lambda sees them): the good files and the hostile ones; special files
/// exist only on disk.
pub fn objects(case: &Case) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = GOOD
        .iter()
        .map(|(p, t)| (p.to_string(), t.as_bytes().to_vec()))
        .collect();
    match &case.kind {
        Kind::File(bytes) => out.push((case.path.clone(), bytes.clone())),
        Kind::Cycle => out.extend(cycle_files()),
        _ => {}
    }
    out
}

fn cycle_files() -> Vec<(String, Vec<u8>)> {
    vec![
        (
            "c/CycleA/CycleA-1.eb".into(),
            ec("CycleA", "1", "dependencies = [('CycleB', '1')]"),
        ),
        (
            "c/CycleB/CycleB-1.eb".into(),
            ec("CycleB", "1", "dependencies = [('CycleA', '1')]"),
        ),
    ]
}

/// Lay the case and the good files out under `root`.
pub fn lay_out(root: &Path, case: &Case) {
    for (path, bytes) in objects(case) {
        write(root, &path, &bytes);
    }
    let p = root.join(&case.path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    match case.kind {
        Kind::File(_) | Kind::Cycle => {}
        Kind::Symlink => std::os::unix::fs::symlink(root.join(GOOD[0].0), &p).unwrap(),
        Kind::Fifo => {
            let ok = std::process::Command::new("mkfifo")
                .arg(&p)
                .status()
                .unwrap();
            assert!(ok.success(), "mkfifo");
        }
        Kind::Socket => {
            // The listener is dropped; the socket file stays.
            std::os::unix::net::UnixListener::bind(&p).unwrap();
        }
        Kind::Directory => write(root, &format!("{}/inner.txt", case.path), b"x"),
    }
}
