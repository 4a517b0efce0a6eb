//! Builtin functions and the methods of `str`, `list`, `tuple`, `dict` and `set`, applied
//! to evaluated arguments.

use super::ast::BinOp;
use super::format::{format_value, str_format, write_repr};
use super::ops::{
    binop, check_hashable, check_len, dict_find, iter_values, len_of, order, py_eq, unique,
    DictBuilder, Res, TWO_POW_63,
};
use super::{Value, MAX_ITERATIONS};

pub(crate) type Kwargs<'a> = [(&'a str, Value)];

/// How a name that is not assigned and not a constant resolves.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Builtin {
    /// A supported function.
    Function,
    /// `range`, `zip`, `enumerate`, `reversed`: only usable where iterated.
    IterOnly,
    /// A Python builtin outside the subset.
    Unsupported,
}

pub(crate) fn builtin_kind(name: &str) -> Option<Builtin> {
    Some(match name {
        "len" | "str" | "repr" | "ascii" | "int" | "float" | "bool" | "chr" | "ord" | "list"
        | "tuple" | "set" | "dict" | "sorted" | "min" | "max" | "sum" | "abs" | "any" | "all"
        | "format" => Builtin::Function,
        "range" | "zip" | "enumerate" | "reversed" => Builtin::IterOnly,
        "print" | "open" | "eval" | "exec" | "compile" | "getattr" | "setattr" | "hasattr"
        | "delattr" | "isinstance" | "issubclass" | "type" | "object" | "map" | "filter"
        | "iter" | "next" | "globals" | "locals" | "vars" | "dir" | "id" | "hash" | "input"
        | "round" | "pow" | "divmod" | "hex" | "oct" | "bin" | "frozenset" | "bytes"
        | "bytearray" | "memoryview" | "complex" | "slice" | "super" | "property"
        | "staticmethod" | "classmethod" | "callable" | "help" | "breakpoint" | "__import__"
        | "Exception" | "ValueError" | "TypeError" | "KeyError" | "NotImplemented" | "Ellipsis"
        | "__name__" | "__file__" | "__builtins__" => Builtin::Unsupported,
        _ => return None,
    })
}

/// Builtins whose arguments are consumed as iterables.
pub(crate) fn takes_iterables(name: &str) -> bool {
    matches!(
        name,
        "list"
            | "tuple"
            | "set"
            | "dict"
            | "sorted"
            | "min"
            | "max"
            | "sum"
            | "any"
            | "all"
            | "len"
            | "range"
            | "zip"
            | "enumerate"
            | "reversed"
    )
}

/// Methods whose first argument is consumed as an iterable.
pub(crate) fn method_takes_iterable(name: &str) -> bool {
    matches!(name, "join" | "extend" | "update")
}

/// Methods that mutate their receiver.
pub(crate) fn is_mutating(name: &str) -> bool {
    matches!(
        name,
        "append"
            | "extend"
            | "insert"
            | "pop"
            | "remove"
            | "sort"
            | "reverse"
            | "clear"
            | "update"
            | "setdefault"
            | "add"
            | "discard"
            | "popitem"
    )
}

fn type_error(msg: impl std::fmt::Display) -> String {
    format!("TypeError: {msg}")
}

/// Check the argument count and keyword names of a call.
fn check_args(
    fname: &str,
    args: &[Value],
    kwargs: &Kwargs,
    min: usize,
    max: usize,
    kwnames: &[&str],
) -> Res<()> {
    for (k, _) in kwargs {
        if !kwnames.contains(k) {
            return Err(type_error(format!(
                "{fname}() got an unexpected keyword argument '{k}'"
            )));
        }
    }
    let n = args.len();
    if n < min || n > max {
        return Err(type_error(if min == max {
            format!(
                "{fname}() takes exactly {min} argument{} ({n} given)",
                if min == 1 { "" } else { "s" }
            )
        } else if n < min {
            format!(
                "{fname}() takes at least {min} argument{} ({n} given)",
                if min == 1 { "" } else { "s" }
            )
        } else {
            format!(
                "{fname}() takes at most {max} argument{} ({n} given)",
                if max == 1 { "" } else { "s" }
            )
        }));
    }
    Ok(())
}

/// Positional argument `pos` or keyword `name`.
fn arg<'a>(args: &'a [Value], kwargs: &'a Kwargs, pos: usize, name: &str) -> Option<&'a Value> {
    args.get(pos)
        .or_else(|| kwargs.iter().find(|(k, _)| *k == name).map(|(_, v)| v))
}

fn take_arg(
    args: &mut [Value],
    kwargs: &mut Vec<(&str, Value)>,
    pos: usize,
    name: &str,
) -> Option<Value> {
    if pos < args.len() {
        return Some(std::mem::replace(&mut args[pos], Value::None));
    }
    let i = kwargs.iter().position(|(k, _)| *k == name)?;
    Some(kwargs.remove(i).1)
}

fn int_arg(v: &Value, what: &str) -> Res<i64> {
    match v {
        Value::Int(i) => Ok(*i),
        Value::Bool(b) => Ok(*b as i64),
        other => Err(type_error(format!(
            "'{}' object cannot be interpreted as an integer{what}",
            other.type_name()
        ))),
    }
}

fn str_arg<'a>(v: &'a Value, fname: &str) -> Res<&'a str> {
    match v {
        Value::Str(s) => Ok(s),
        other => Err(type_error(format!(
            "{fname}() argument must be str, not {}",
            other.type_name()
        ))),
    }
}

/// Python `str.isspace()` for one character.
pub(crate) fn py_isspace(c: char) -> bool {
    c.is_whitespace() || ('\x1c'..='\x1f').contains(&c)
}

