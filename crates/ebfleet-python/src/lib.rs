//! A small, fast evaluator for the subset of Python that EasyBuild easyconfig files (`*.eb`)
//! use.
//!
//! Easyconfigs are Python modules that mostly assign literals to names, with some string
//! formatting (`%`, `str.format`, f-strings), list comprehensions, `if ARCH == ...:` blocks,
//! a few `for` loops and calls to a handful of builtins and `str`/`list`/`dict` methods.
//! [`exec`] runs such a file and returns its top-level names ([`Namespace`]).
//!
//! The pipeline is a hand-written lexer (INDENT/DEDENT, bracket depth, line numbers), a
//! recursive-descent parser producing a small AST (literal displays are folded into constant
//! values at parse time), and a tree-walking evaluator.
//!
//! The subset:
//!
//! * statements: assignment (chained, tuple/list unpacking, `x[k] = v`), augmented
//!   assignment (`+= -= *= /= //= %=`), `if`/`elif`/`else`, `for ... in ...` (with `else`),
//!   expression statements (`x.append(...)` mutates `x`), `pass`, `;`, a module docstring;
//! * expressions: str/int/float/bool/None literals (all string prefixes but bytes, implicit
//!   concatenation, f-strings with conversions and format specs), names, tuple/list/dict/set
//!   displays, list/set/dict comprehensions and generator expressions, `+ - * / // %`
//!   (`%` formatting included), unary `- + not`, `and`/`or`, comparison chains with
//!   `== != < <= > >= in not in` and `is` against None/True/False, conditional expressions,
//!   subscripts and slices, calls of the builtins `len str repr ascii int float bool chr ord
//!   list tuple set dict sorted min max sum abs any all format range zip enumerate reversed`,
//!   and the common methods of str, list, tuple, dict and set.
//!
//! Semantics follow CPython 3.11 for everything inside the subset, error messages included;
//! anything outside it (`def`, `class`, `lambda`, `import`, `while`, `try`, `with`,
//! `assert`, `:=`, `*args`, `**`, decorators, `global`, attribute access other than method
//! calls, ...) is an error "unsupported syntax: ...", and no input makes [`exec`] panic.
//! Deliberate differences:
//!
//! * Values have value semantics: `b = a; b.append(1)` leaves `a` unchanged (Python would
//!   share the list). No easyconfig relies on aliasing.
//! * Integers are 64-bit; anything that would overflow is an error.
//! * Sets keep insertion order (CPython iterates them in hash order).
//! * `range()`, `zip()`, `enumerate()`, `reversed()`, `dict.keys()/values()/items()` and
//!   generator expressions are only accepted where they are consumed as iterables (a `for`,
//!   a comprehension, `in`, or an argument of `list()`, `''.join()`, `sorted()`, ...); stored
//!   anywhere else they are an error rather than a silently different value.
//! * Resource caps keep hostile input cheap: nesting depth of the source and of values,
//!   length of strings and lists, the total size of copied values (charged before a repeat
//!   or concatenation is built), the total number of loop iterations, and the time one
//!   [`exec`] may take (2 s).
//! * `repr()` of non-ASCII strings treats a fixed list of code points as non-printable, and
//!   `\N{...}` escapes are not supported (no Unicode database).
//!
//! # How it is checked against CPython
//!
//! `scripts/test-easybuild.sh` runs `examples/python_eval` over every easyconfig EasyBuild
//! ships (11,896 files in 5.4.1), once with `ARCH` = `x86_64` and once with `aarch64`, and
//! `tests/easybuild/python_eval_check.py` executes each file with CPython's own `exec()` (in
//! EasyBuild's Python, with EasyBuild's constants) and compares the two namespaces name by
//! name: every file must agree, errors included. The same check compares this crate's
//! constants ([`easybuild_constant`]) with EasyBuild's. The unit tests here pin CPython's
//! behaviour on the corners (formatting, slicing, comparisons, error messages) and the
//! resource caps on hostile input.
//!
//! The crate depends on no other ebfleet crate: the planner (`ebfleet-planner`) gives it the
//! file's text and the constants, and reads back the [`Namespace`].