fn parse_int(text: &str, base: u32) -> Res<i64> {
    let invalid = || {
        let mut m = format!("ValueError: invalid literal for int() with base {base}: ");
        write_repr(&mut m, &Value::Str(text.to_string()), false);
        m
    };
    let t = text.trim_matches(py_isspace);
    let (neg, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let mut base = base;
    let mut digits = t;
    let lower = t.get(..2).map(|p| p.to_ascii_lowercase());
    let prefixed = match lower.as_deref() {
        Some("0x") => Some(16),
        Some("0o") => Some(8),
        Some("0b") => Some(2),
        _ => None,
    };
    if let Some(pb) = prefixed {
        if base == 0 || base == pb {
            base = pb;
            digits = &t[2..];
            digits = digits.strip_prefix('_').unwrap_or(digits);
        }
    }
    if base == 0 {
        base = 10;
        if digits.len() > 1
            && digits.starts_with('0')
            && digits.bytes().any(|c| c != b'0' && c != b'_')
        {
            return Err(invalid());
        }
    }
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
        || !digits.chars().all(|c| c == '_' || c.is_digit(base))
    {
        return Err(invalid());
    }
    let clean: String = digits.chars().filter(|&c| c != '_').collect();
    let v = i64::from_str_radix(&clean, base).map_err(|_| {
        "unsupported: integer too large (only 64-bit integers are supported)".to_string()
    })?;
    Ok(if neg { -v } else { v })
}

fn parse_float(text: &str) -> Res<f64> {
    let t = text.trim_matches(py_isspace);
    let ok_chars = !t.is_empty()
        && !t.contains("__")
        && !t.starts_with('_')
        && !t.ends_with('_')
        && !t.contains("._")
        && !t.contains("_.");
    let clean: String = t.chars().filter(|&c| c != '_').collect();
    match clean.parse::<f64>() {
        Ok(f) if ok_chars => Ok(f),
        _ => {
            let mut m = String::from("ValueError: could not convert string to float: ");
            write_repr(&mut m, &Value::Str(text.to_string()), false);
            Err(m)
        }
    }
}

fn float_to_int(f: f64) -> Res<i64> {
    if f.is_nan() {
        return Err("ValueError: cannot convert float NaN to integer".into());
    }
    if f.is_infinite() {
        return Err("OverflowError: cannot convert float infinity to integer".into());
    }
    let t = f.trunc();
    if !(-TWO_POW_63..TWO_POW_63).contains(&t) {
        return Err("unsupported: integer too large (only 64-bit integers are supported)".into());
    }
    Ok(t as i64)
}

fn sort_values(items: &mut [Value]) -> Res<()> {
    let mut err = None;
    items.sort_by(|a, b| {
        if err.is_some() {
            return std::cmp::Ordering::Equal;
        }
        match order(a, b, "<") {
            Ok(o) => o.unwrap_or(std::cmp::Ordering::Equal),
            Err(e) => {
                err = Some(e);
                std::cmp::Ordering::Equal
            }
        }
    });
    match err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn reverse_flag(kwargs: &Kwargs, fname: &str) -> Res<bool> {
    for (k, v) in kwargs {
        match *k {
            "reverse" => return Ok(v.truthy()),
            "key" => return Err(format!("unsupported: {fname}(key=...) (needs a function)")),
            _ => {}
        }
    }
    Ok(false)
}

fn dict_from(v: Value) -> Res<Vec<(Value, Value)>> {
    match v {
        Value::Dict(d) => Ok(d),
        other => {
            let items = iter_values(other)?;
            let mut b = DictBuilder::with_capacity(items.len());
            for (n, item) in items.into_iter().enumerate() {
                let pair = match item {
                    Value::List(p) | Value::Tuple(p) => p,
                    Value::Str(s) => s.chars().map(|c| Value::Str(c.to_string())).collect(),
                    other => {
                        return Err(type_error(format!(
                            "cannot convert dictionary update sequence element #{n} to a sequence ({} given)",
                            other.type_name()
                        )))
                    }
                };
                if pair.len() != 2 {
                    return Err(format!(
                        "ValueError: dictionary update sequence element #{n} has length {}; 2 is required",
                        pair.len()
                    ));
                }
                let mut it = pair.into_iter();
                let (k, v) = (
                    it.next().unwrap_or(Value::None),
                    it.next().unwrap_or(Value::None),
                );
                check_hashable(&k)?;
                b.insert(k, v);
            }
            Ok(b.finish())
        }
    }
}

fn merge_into(d: &mut Vec<(Value, Value)>, items: Vec<(Value, Value)>) {
    let mut b = DictBuilder::from_vec(std::mem::take(d));
    for (k, v) in items {
        b.insert(k, v);
    }
    *d = b.finish();
}

/// Call a supported builtin function with evaluated arguments (iterable arguments already
/// materialized as lists).
pub(crate) fn call_function(
    name: &str,
    mut args: Vec<Value>,
    mut kwargs: Vec<(&str, Value)>,
) -> Res<Value> {
    match name {
        "len" => {
            check_args(name, &args, &kwargs, 1, 1, &[])?;
            Ok(Value::Int(len_of(&args[0])? as i64))
        }
        "str" => {
            check_args(name, &args, &kwargs, 0, 1, &["object"])?;
            Ok(Value::Str(
                match take_arg(&mut args, &mut kwargs, 0, "object") {
                    Some(v) => match v {
                        Value::Str(s) => s,
                        other => other.py_str(),
                    },
                    None => String::new(),
                },
            ))
        }
        "repr" | "ascii" => {
            check_args(name, &args, &kwargs, 1, 1, &[])?;
            let mut s = String::new();
            write_repr(&mut s, &args[0], name == "ascii");
            Ok(Value::Str(s))
        }
        "format" => {
            check_args(name, &args, &kwargs, 1, 2, &[])?;
            let spec = match args.get(1) {
                Some(v) => str_arg(v, "format")?,
                None => "",
            };
            let mut s = String::new();
            format_value(&mut s, &args[0], spec)?;
            Ok(Value::Str(s))
        }
        "int" => {
            check_args(name, &args, &kwargs, 0, 2, &["base"])?;
            let base = arg(&args, &kwargs, 1, "base");
            match (args.first(), base) {
                (None, None) => Ok(Value::Int(0)),
                (None, Some(_)) => Err(type_error("int() missing string argument")),
                (Some(Value::Str(s)), b) => {
                    let base = match b {
                        Some(b) => int_arg(b, "")?,
                        None => 10,
                    };
                    if base != 0 && !(2..=36).contains(&base) {
                        return Err("ValueError: int() base must be >= 2 and <= 36, or 0".into());
                    }
                    Ok(Value::Int(parse_int(s, base as u32)?))
                }
                (Some(_), Some(_)) => Err(type_error("int() can't convert non-string with explicit base")),
                (Some(Value::Int(i)), None) => Ok(Value::Int(*i)),
                (Some(Value::Bool(b)), None) => Ok(Value::Int(*b as i64)),
                (Some(Value::Float(f)), None) => Ok(Value::Int(float_to_int(*f)?)),
                (Some(other), None) => Err(type_error(format!(
                    "int() argument must be a string, a bytes-like object or a real number, not '{}'",
                    other.type_name()
                ))),
            }
        }
        "float" => {
            check_args(name, &args, &kwargs, 0, 1, &[])?;
            match args.first() {
                None => Ok(Value::Float(0.0)),
                Some(Value::Float(f)) => Ok(Value::Float(*f)),
                Some(Value::Int(i)) => Ok(Value::Float(*i as f64)),
                Some(Value::Bool(b)) => Ok(Value::Float(*b as i64 as f64)),
                Some(Value::Str(s)) => Ok(Value::Float(parse_float(s)?)),
                Some(other) => Err(type_error(format!(
                    "float() argument must be a string or a real number, not '{}'",
                    other.type_name()
                ))),
            }
        }
        "bool" => {
            check_args(name, &args, &kwargs, 0, 1, &[])?;
            Ok(Value::Bool(args.first().is_some_and(Value::truthy)))
        }
        "chr" => {
            check_args(name, &args, &kwargs, 1, 1, &[])?;
            let i = int_arg(&args[0], "")?;
            if !(0..0x110000).contains(&i) {
                return Err("ValueError: chr() arg not in range(0x110000)".into());
            }
            match char::from_u32(i as u32) {
                Some(c) => Ok(Value::Str(c.to_string())),
                None => Err("unsupported: chr() of a surrogate code point".into()),
            }
        }
        "ord" => {
            check_args(name, &args, &kwargs, 1, 1, &[])?;
            match &args[0] {
                Value::Str(s) => {
                    let mut it = s.chars();
                    match (it.next(), it.next()) {
                        (Some(c), None) => Ok(Value::Int(c as i64)),
                        _ => Err(type_error(format!(
                            "ord() expected a character, but string of length {} found",
                            s.chars().count()
                        ))),
                    }
                }
                other => Err(type_error(format!(
                    "ord() expected string of length 1, but {} found",
                    other.type_name()
                ))),
            }
        }
        "list" | "tuple" | "set" => {
            check_args(name, &args, &kwargs, 0, 1, &[])?;
            let items = match args.pop() {
                Some(v) => iter_values(v)?,
                None => Vec::new(),
            };
            Ok(match name {
                "list" => Value::List(items),
                "tuple" => Value::Tuple(items),
                _ => {
                    for v in &items {
                        check_hashable(v)?;
                    }
                    Value::Set(unique(items))
                }
            })
        }
        "dict" => {
            if args.len() > 1 {
                return Err(type_error(format!(
                    "dict expected at most 1 argument, got {}",
                    args.len()
                )));
            }
            let mut d = match args.pop() {
                Some(v) => dict_from(v)?,
                None => Vec::new(),
            };
            if !kwargs.is_empty() {
                let kw = kwargs
                    .into_iter()
                    .map(|(k, v)| (Value::Str(k.to_string()), v))
                    .collect();
                merge_into(&mut d, kw);
            }
            Ok(Value::Dict(d))
        }
        "sorted" => {
            check_args(name, &args, &kwargs, 1, 1, &["reverse", "key"])?;
            let reverse = reverse_flag(&kwargs, name)?;
            let mut items = iter_values(args.pop().unwrap_or(Value::None))?;
            if reverse {
                // Python sorts stably with reversed comparisons.
                items.reverse();
                sort_values(&mut items)?;
                items.reverse();
            } else {
                sort_values(&mut items)?;
            }
            Ok(Value::List(items))
        }
        "min" | "max" => {
            if !kwargs.is_empty() {
                return Err(format!("unsupported: {name}() keyword arguments"));
            }
            let items = match args.len() {
                0 => {
                    return Err(type_error(format!(
                        "{name} expected at least 1 argument, got 0"
                    )))
                }
                1 => iter_values(args.pop().unwrap_or(Value::None))?,
                _ => args,
            };
            let mut it = items.into_iter();
            let mut best = it
                .next()
                .ok_or_else(|| format!("ValueError: {name}() arg is an empty sequence"))?;
            for v in it {
                let better = if name == "min" {
                    order(&v, &best, "<")? == Some(std::cmp::Ordering::Less)
                } else {
                    order(&v, &best, ">")? == Some(std::cmp::Ordering::Greater)
                };
                if better {
                    best = v;
                }
            }
            Ok(best)
        }
        "sum" => {
            check_args(name, &args, &kwargs, 1, 2, &["start"])?;
            let start = take_arg(&mut args, &mut kwargs, 1, "start").unwrap_or(Value::Int(0));
            if let Value::Str(_) = start {
                return Err(type_error(
                    "sum() can't sum strings [use ''.join(seq) instead]",
                ));
            }
            let mut acc = start;
            for v in iter_values(std::mem::replace(&mut args[0], Value::None))? {
                acc = binop(acc, BinOp::Add, &v)?;
            }
            Ok(acc)
        }
        "abs" => {
            check_args(name, &args, &kwargs, 1, 1, &[])?;
            match &args[0] {
                Value::Int(i) => i.checked_abs().map(Value::Int).ok_or_else(|| {
                    "unsupported: integer overflow (only 64-bit integers are supported)".into()
                }),
                Value::Bool(b) => Ok(Value::Int(*b as i64)),
                Value::Float(f) => Ok(Value::Float(f.abs())),
                other => Err(type_error(format!(
                    "bad operand type for abs(): '{}'",
                    other.type_name()
                ))),
            }
        }
        "any" | "all" => {
            check_args(name, &args, &kwargs, 1, 1, &[])?;
            let items = iter_values(args.pop().unwrap_or(Value::None))?;
            Ok(Value::Bool(if name == "any" {
                items.iter().any(Value::truthy)
            } else {
                items.iter().all(Value::truthy)
            }))
        }
        _ => Err(format!("unsupported: builtin function '{name}'")),
    }
}

/// Materialize `range`, `zip`, `enumerate` or `reversed`.
pub(crate) fn iterate_function(
    name: &str,
    mut args: Vec<Value>,
    kwargs: Vec<(&str, Value)>,
) -> Res<Vec<Value>> {
    match name {
        "range" => {
            check_args(name, &args, &kwargs, 1, 3, &[])?;
            let nums = args
                .iter()
                .map(|v| int_arg(v, ""))
                .collect::<Res<Vec<i64>>>()?;
            let (start, stop, step) = match nums.as_slice() {
                [stop] => (0, *stop, 1),
                [start, stop] => (*start, *stop, 1),
                [start, stop, step] => (*start, *stop, *step),
                _ => unreachable!("checked above"),
            };
            if step == 0 {
                return Err("ValueError: range() arg 3 must not be zero".into());
            }
            let (lo, hi, st) = (start as i128, stop as i128, step as i128);
            let n = if st > 0 && lo < hi {
                (hi - lo - 1) / st + 1
            } else if st < 0 && lo > hi {
                (lo - hi - 1) / (-st) + 1
            } else {
                0
            };
            if n > MAX_ITERATIONS as i128 {
                return Err(format!(
                    "unsupported: range() of more than {MAX_ITERATIONS} items"
                ));
            }
            Ok((0..n).map(|k| Value::Int((lo + k * st) as i64)).collect())
        }
        "enumerate" => {
            check_args(name, &args, &kwargs, 1, 2, &["start"])?;
            let start = match arg(&args, &kwargs, 1, "start") {
                Some(v) => int_arg(v, "")?,
                None => 0,
            };
            let items = iter_values(std::mem::replace(&mut args[0], Value::None))?;
            items
                .into_iter()
                .enumerate()
                .map(|(k, v)| {
                    let i = start.checked_add(k as i64).ok_or_else(|| {
                        "unsupported: integer overflow (only 64-bit integers are supported)"
                            .to_string()
                    })?;
                    Ok(Value::Tuple(vec![Value::Int(i), v]))
                })
                .collect()
        }
        "zip" => {
            if !kwargs.is_empty() {
                return Err("unsupported: zip() keyword arguments".into());
            }
            let lists = args
                .into_iter()
                .map(iter_values)
                .collect::<Res<Vec<Vec<Value>>>>()?;
            let n = lists.iter().map(Vec::len).min().unwrap_or(0);
            let mut iters: Vec<_> = lists.into_iter().map(|l| l.into_iter()).collect();
            Ok((0..n)
                .map(|_| {
                    Value::Tuple(
                        iters
                            .iter_mut()
                            .map(|it| it.next().unwrap_or(Value::None))
                            .collect(),
                    )
                })
                .collect())
        }
        "reversed" => {
            check_args(name, &args, &kwargs, 1, 1, &[])?;
            match args.pop().unwrap_or(Value::None) {
                v @ (Value::List(_) | Value::Tuple(_) | Value::Str(_) | Value::Dict(_)) => {
                    let mut items = iter_values(v)?;
                    items.reverse();
                    Ok(items)
                }
                other => Err(type_error(format!(
                    "'{}' object is not reversible",
                    other.type_name()
                ))),
            }
        }
        _ => Err(format!("unsupported: builtin function '{name}'")),
    }
}

fn no_attr(v: &Value, name: &str) -> String {
    format!(
        "AttributeError: '{}' object has no attribute '{name}'",
        v.type_name()
    )
}

/// Whether `name` is a method the evaluator implements for the type of `v`.
fn known_method(v: &Value, name: &str) -> bool {
    match v {
        Value::Str(_) => matches!(
            name,
            "join"
                | "format"
                | "split"
                | "rsplit"
                | "splitlines"
                | "replace"
                | "lower"
                | "upper"
                | "strip"
                | "lstrip"
                | "rstrip"
                | "startswith"
                | "endswith"
                | "find"
                | "rfind"
                | "index"
                | "rindex"
                | "count"
                | "isdigit"
                | "isalpha"
                | "isalnum"
                | "isspace"
                | "islower"
                | "isupper"
                | "zfill"
                | "ljust"
                | "rjust"
                | "center"
                | "partition"
                | "rpartition"
        ),
        Value::List(_) => matches!(name, "index" | "count" | "copy"),
        Value::Tuple(_) => matches!(name, "index" | "count"),
        Value::Dict(_) => matches!(name, "get" | "copy"),
        Value::Set(_) => matches!(name, "copy"),
        _ => false,
    }
}

/// Python methods the evaluator does not implement, to tell them from typos.
fn python_method(v: &Value, name: &str) -> bool {
    match v {
        Value::Str(_) => matches!(
            name,
            "capitalize"
                | "casefold"
                | "encode"
                | "expandtabs"
                | "format_map"
                | "isascii"
                | "isdecimal"
                | "isidentifier"
                | "isnumeric"
                | "isprintable"
                | "istitle"
                | "maketrans"
                | "removeprefix"
                | "removesuffix"
                | "swapcase"
                | "title"
                | "translate"
        ),
        Value::Dict(_) => matches!(name, "fromkeys"),
        Value::Set(_) => matches!(
            name,
            "difference"
                | "intersection"
                | "union"
                | "symmetric_difference"
                | "issubset"
                | "issuperset"
                | "isdisjoint"
        ),
        _ => false,
    }
}

fn char_len(s: &str) -> usize {
    if s.is_ascii() {
        s.len()
    } else {
        s.chars().count()
    }
}

/// Byte offset of code point index `i` (clamped to the end).
fn byte_at(s: &str, i: usize) -> usize {
    if s.is_ascii() {
        return i.min(s.len());
    }
    s.char_indices().nth(i).map(|(b, _)| b).unwrap_or(s.len())
}

/// `s[start:end]` for the optional start/end arguments of find/count/startswith.
fn sub_range<'a>(s: &'a str, start: Option<&Value>, end: Option<&Value>) -> Res<(&'a str, usize)> {
    if start.is_none() && end.is_none() {
        return Ok((s, 0));
    }
    let n = char_len(s) as i64;
    let clamp = |v: Option<&Value>, default: i64| -> Res<i64> {
        let x = match v {
            None | Some(Value::None) => return Ok(default),
            Some(v) => int_arg(v, "")?,
        };
        Ok(if x < 0 { (x + n).max(0) } else { x.min(n) })
    };
    let a = clamp(start, 0)?;
    let b = clamp(end, n)?;
    if a > b {
        return Ok(("", a as usize));
    }
    let (ba, bb) = (byte_at(s, a as usize), byte_at(s, b as usize));
    Ok((&s[ba..bb], a as usize))
}

/// A string longer than `MAX_ITERATIONS` bytes may split into more values than the
/// evaluator pays for (each is ~32 bytes however short): count them before building them.
fn check_pieces(s: &str, method: &str, sep: Option<&Value>) -> Res<()> {
    if s.len() as u64 <= MAX_ITERATIONS {
        return Ok(());
    }
    let pieces = match (method, sep) {
        ("splitlines", _) => s.lines().count(),
        (_, Some(Value::Str(sep))) if !sep.is_empty() => s.matches(sep.as_str()).count(),
        _ => s.split_whitespace().count(),
    };
    if pieces as u64 > MAX_ITERATIONS {
        return Err(format!(
            "unsupported: splitting a string into more than {MAX_ITERATIONS} parts"
        ));
    }
    Ok(())
}

fn split_whitespace(s: &str, maxsplit: i64, right: bool) -> Vec<Value> {
    let mut out = Vec::new();
    let mut remaining = if maxsplit < 0 {
        usize::MAX
    } else {
        maxsplit as usize
    };
    if !right {
        let mut rest = s;
        loop {
            rest = rest.trim_start_matches(py_isspace);
            if rest.is_empty() {
                break;
            }
            if remaining == 0 {
                out.push(Value::Str(rest.to_string()));
                break;
            }
            let end = rest.find(py_isspace).unwrap_or(rest.len());
            out.push(Value::Str(rest[..end].to_string()));
            rest = &rest[end..];
            remaining -= 1;
        }
    } else {
        let mut rest = s;
        loop {
            rest = rest.trim_end_matches(py_isspace);
            if rest.is_empty() {
                break;
            }
            if remaining == 0 {
                out.push(Value::Str(rest.to_string()));
                break;
            }
            let start = rest
                .rfind(py_isspace)
                .map(|i| i + rest[i..].chars().next().map_or(1, char::len_utf8))
                .unwrap_or(0);
            out.push(Value::Str(rest[start..].to_string()));
            rest = &rest[..start];
            remaining -= 1;
        }
        out.reverse();
    }
    out
}

fn split(s: &str, args: &[Value], kwargs: &Kwargs, right: bool) -> Res<Value> {
    let fname = if right { "rsplit" } else { "split" };
    check_args(fname, args, kwargs, 0, 2, &["sep", "maxsplit"])?;
    let maxsplit = match arg(args, kwargs, 1, "maxsplit") {
        Some(v) => int_arg(v, "")?,
        None => -1,
    };
    let sep = match arg(args, kwargs, 0, "sep") {
        None | Some(Value::None) => return Ok(Value::List(split_whitespace(s, maxsplit, right))),
        Some(Value::Str(sep)) => sep.as_str(),
        Some(other) => {
            return Err(type_error(format!(
                "must be str or None, not {}",
                other.type_name()
            )))
        }
    };
    if sep.is_empty() {
        return Err("ValueError: empty separator".into());
    }
    let to_val = |p: &str| Value::Str(p.to_string());
    let out: Vec<Value> = match (maxsplit < 0, right) {
        (true, _) => s.split(sep).map(to_val).collect(),
        (false, false) => s.splitn(maxsplit as usize + 1, sep).map(to_val).collect(),
        (false, true) => {
            let mut v: Vec<Value> = s.rsplitn(maxsplit as usize + 1, sep).map(to_val).collect();
            v.reverse();
            v
        }
    };
    Ok(Value::List(out))
}

fn strip(s: &str, args: &[Value], kwargs: &Kwargs, fname: &str) -> Res<Value> {
    check_args(fname, args, kwargs, 0, 1, &[])?;
    let (l, r) = match fname {
        "strip" => (true, true),
        "lstrip" => (true, false),
        _ => (false, true),
    };
    let out = match args.first() {
        None | Some(Value::None) => {
            let mut t = s;
            if l {
                t = t.trim_start_matches(py_isspace);
            }
            if r {
                t = t.trim_end_matches(py_isspace);
            }
            t
        }
        Some(Value::Str(chars)) => {
            let set = |c: char| chars.contains(c);
            let mut t = s;
            if l {
                t = t.trim_start_matches(set);
            }
            if r {
                t = t.trim_end_matches(set);
            }
            t
        }
        Some(other) => {
            return Err(type_error(format!(
                "{fname} arg must be None or str, not {}",
                other.type_name()
            )))
        }
    };
    Ok(Value::Str(out.to_string()))
}

fn affix(s: &str, args: &[Value], kwargs: &Kwargs, fname: &str) -> Res<Value> {
    check_args(fname, args, kwargs, 1, 3, &[])?;
    let (sub, _) = sub_range(s, args.get(1), args.get(2))?;
    let test = |p: &str| {
        if fname == "startswith" {
            sub.starts_with(p)
        } else {
            sub.ends_with(p)
        }
    };
    match &args[0] {
        Value::Str(p) => Ok(Value::Bool(test(p))),
        Value::Tuple(items) => {
            for it in items {
                match it {
                    Value::Str(p) => {
                        if test(p) {
                            return Ok(Value::Bool(true));
                        }
                    }
                    other => {
                        return Err(type_error(format!(
                            "tuple for {fname} must only contain str, not {}",
                            other.type_name()
                        )))
                    }
                }
            }
            Ok(Value::Bool(false))
        }
        other => Err(type_error(format!(
            "{fname} first arg must be str or a tuple of str, not {}",
            other.type_name()
        ))),
    }
}

fn find(s: &str, args: &[Value], kwargs: &Kwargs, fname: &str) -> Res<Value> {
    check_args(fname, args, kwargs, 1, 3, &[])?;
    let needle = match &args[0] {
        Value::Str(n) => n.as_str(),
        other => {
            return Err(type_error(format!(
                "must be str, not {}",
                other.type_name()
            )))
        }
    };
    let (sub, offset) = sub_range(s, args.get(1), args.get(2))?;
    let found = if fname.starts_with('r') {
        sub.rfind(needle)
    } else {
        sub.find(needle)
    };
    match found {
        Some(b) => Ok(Value::Int((offset + char_len(&sub[..b])) as i64)),
        None if fname.ends_with("index") => Err("ValueError: substring not found".into()),
        None => Ok(Value::Int(-1)),
    }
}

fn justify(s: &str, args: &[Value], kwargs: &Kwargs, fname: &str) -> Res<Value> {
    let max = if fname == "zfill" { 1 } else { 2 };
    check_args(fname, args, kwargs, 1, max, &[])?;
    let width = int_arg(&args[0], "")?;
    let n = char_len(s);
    if width <= n as i64 {
        return Ok(Value::Str(s.to_string()));
    }
    let width = width as usize;
    check_len(width)?;
    let fill = match args.get(1) {
        None => ' ',
        Some(Value::Str(f)) if f.chars().count() == 1 => f.chars().next().unwrap_or(' '),
        Some(_) => {
            return Err(type_error(
                "The fill character must be exactly one character long",
            ))
        }
    };
    let marg = width - n;
    let (left, right) = match fname {
        "ljust" => (0, marg),
        "rjust" => (marg, 0),
        "center" => {
            let left = marg / 2 + (marg & width & 1);
            (left, marg - left)
        }
        _ => {
            // zfill: zeros after the sign
            let (sign, rest) = match s.as_bytes().first() {
                Some(b'+') | Some(b'-') => s.split_at(1),
                _ => ("", s),
            };
            let mut out = String::with_capacity(width);
            out.push_str(sign);
            out.extend(std::iter::repeat_n('0', marg));
            out.push_str(rest);
            return Ok(Value::Str(out));
        }
    };
    let mut out = String::with_capacity(width);
    out.extend(std::iter::repeat_n(fill, left));
    out.push_str(s);
    out.extend(std::iter::repeat_n(fill, right));
    Ok(Value::Str(out))
}

fn splitlines(s: &str, args: &[Value], kwargs: &Kwargs) -> Res<Value> {
    check_args("splitlines", args, kwargs, 0, 1, &["keepends"])?;
    let keep = arg(args, kwargs, 0, "keepends").is_some_and(Value::truthy);
    let mut out = Vec::new();
    let mut start = 0;
    let mut it = s.char_indices().peekable();
    while let Some((i, c)) = it.next() {
        let is_break = matches!(
            c,
            '\n' | '\r'
                | '\x0b'
                | '\x0c'
                | '\x1c'
                | '\x1d'
                | '\x1e'
                | '\u{85}'
                | '\u{2028}'
                | '\u{2029}'
        );
        if !is_break {
            continue;
        }
        let mut end = i + c.len_utf8();
        if c == '\r' {
            if let Some(&(_, '\n')) = it.peek() {
                it.next();
                end += 1;
            }
        }
        out.push(Value::Str(s[start..if keep { end } else { i }].to_string()));
        start = end;
    }
    if start < s.len() {
        out.push(Value::Str(s[start..].to_string()));
    }
    Ok(Value::List(out))
}

fn join(sep: &str, arg: &Value) -> Res<Value> {
    let items: &[Value] = match arg {
        Value::List(x) | Value::Tuple(x) | Value::Set(x) => x,
        Value::Dict(d) => {
            let keys: Vec<Value> = d.iter().map(|(k, _)| k.clone()).collect();
            return join(sep, &Value::List(keys));
        }
        Value::Str(s) => {
            let chars: Vec<Value> = s.chars().map(|c| Value::Str(c.to_string())).collect();
            return join(sep, &Value::List(chars));
        }
        _ => return Err(type_error("can only join an iterable")),
    };
    let mut total = sep.len() * items.len().saturating_sub(1);
    for (n, it) in items.iter().enumerate() {
        match it {
            Value::Str(s) => total += s.len(),
            other => {
                return Err(type_error(format!(
                    "sequence item {n}: expected str instance, {} found",
                    other.type_name()
                )))
            }
        }
    }
    check_len(total)?;
    let mut out = String::with_capacity(total);
    for (n, it) in items.iter().enumerate() {
        if n > 0 {
            out.push_str(sep);
        }
        if let Value::Str(s) = it {
            out.push_str(s);
        }
    }
    Ok(Value::Str(out))
}

fn replace(s: &str, args: &[Value], kwargs: &Kwargs) -> Res<Value> {
    check_args("replace", args, kwargs, 2, 3, &[])?;
    let old = str_arg(&args[0], "replace")?;
    let new = str_arg(&args[1], "replace")?;
    let count = match args.get(2) {
        Some(v) => int_arg(v, "")?,
        None => -1,
    };
    if new.len() > old.len() {
        let hits = if old.is_empty() {
            char_len(s) + 1
        } else {
            s.matches(old).count()
        };
        let hits = if count >= 0 {
            hits.min(count as usize)
        } else {
            hits
        };
        check_len(s.len() + hits * (new.len() - old.len()))?;
    }
    Ok(Value::Str(if count < 0 {
        s.replace(old, new)
    } else {
        s.replacen(old, new, count as usize)
    }))
}

fn partition(s: &str, args: &[Value], kwargs: &Kwargs, right: bool) -> Res<Value> {
    let fname = if right { "rpartition" } else { "partition" };
    check_args(fname, args, kwargs, 1, 1, &[])?;
    let sep = str_arg(&args[0], fname)?;
    if sep.is_empty() {
        return Err("ValueError: empty separator".into());
    }
    let st = |x: &str| Value::Str(x.to_string());
    let found = if right { s.rfind(sep) } else { s.find(sep) };
    Ok(Value::Tuple(match found {
        Some(i) => vec![st(&s[..i]), st(sep), st(&s[i + sep.len()..])],
        None if right => vec![st(""), st(""), st(s)],
        None => vec![st(s), st(""), st("")],
    }))
}

fn str_method(s: &str, name: &str, args: &[Value], kwargs: &Kwargs) -> Res<Value> {
    let no_args = |fname: &str| check_args(fname, args, kwargs, 0, 0, &[]);
    match name {
        "join" => {
            check_args(name, args, kwargs, 1, 1, &[])?;
            join(s, &args[0])
        }
        "format" => {
            let out = str_format(s, args, kwargs)?;
            check_len(out.len())?;
            Ok(Value::Str(out))
        }
        "split" | "rsplit" | "splitlines" => {
            check_pieces(s, name, args.first())?;
            match name {
                "splitlines" => splitlines(s, args, kwargs),
                _ => split(s, args, kwargs, name == "rsplit"),
            }
        }
        "replace" => replace(s, args, kwargs),
        "lower" => {
            no_args(name)?;
            Ok(Value::Str(if s.is_ascii() {
                s.to_ascii_lowercase()
            } else {
                s.to_lowercase()
            }))
        }
        "upper" => {
            no_args(name)?;
            Ok(Value::Str(if s.is_ascii() {
                s.to_ascii_uppercase()
            } else {
                s.to_uppercase()
            }))
        }
        "strip" | "lstrip" | "rstrip" => strip(s, args, kwargs, name),
        "startswith" | "endswith" => affix(s, args, kwargs, name),
        "find" | "rfind" | "index" | "rindex" => find(s, args, kwargs, name),
        "count" => {
            check_args(name, args, kwargs, 1, 3, &[])?;
            let needle = str_arg(&args[0], "count")?;
            let (sub, _) = sub_range(s, args.get(1), args.get(2))?;
            Ok(Value::Int(if needle.is_empty() {
                char_len(sub) as i64 + 1
            } else {
                sub.matches(needle).count() as i64
            }))
        }
        "isdigit" | "isalpha" | "isalnum" | "isspace" | "islower" | "isupper" => {
            no_args(name)?;
            let r = match name {
                "isdigit" => {
                    !s.is_empty()
                        && s.chars()
                            .all(|c| c.is_ascii_digit() || (!c.is_ascii() && c.is_numeric()))
                }
                "isalpha" => !s.is_empty() && s.chars().all(char::is_alphabetic),
                "isalnum" => !s.is_empty() && s.chars().all(char::is_alphanumeric),
                "isspace" => !s.is_empty() && s.chars().all(py_isspace),
                "islower" => {
                    s.chars().any(char::is_lowercase) && !s.chars().any(|c| c.is_uppercase())
                }
                _ => s.chars().any(char::is_uppercase) && !s.chars().any(|c| c.is_lowercase()),
            };
            Ok(Value::Bool(r))
        }
        "zfill" | "ljust" | "rjust" | "center" => justify(s, args, kwargs, name),
        "partition" => partition(s, args, kwargs, false),
        "rpartition" => partition(s, args, kwargs, true),
        _ => unreachable!("checked by known_method"),
    }
}

/// Call a method that does not mutate its receiver.
pub(crate) fn call_method(recv: &Value, name: &str, args: &[Value], kwargs: &Kwargs) -> Res<Value> {
    if !known_method(recv, name) {
        if python_method(recv, name) {
            return Err(format!("unsupported: method {}.{name}()", recv.type_name()));
        }
        return Err(no_attr(recv, name));
    }
    match recv {
        Value::Str(s) => str_method(s, name, args, kwargs),
        Value::List(items) | Value::Tuple(items) => match name {
            "copy" => {
                check_args(name, args, kwargs, 0, 0, &[])?;
                Ok(recv.clone())
            }
            "count" => {
                check_args(name, args, kwargs, 1, 1, &[])?;
                Ok(Value::Int(
                    items.iter().filter(|x| py_eq(x, &args[0])).count() as i64,
                ))
            }
            _ => {
                check_args(name, args, kwargs, 1, 3, &[])?;
                let (start, _, n) =
                    super::ops::slice_positions(items.len(), args.get(1), args.get(2), None)?;
                let start = start as usize;
                match items[start..start + n]
                    .iter()
                    .position(|x| py_eq(x, &args[0]))
                {
                    Some(i) => Ok(Value::Int((start + i) as i64)),
                    None => Err(if matches!(recv, Value::List(_)) {
                        format!("ValueError: {} is not in list", args[0].py_repr())
                    } else {
                        "ValueError: tuple.index(x): x not in tuple".to_string()
                    }),
                }
            }
        },
        Value::Dict(d) => match name {
            "get" => {
                check_args(name, args, kwargs, 1, 2, &[])?;
                check_hashable(&args[0])?;
                Ok(match dict_find(d, &args[0]) {
                    Some(i) => d[i].1.clone(),
                    None => args.get(1).cloned().unwrap_or(Value::None),
                })
            }
            _ => {
                check_args(name, args, kwargs, 0, 0, &[])?;
                Ok(recv.clone())
            }
        },
        Value::Set(_) => {
            check_args(name, args, kwargs, 0, 0, &[])?;
            Ok(recv.clone())
        }
        _ => Err(no_attr(recv, name)),
    }
}

/// Call a method that mutates its receiver; returns the method's result.
pub(crate) fn call_mutating(
    recv: &mut Value,
    name: &str,
    mut args: Vec<Value>,
    kwargs: Vec<(&str, Value)>,
) -> Res<Value> {
    let tname = recv.type_name();
    match recv {
        Value::List(items) => match name {
            "append" => {
                check_args(name, &args, &kwargs, 1, 1, &[])?;
                check_len(items.len() + 1)?;
                items.push(args.pop().unwrap_or(Value::None));
                Ok(Value::None)
            }
            "extend" => {
                check_args(name, &args, &kwargs, 1, 1, &[])?;
                let more = iter_values(args.pop().unwrap_or(Value::None))?;
                check_len(items.len() + more.len())?;
                items.extend(more);
                Ok(Value::None)
            }
            "insert" => {
                check_args(name, &args, &kwargs, 2, 2, &[])?;
                check_len(items.len() + 1)?;
                let v = args.pop().unwrap_or(Value::None);
                let i = int_arg(&args[0], "")?;
                let n = items.len() as i64;
                let pos = if i < 0 { (i + n).max(0) } else { i.min(n) };
                items.insert(pos as usize, v);
                Ok(Value::None)
            }
            "pop" => {
                check_args(name, &args, &kwargs, 0, 1, &[])?;
                if items.is_empty() {
                    return Err("IndexError: pop from empty list".into());
                }
                let i = match args.first() {
                    Some(v) => int_arg(v, "")?,
                    None => -1,
                };
                let n = items.len() as i64;
                let j = if i < 0 { i + n } else { i };
                if j < 0 || j >= n {
                    return Err("IndexError: pop index out of range".into());
                }
                Ok(items.remove(j as usize))
            }
            "remove" => {
                check_args(name, &args, &kwargs, 1, 1, &[])?;
                match items.iter().position(|x| py_eq(x, &args[0])) {
                    Some(i) => {
                        items.remove(i);
                        Ok(Value::None)
                    }
                    None => Err("ValueError: list.remove(x): x not in list".into()),
                }
            }
            "sort" => {
                check_args(name, &args, &kwargs, 0, 0, &["reverse", "key"])?;
                let reverse = reverse_flag(&kwargs, name)?;
                if reverse {
                    items.reverse();
                }
                sort_values(items)?;
                if reverse {
                    items.reverse();
                }
                Ok(Value::None)
            }
            "reverse" | "clear" => {
                check_args(name, &args, &kwargs, 0, 0, &[])?;
                if name == "reverse" {
                    items.reverse();
                } else {
                    items.clear();
                }
                Ok(Value::None)
            }
            _ => Err(no_attr(recv, name)),
        },
        Value::Dict(d) => match name {
            "update" => {
                if args.len() > 1 {
                    return Err(type_error(format!(
                        "update expected at most 1 argument, got {}",
                        args.len()
                    )));
                }
                let mut more = match args.pop() {
                    Some(v) => dict_from(v)?,
                    None => Vec::new(),
                };
                for (k, v) in kwargs {
                    more.push((Value::Str(k.to_string()), v));
                }
                merge_into(d, more);
                Ok(Value::None)
            }
            "pop" => {
                check_args(name, &args, &kwargs, 1, 2, &[])?;
                check_hashable(&args[0])?;
                match dict_find(d, &args[0]) {
                    Some(i) => Ok(d.remove(i).1),
                    None => match args.get(1) {
                        Some(v) => Ok(v.clone()),
                        None => Err(format!("KeyError: {}", args[0].py_repr())),
                    },
                }
            }
            "setdefault" => {
                check_args(name, &args, &kwargs, 1, 2, &[])?;
                check_hashable(&args[0])?;
                match dict_find(d, &args[0]) {
                    Some(i) => Ok(d[i].1.clone()),
                    None => {
                        let v = args.get(1).cloned().unwrap_or(Value::None);
                        d.push((args.swap_remove(0), v.clone()));
                        Ok(v)
                    }
                }
            }
            "popitem" => {
                check_args(name, &args, &kwargs, 0, 0, &[])?;
                match d.pop() {
                    Some((k, v)) => Ok(Value::Tuple(vec![k, v])),
                    None => Err("KeyError: 'popitem(): dictionary is empty'".into()),
                }
            }
            "clear" => {
                check_args(name, &args, &kwargs, 0, 0, &[])?;
                d.clear();
                Ok(Value::None)
            }
            _ => Err(no_attr(recv, name)),
        },
        Value::Set(items) => match name {
            "add" | "discard" | "remove" => {
                check_args(name, &args, &kwargs, 1, 1, &[])?;
                let v = args.pop().unwrap_or(Value::None);
                check_hashable(&v)?;
                let pos = items.iter().position(|x| py_eq(x, &v));
                match (name, pos) {
                    ("add", None) => items.push(v),
                    ("add", Some(_)) => {}
                    (_, Some(i)) => {
                        items.remove(i);
                    }
                    ("remove", None) => return Err(format!("KeyError: {}", v.py_repr())),
                    _ => {}
                }
                Ok(Value::None)
            }
            "update" => {
                check_args(name, &args, &kwargs, 0, 1, &[])?;
                if let Some(v) = args.pop() {
                    let more = iter_values(v)?;
                    for m in &more {
                        check_hashable(m)?;
                    }
                    let all = std::mem::take(items).into_iter().chain(more);
                    *items = unique(all);
                }
                Ok(Value::None)
            }
            "clear" => {
                check_args(name, &args, &kwargs, 0, 0, &[])?;
                items.clear();
                Ok(Value::None)
            }
            _ => Err(no_attr(recv, name)),
        },
        _ => Err(format!(
            "AttributeError: '{tname}' object has no attribute '{name}'"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Value {
        Value::Str(x.into())
    }
    fn i(x: i64) -> Value {
        Value::Int(x)
    }
    fn l(x: Vec<Value>) -> Value {
        Value::List(x)
    }
    fn strs(x: &[&str]) -> Value {
        l(x.iter().map(|p| s(p)).collect())
    }
    fn m(recv: &str, name: &str, args: Vec<Value>) -> Value {
        call_method(&s(recv), name, &args, &[]).unwrap_or_else(|e| panic!("{recv}.{name}: {e}"))
    }
    fn f(name: &str, args: Vec<Value>) -> Res<Value> {
        call_function(name, args, Vec::new())
    }

    #[test]
    fn split_like_python() {
        assert_eq!(m("  a b\t\nc  ", "split", vec![]), strs(&["a", "b", "c"]));
        assert_eq!(m("", "split", vec![]), strs(&[]));
        assert_eq!(m("1.2.3", "split", vec![s(".")]), strs(&["1", "2", "3"]));
        assert_eq!(m("1..2", "split", vec![s(".")]), strs(&["1", "", "2"]));
        assert_eq!(m("", "split", vec![s(".")]), strs(&[""]));
        assert_eq!(m("1.2.3", "split", vec![s("."), i(1)]), strs(&["1", "2.3"]));
        assert_eq!(
            m("1.2.3", "rsplit", vec![s("."), i(1)]),
            strs(&["1.2", "3"])
        );
        assert_eq!(
            m(" a  b  c ", "split", vec![Value::None, i(1)]),
            strs(&["a", "b  c "])
        );
        assert_eq!(
            m(" a  b  c ", "rsplit", vec![Value::None, i(1)]),
            strs(&[" a  b", "c"])
        );
        let kw = [("maxsplit", i(1))];
        assert_eq!(
            call_method(&s("a-b-c"), "split", &[s("-")], &kw).unwrap(),
            strs(&["a", "b-c"])
        );
        assert!(call_method(&s("a"), "split", &[s("")], &[])
            .unwrap_err()
            .contains("empty separator"));
        assert_eq!(m("a\nb\r\nc", "splitlines", vec![]), strs(&["a", "b", "c"]));
    }

    #[test]
    fn string_methods() {
        assert_eq!(m("-", "join", vec![strs(&["a", "b"])]), s("a-b"));
        assert_eq!(m(",", "join", vec![s("ab")]), s("a,b"));
        assert!(call_method(&s(","), "join", &[l(vec![i(1)])], &[])
            .unwrap_err()
            .contains("sequence item 0: expected str instance, int found"));
        assert_eq!(m("a.b.c", "replace", vec![s("."), s("")]), s("abc"));
        assert_eq!(m("aaa", "replace", vec![s("a"), s("b"), i(2)]), s("bba"));
        assert_eq!(m("ab", "replace", vec![s(""), s("-")]), s("-a-b-"));
        assert_eq!(m("GCCcore", "lower", vec![]), s("gcccore"));
        assert_eq!(m("straße", "upper", vec![]), s("STRASSE"));
        assert_eq!(m("  x \n", "strip", vec![]), s("x"));
        assert_eq!(m("xxaxx", "lstrip", vec![s("x")]), s("axx"));
        assert_eq!(m("v1.0", "rstrip", vec![s("0.")]), s("v1"));
        assert_eq!(
            m("codes_x", "startswith", vec![s("codes_")]),
            Value::Bool(true)
        );
        assert_eq!(
            m(
                "a.tar.gz",
                "endswith",
                vec![Value::Tuple(vec![s(".zip"), s(".gz")])]
            ),
            Value::Bool(true)
        );
        assert_eq!(
            m("abcabc", "startswith", vec![s("c"), i(2)]),
            Value::Bool(true)
        );
        assert_eq!(m("héllo", "find", vec![s("l")]), i(2));
        assert_eq!(m("héllo", "rfind", vec![s("l")]), i(3));
        assert_eq!(m("abc", "find", vec![s("z")]), i(-1));
        assert!(call_method(&s("abc"), "index", &[s("z")], &[])
            .unwrap_err()
            .contains("substring not found"));
        assert_eq!(m("a.b.c", "count", vec![s(".")]), i(2));
        assert_eq!(m("abc", "count", vec![s("")]), i(4));
        assert_eq!(m("123", "isdigit", vec![]), Value::Bool(true));
        assert_eq!(m("", "isdigit", vec![]), Value::Bool(false));
        assert_eq!(m("-5", "zfill", vec![i(4)]), s("-005"));
        assert_eq!(m("ab", "ljust", vec![i(4), s(".")]), s("ab.."));
        assert_eq!(m("ab", "rjust", vec![i(3)]), s(" ab"));
        assert_eq!(m("ab", "center", vec![i(5)]), s("  ab "));
        assert_eq!(m("abc", "center", vec![i(6)]), s(" abc  "));
        assert_eq!(
            m("a=b=c", "partition", vec![s("=")]),
            Value::Tuple(vec![s("a"), s("="), s("b=c")])
        );
        assert_eq!(
            m("a=b=c", "rpartition", vec![s("=")]),
            Value::Tuple(vec![s("a=b"), s("="), s("c")])
        );
        assert_eq!(
            call_method(&s("{}-{v}"), "format", &[i(1)], &[("v", s("x"))]).unwrap(),
            s("1-x")
        );
    }

    #[test]
    fn method_errors() {
        let e = call_method(&s("a"), "append", &[i(1)], &[]).unwrap_err();
        assert_eq!(e, "AttributeError: 'str' object has no attribute 'append'");
        let e = call_method(&s("a"), "title", &[], &[]).unwrap_err();
        assert!(e.starts_with("unsupported: method str.title"), "{e}");
        let e = call_method(&s("a"), "lower", &[i(1)], &[]).unwrap_err();
        assert!(e.contains("takes exactly 0 arguments"), "{e}");
        let e = call_method(&s("a"), "split", &[], &[("bogus", i(1))]).unwrap_err();
        assert!(e.contains("unexpected keyword argument 'bogus'"), "{e}");
        let e = call_method(&i(1), "lower", &[], &[]).unwrap_err();
        assert!(e.contains("'int' object has no attribute 'lower'"), "{e}");
    }

    #[test]
    fn collection_methods() {
        let d = Value::Dict(vec![(s("k"), i(1))]);
        assert_eq!(call_method(&d, "get", &[s("k")], &[]).unwrap(), i(1));
        assert_eq!(call_method(&d, "get", &[s("x")], &[]).unwrap(), Value::None);
        assert_eq!(call_method(&d, "get", &[s("x"), i(5)], &[]).unwrap(), i(5));
        assert!(call_method(&d, "get", &[l(vec![])], &[])
            .unwrap_err()
            .contains("unhashable"));
        let t = Value::Tuple(vec![s("a"), s("b"), s("a")]);
        assert_eq!(call_method(&t, "index", &[s("b")], &[]).unwrap(), i(1));
        assert_eq!(call_method(&t, "count", &[s("a")], &[]).unwrap(), i(2));
        assert!(call_method(&t, "index", &[s("z")], &[])
            .unwrap_err()
            .contains("not in tuple"));

        let mut v = l(vec![i(3)]);
        call_mutating(&mut v, "append", vec![i(1)], vec![]).unwrap();
        call_mutating(
            &mut v,
            "extend",
            vec![Value::Tuple(vec![i(2), i(0)])],
            vec![],
        )
        .unwrap();
        call_mutating(&mut v, "insert", vec![i(-100), i(9)], vec![]).unwrap();
        assert_eq!(v, l(vec![i(9), i(3), i(1), i(2), i(0)]));
        assert_eq!(call_mutating(&mut v, "pop", vec![], vec![]).unwrap(), i(0));
        call_mutating(&mut v, "remove", vec![i(3)], vec![]).unwrap();
        call_mutating(&mut v, "sort", vec![], vec![("reverse", Value::Bool(true))]).unwrap();
        assert_eq!(v, l(vec![i(9), i(2), i(1)]));
        assert!(call_mutating(&mut v, "remove", vec![i(7)], vec![])
            .unwrap_err()
            .contains("not in list"));
        assert!(call_mutating(&mut v, "sort", vec![], vec![("key", i(1))])
            .unwrap_err()
            .contains("unsupported"));
        assert!(call_mutating(&mut l(vec![]), "pop", vec![], vec![])
            .unwrap_err()
            .contains("pop from empty list"));

        let mut d = Value::Dict(vec![(s("a"), i(1))]);
        call_mutating(
            &mut d,
            "update",
            vec![Value::Dict(vec![(s("b"), i(2)), (s("a"), i(3))])],
            vec![("c", i(4))],
        )
        .unwrap();
        assert_eq!(
            d,
            Value::Dict(vec![(s("a"), i(3)), (s("b"), i(2)), (s("c"), i(4))])
        );
        assert_eq!(
            call_mutating(&mut d, "setdefault", vec![s("z"), i(0)], vec![]).unwrap(),
            i(0)
        );
        assert_eq!(
            call_mutating(&mut d, "pop", vec![s("a")], vec![]).unwrap(),
            i(3)
        );
        assert!(call_mutating(&mut d, "pop", vec![s("a")], vec![])
            .unwrap_err()
            .contains("KeyError"));

        let mut st = Value::Set(vec![i(1)]);
        call_mutating(&mut st, "add", vec![i(1)], vec![]).unwrap();
        call_mutating(&mut st, "add", vec![i(2)], vec![]).unwrap();
        call_mutating(&mut st, "update", vec![l(vec![i(2), i(3)])], vec![]).unwrap();
        assert_eq!(st, Value::Set(vec![i(1), i(2), i(3)]));
        assert!(call_mutating(&mut st, "add", vec![l(vec![])], vec![])
            .unwrap_err()
            .contains("unhashable"));
        assert!(call_mutating(&mut s("x"), "append", vec![i(1)], vec![])
            .unwrap_err()
            .contains("AttributeError"));
    }

    #[test]
    fn functions() {
        assert_eq!(f("chr", vec![i(10)]).unwrap(), s("\n"));
        assert!(f("chr", vec![i(-1)]).unwrap_err().contains("ValueError"));
        assert_eq!(f("ord", vec![s("A")]).unwrap(), i(65));
        assert_eq!(f("int", vec![s(" 42 ")]).unwrap(), i(42));
        assert_eq!(f("int", vec![s("-1_000")]).unwrap(), i(-1000));
        assert_eq!(
            call_function("int", vec![s("ff")], vec![("base", i(16))]).unwrap(),
            i(255)
        );
        assert_eq!(f("int", vec![s("0x1f"), i(0)]).unwrap(), i(31));
        assert_eq!(f("int", vec![Value::Float(-3.9)]).unwrap(), i(-3));
        assert_eq!(f("int", vec![Value::Bool(true)]).unwrap(), i(1));
        assert!(f("int", vec![s("1.5")])
            .unwrap_err()
            .contains("invalid literal for int() with base 10: '1.5'"));
        assert!(f("int", vec![s("99999999999999999999")])
            .unwrap_err()
            .contains("too large"));
        assert!(f("int", vec![l(vec![])]).unwrap_err().contains("TypeError"));
        assert_eq!(f("float", vec![s(" 1.5 ")]).unwrap(), Value::Float(1.5));
        assert!(f("float", vec![s("x")])
            .unwrap_err()
            .contains("could not convert"));
        assert_eq!(f("str", vec![Value::Float(0.98)]).unwrap(), s("0.98"));
        assert_eq!(f("str", vec![]).unwrap(), s(""));
        assert_eq!(f("repr", vec![s("a")]).unwrap(), s("'a'"));
        assert_eq!(f("len", vec![s("héllo")]).unwrap(), i(5));
        assert!(f("len", vec![i(1)]).unwrap_err().contains("has no len()"));
        assert_eq!(f("bool", vec![l(vec![])]).unwrap(), Value::Bool(false));
        assert_eq!(f("list", vec![s("ab")]).unwrap(), strs(&["a", "b"]));
        assert_eq!(
            f("tuple", vec![l(vec![i(1)])]).unwrap(),
            Value::Tuple(vec![i(1)])
        );
        assert_eq!(
            f("set", vec![l(vec![i(1), i(1)])]).unwrap(),
            Value::Set(vec![i(1)])
        );
        assert_eq!(
            call_function(
                "dict",
                vec![l(vec![Value::Tuple(vec![s("a"), i(1)])])],
                vec![("b", i(2))]
            )
            .unwrap(),
            Value::Dict(vec![(s("a"), i(1)), (s("b"), i(2))])
        );
        assert!(f("dict", vec![l(vec![Value::Tuple(vec![i(1)])])])
            .unwrap_err()
            .contains("has length 1; 2 is required"));
        assert_eq!(
            f("sorted", vec![strs(&["b", "a", "c"])]).unwrap(),
            strs(&["a", "b", "c"])
        );
        assert!(f("sorted", vec![l(vec![i(1), s("a")])])
            .unwrap_err()
            .contains("not supported between"));
        assert_eq!(f("max", vec![i(1), i(3), i(2)]).unwrap(), i(3));
        assert_eq!(f("min", vec![strs(&["b", "a"])]).unwrap(), s("a"));
        assert!(f("max", vec![l(vec![])])
            .unwrap_err()
            .contains("empty sequence"));
        assert_eq!(
            f("sum", vec![l(vec![i(1), Value::Float(0.5)])]).unwrap(),
            Value::Float(1.5)
        );
        assert!(f("sum", vec![strs(&["a"]), s("")])
            .unwrap_err()
            .contains("can't sum strings"));
        assert_eq!(f("abs", vec![i(-2)]).unwrap(), i(2));
        assert_eq!(
            f("any", vec![l(vec![i(0), i(1)])]).unwrap(),
            Value::Bool(true)
        );
        assert_eq!(f("all", vec![l(vec![])]).unwrap(), Value::Bool(true));
        assert_eq!(f("format", vec![i(5), s("03")]).unwrap(), s("005"));
        assert!(f("len", vec![])
            .unwrap_err()
            .contains("takes exactly 1 argument"));
    }

    #[test]
    fn iterables() {
        let r = |a: Vec<Value>| iterate_function("range", a, vec![]);
        assert_eq!(r(vec![i(3)]).unwrap(), vec![i(0), i(1), i(2)]);
        assert_eq!(r(vec![i(5), i(0), i(-2)]).unwrap(), vec![i(5), i(3), i(1)]);
        assert_eq!(r(vec![i(2), i(2)]).unwrap(), vec![]);
        assert!(r(vec![i(0), i(1), i(0)])
            .unwrap_err()
            .contains("must not be zero"));
        assert!(r(vec![Value::Float(1.0)])
            .unwrap_err()
            .contains("cannot be interpreted as an integer"));
        assert!(r(vec![i(i64::MAX)]).unwrap_err().contains("more than"));
        assert_eq!(
            iterate_function("enumerate", vec![strs(&["a"])], vec![("start", i(1))]).unwrap(),
            vec![Value::Tuple(vec![i(1), s("a")])]
        );
        assert_eq!(
            iterate_function("zip", vec![strs(&["a", "b"]), l(vec![i(1)])], vec![]).unwrap(),
            vec![Value::Tuple(vec![s("a"), i(1)])]
        );
        assert_eq!(
            iterate_function("reversed", vec![s("ab")], vec![]).unwrap(),
            vec![s("b"), s("a")]
        );
        assert!(
            iterate_function("reversed", vec![Value::Set(vec![])], vec![])
                .unwrap_err()
                .contains("not reversible")
        );
    }
}