mod ast;
mod builtins;
pub mod constants;
mod eval;
mod format;
mod lexer;
mod ops;
mod parser;

pub use constants::easybuild_constant;

/// Maximum nesting of brackets/blocks/expressions in the source.
pub(crate) const MAX_NESTING: u32 = 100;
/// Maximum nesting depth of a value stored in a name.
pub(crate) const MAX_VALUE_DEPTH: usize = 100;
/// Maximum length (bytes of a string, elements of a list) of a computed value.
pub(crate) const MAX_LEN: usize = 1 << 24;
/// Budget for copying values during one [`exec`], in units of about 32 bytes (one per
/// value plus one per 32 bytes of string). Value semantics copy where Python would share
/// a reference; this bounds the memory hostile input can make that take.
pub(crate) const MAX_COPY_UNITS: u64 = 1 << 22;
/// Maximum number of loop and comprehension iterations in one [`exec`].
pub(crate) const MAX_ITERATIONS: u64 = 1 << 20;
/// Time budget of one [`exec`]: EasyBuild's easyconfigs take microseconds each; what the
/// size caps leave unbounded (a loop doing a linear scan per pass) stops here.
pub(crate) const MAX_EVAL_TIME: std::time::Duration = std::time::Duration::from_secs(2);

/// A Python value as easyconfigs use them.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<Value>),
    Tuple(Vec<Value>),
    /// Insertion-ordered, unique keys.
    Dict(Vec<(Value, Value)>),
    /// Insertion order, unique elements.
    Set(Vec<Value>),
}

impl Value {
    /// The string, if this is a `str`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Python truthiness (`bool(value)`).
    pub fn truthy(&self) -> bool {
        match self {
            Value::None => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::List(v) | Value::Tuple(v) | Value::Set(v) => !v.is_empty(),
            Value::Dict(d) => !d.is_empty(),
        }
    }

    /// For a dict, the value stored under the string key `key`.
    pub fn dict_get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(d) => d
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The Python type name (`'str'`, `'list'`, ...), as used in error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::None => "NoneType",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::List(_) => "list",
            Value::Tuple(_) => "tuple",
            Value::Dict(_) => "dict",
            Value::Set(_) => "set",
        }
    }

    /// Like Python's `repr(value)`.
    pub fn py_repr(&self) -> String {
        let mut out = String::new();
        format::write_repr(&mut out, self, false);
        out
    }

    /// Like Python's `str(value)`.
    pub fn py_str(&self) -> String {
        match self {
            Value::Str(s) => s.clone(),
            other => other.py_repr(),
        }
    }
}

/// An error with the 1-based line of the statement/expression and a reason.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct PyError {
    pub line: u32,
    pub message: String,
}

impl PyError {
    pub(crate) fn new(line: u32, message: impl Into<String>) -> Self {
        PyError {
            line,
            message: message.into(),
        }
    }
}

/// Top-level names after executing a module, in first-assignment order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Namespace {
    entries: Vec<(String, Value)>,
    /// Indices into `entries`, sorted by name, for lookups.
    sorted: Vec<u32>,
}

impl Namespace {
    pub(crate) fn from_entries(entries: Vec<(String, Value)>) -> Self {
        let mut sorted: Vec<u32> = (0..entries.len() as u32).collect();
        sorted.sort_unstable_by(|&a, &b| entries[a as usize].0.cmp(&entries[b as usize].0));
        Namespace { entries, sorted }
    }

    /// The value bound to `name`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.sorted
            .binary_search_by(|&i| self.entries[i as usize].0.as_str().cmp(name))
            .ok()
            .map(|pos| &self.entries[self.sorted[pos] as usize].1)
    }

    /// Names and values in first-assignment order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The names and values in first-assignment order.
    pub fn into_entries(self) -> Vec<(String, Value)> {
        self.entries
    }
}

/// Execute `source`; names not assigned in the file are looked up in `globals` (the
/// predefined constants). Constants do not appear in the returned [`Namespace`] unless the
/// file assigns them.
pub fn exec(source: &str, globals: &dyn Fn(&str) -> Option<Value>) -> Result<Namespace, PyError> {
    let module = parser::parse(source)?;
    eval::run(module, globals)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_globals(_: &str) -> Option<Value> {
        None
    }

    fn s(x: &str) -> Value {
        Value::Str(x.to_string())
    }

    #[test]
    fn value_helpers() {
        assert_eq!(s("a").as_str(), Some("a"));
        assert_eq!(Value::Int(1).as_str(), None);
        assert!(!Value::None.truthy());
        assert!(!Value::Int(0).truthy());
        assert!(Value::Int(-1).truthy());
        assert!(!Value::Float(0.0).truthy());
        assert!(!s("").truthy());
        assert!(s("0").truthy());
        assert!(!Value::List(vec![]).truthy());
        assert!(Value::Tuple(vec![Value::None]).truthy());
        assert!(!Value::Dict(vec![]).truthy());
        let d = Value::Dict(vec![(s("name"), s("GCC")), (Value::Int(1), s("x"))]);
        assert_eq!(d.dict_get("name"), Some(&s("GCC")));
        assert_eq!(d.dict_get("1"), None);
        assert_eq!(s("x").dict_get("x"), None);
    }

    #[test]
    fn repr_and_str() {
        let v = Value::List(vec![
            s("a'b"),
            Value::Tuple(vec![Value::Int(1)]),
            Value::Tuple(vec![]),
            Value::Float(0.98),
            Value::Bool(true),
            Value::None,
            Value::Dict(vec![(s("k"), Value::Set(vec![Value::Int(2)]))]),
            Value::Set(vec![]),
        ]);
        assert_eq!(
            v.py_repr(),
            r#"["a'b", (1,), (), 0.98, True, None, {'k': {2}}, set()]"#
        );
        assert_eq!(s("x\ny").py_str(), "x\ny");
        assert_eq!(s("x\ny").py_repr(), "'x\\ny'");
        assert_eq!(Value::Float(1e16).py_str(), "1e+16");
        assert_eq!(Value::Float(3.0).py_str(), "3.0");
    }

    #[test]
    fn namespace_order_and_lookup() {
        let ns = exec("b = 1\na = 2\nb = 3\n", &no_globals).unwrap();
        let names: Vec<&str> = ns.iter().map(|(k, _)| k).collect();
        assert_eq!(names, ["b", "a"]);
        assert_eq!(ns.get("b"), Some(&Value::Int(3)));
        assert_eq!(ns.get("a"), Some(&Value::Int(2)));
        assert_eq!(ns.get("c"), None);
        assert_eq!(ns.len(), 2);
        assert!(!ns.is_empty());
        assert!(exec("", &no_globals).unwrap().is_empty());
    }

    #[test]
    fn globals_are_not_in_namespace() {
        let g = |n: &str| (n == "SHLIB_EXT").then(|| s("so"));
        let ns = exec("lib = 'libz.%s' % SHLIB_EXT\n", &g).unwrap();
        assert_eq!(ns.get("lib"), Some(&s("libz.so")));
        assert_eq!(ns.get("SHLIB_EXT"), None);
        assert_eq!(ns.len(), 1);
        let ns = exec("SHLIB_EXT = 'dylib'\n", &g).unwrap();
        assert_eq!(ns.get("SHLIB_EXT"), Some(&s("dylib")));
    }

    #[test]
    fn error_display() {
        let e = exec("x = 1\ny = foo\n", &no_globals).unwrap_err();
        assert_eq!(e.line, 2);
        assert_eq!(e.to_string(), "line 2: name 'foo' is not defined");
    }
}
