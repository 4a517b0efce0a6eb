//! Operations on values: equality, hashing, ordering, arithmetic, `in`, indexing and
//! slicing, with CPython's semantics and error messages.

use std::cmp::Ordering;
use std::collections::HashMap;

use super::ast::{BinOp, CmpOp, UnOp};
use super::format::{percent_format, write_repr};
use super::{Value, MAX_ITERATIONS, MAX_LEN};

pub(crate) type Res<T> = Result<T, String>;

/// 2**63 as a float: the exclusive bound of floats that convert to an `i64`.
pub(crate) const TWO_POW_63: f64 = (1u64 << 63) as f64;

pub(crate) fn hashable(v: &Value) -> bool {
    match v {
        Value::List(_) | Value::Dict(_) | Value::Set(_) => false,
        Value::Tuple(items) => items.iter().all(hashable),
        _ => true,
    }
}

pub(crate) fn check_hashable(v: &Value) -> Res<()> {
    if hashable(v) {
        return Ok(());
    }
    let mut bad = v;
    // report the innermost unhashable type, like Python does for tuples
    while let Value::Tuple(items) = bad {
        match items.iter().find(|x| !hashable(x)) {
            Some(x) => bad = x,
            None => break,
        }
    }
    Err(format!("TypeError: unhashable type: '{}'", bad.type_name()))
}

fn int_float_eq(i: i64, f: f64) -> bool {
    if f.fract() != 0.0 || !f.is_finite() {
        return false;
    }
    if !(-TWO_POW_63..TWO_POW_63).contains(&f) {
        return false;
    }
    f as i64 == i
}

/// Python `==`.
pub(crate) fn py_eq(a: &Value, b: &Value) -> bool {
    use Value::*;
    match (a, b) {
        (Str(x), Str(y)) => x == y,
        (Int(x), Int(y)) => x == y,
        (None, None) => true,
        (Bool(x), Bool(y)) => x == y,
        (Float(x), Float(y)) => x == y,
        (Bool(x), Int(y)) | (Int(y), Bool(x)) => *x as i64 == *y,
        (Int(i), Float(f)) | (Float(f), Int(i)) => int_float_eq(*i, *f),
        (Bool(x), Float(f)) | (Float(f), Bool(x)) => int_float_eq(*x as i64, *f),
        (List(x), List(y)) | (Tuple(x), Tuple(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| py_eq(p, q))
        }
        (Dict(x), Dict(y)) => {
            x.len() == y.len()
                && x.iter().all(|(k, v)| match dict_find(y, k) {
                    Some(i) => py_eq(v, &y[i].1),
                    Option::None => false,
                })
        }
        (Set(x), Set(y)) => x.len() == y.len() && x.iter().all(|e| y.iter().any(|f| py_eq(e, f))),
        _ => false,
    }
}

fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// A hash consistent with [`py_eq`] for hashable values.
pub(crate) fn py_hash(v: &Value) -> u64 {
    match v {
        Value::None => 0x9e37_79b9_7f4a_7c15,
        Value::Bool(b) => mix(*b as u64),
        Value::Int(i) => mix(*i as u64),
        Value::Float(f) => {
            if f.fract() == 0.0 && (-TWO_POW_63..TWO_POW_63).contains(f) {
                mix(*f as i64 as u64)
            } else {
                mix(f.to_bits())
            }
        }
        Value::Str(s) => {
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for &b in s.as_bytes() {
                h ^= b as u64;
                h = h.wrapping_mul(0x100_0000_01b3);
            }
            mix(h ^ 0x5555)
        }
        Value::Tuple(items) => {
            let mut h: u64 = 0x2545_f491_4f6c_dd1d;
            for x in items {
                h = mix(h ^ py_hash(x)).wrapping_add(0x9e37);
            }
            h
        }
        _ => 0,
    }
}

/// Position of `k` among the keys of `d`.
pub(crate) fn dict_find(d: &[(Value, Value)], k: &Value) -> Option<usize> {
    d.iter().position(|(x, _)| py_eq(x, k))
}

/// Builds an insertion-ordered mapping with unique keys (last value wins, first position
/// kept); indexes by hash once it grows. Keys must be hashable.
pub(crate) struct DictBuilder<V> {
    items: Vec<(Value, V)>,
    index: Option<HashMap<u64, Vec<u32>>>,
}

const INDEX_AT: usize = 16;

impl<V> DictBuilder<V> {
    pub(crate) fn with_capacity(n: usize) -> Self {
        DictBuilder {
            items: Vec::with_capacity(n),
            index: None,
        }
    }

    /// Start from existing unique entries.
    pub(crate) fn from_vec(items: Vec<(Value, V)>) -> Self {
        let mut b = DictBuilder { items, index: None };
        if b.items.len() >= INDEX_AT {
            b.build_index();
        }
        b
    }

    fn build_index(&mut self) {
        let mut ix: HashMap<u64, Vec<u32>> = HashMap::with_capacity(self.items.len() * 2);
        for (i, (k, _)) in self.items.iter().enumerate() {
            ix.entry(py_hash(k)).or_default().push(i as u32);
        }
        self.index = Some(ix);
    }

    pub(crate) fn find(&self, k: &Value) -> Option<usize> {
        match &self.index {
            Some(ix) => ix
                .get(&py_hash(k))?
                .iter()
                .map(|&i| i as usize)
                .find(|&i| py_eq(&self.items[i].0, k)),
            None => self.items.iter().position(|(x, _)| py_eq(x, k)),
        }
    }

    pub(crate) fn insert(&mut self, k: Value, v: V) {
        if let Some(i) = self.find(&k) {
            self.items[i].1 = v;
            return;
        }
        let i = self.items.len();
        if let Some(ix) = &mut self.index {
            ix.entry(py_hash(&k)).or_default().push(i as u32);
        }
        self.items.push((k, v));
        if self.index.is_none() && self.items.len() >= INDEX_AT {
            self.build_index();
        }
    }

    pub(crate) fn finish(self) -> Vec<(Value, V)> {
        self.items
    }
}

/// Build a set's element list from values (hashability checked by the caller).
pub(crate) fn unique(values: impl IntoIterator<Item = Value>) -> Vec<Value> {
    let mut b: DictBuilder<()> = DictBuilder::with_capacity(4);
    for v in values {
        b.insert(v, ());
    }
    b.finish().into_iter().map(|(k, _)| k).collect()
}

/// Whether `v` nests at most `limit` containers deep.
pub(crate) fn depth_within(v: &Value, limit: usize) -> bool {
    match v {
        Value::List(items) | Value::Tuple(items) | Value::Set(items) => {
            items.is_empty() || (limit > 0 && items.iter().all(|x| depth_within(x, limit - 1)))
        }
        Value::Dict(items) => {
            items.is_empty()
                || (limit > 0
                    && items
                        .iter()
                        .all(|(k, x)| depth_within(k, limit - 1) && depth_within(x, limit - 1)))
        }
        _ => true,
    }
}

/// Approximate size of `v` in units of about 32 bytes (one per value plus one per 32
/// bytes of string); stops counting once past `limit`.
pub(crate) fn size_units(v: &Value, limit: u64) -> u64 {
    fn go(v: &Value, acc: &mut u64, limit: u64) -> bool {
        *acc += 1;
        match v {
            Value::Str(s) => *acc += (s.len() / 32) as u64,
            Value::List(items) | Value::Tuple(items) | Value::Set(items) => {
                for x in items {
                    if !go(x, acc, limit) {
                        return false;
                    }
                }
            }
            Value::Dict(items) => {
                for (k, x) in items {
                    if !go(k, acc, limit) || !go(x, acc, limit) {
                        return false;
                    }
                }
            }
            _ => {}
        }
        *acc <= limit
    }
    let mut acc = 0;
    go(v, &mut acc, limit);
    acc
}

pub(crate) fn check_len(n: usize) -> Res<()> {
    if n > MAX_LEN {
        return Err("MemoryError: result too large".into());
    }
    Ok(())
}

// ----- ordering and comparisons -----

#[derive(Clone, Copy)]
enum Num {
    I(i64),
    F(f64),
}

fn num(v: &Value) -> Option<Num> {
    match v {
        Value::Int(i) => Some(Num::I(*i)),
        Value::Bool(b) => Some(Num::I(*b as i64)),
        Value::Float(f) => Some(Num::F(*f)),
        _ => None,
    }
}

fn type_error_order(sym: &str, a: &Value, b: &Value) -> String {
    format!(
        "TypeError: '{sym}' not supported between instances of '{}' and '{}'",
        a.type_name(),
        b.type_name()
    )
}

/// Ordering for `<` and friends (`None` for NaN).
pub(crate) fn order(a: &Value, b: &Value, sym: &str) -> Res<Option<Ordering>> {
    if let (Some(x), Some(y)) = (num(a), num(b)) {
        return Ok(match (x, y) {
            (Num::I(x), Num::I(y)) => Some(x.cmp(&y)),
            (Num::I(x), Num::F(y)) => (x as f64).partial_cmp(&y),
            (Num::F(x), Num::I(y)) => x.partial_cmp(&(y as f64)),
            (Num::F(x), Num::F(y)) => x.partial_cmp(&y),
        });
    }
    match (a, b) {
        (Value::Str(x), Value::Str(y)) => Ok(Some(x.as_str().cmp(y.as_str()))),
        (Value::List(x), Value::List(y)) | (Value::Tuple(x), Value::Tuple(y)) => {
            for (p, q) in x.iter().zip(y) {
                if !py_eq(p, q) {
                    return order(p, q, sym);
                }
            }
            Ok(Some(x.len().cmp(&y.len())))
        }
        _ => Err(type_error_order(sym, a, b)),
    }
}

fn subset(a: &[Value], b: &[Value]) -> bool {
    a.iter().all(|x| b.iter().any(|y| py_eq(x, y)))
}

/// A comparison other than `in`/`not in`/`is`/`is not`.
pub(crate) fn compare(op: CmpOp, a: &Value, b: &Value) -> Res<bool> {
    let sym = match op {
        CmpOp::Eq => return Ok(py_eq(a, b)),
        CmpOp::NotEq => return Ok(!py_eq(a, b)),
        CmpOp::Lt => "<",
        CmpOp::Le => "<=",
        CmpOp::Gt => ">",
        CmpOp::Ge => ">=",
        CmpOp::In | CmpOp::NotIn => {
            let r = contains(b, a)?;
            return Ok(r == (op == CmpOp::In));
        }
        CmpOp::Is | CmpOp::IsNot => {
            let same = match (a, b) {
                (Value::None, Value::None) => true,
                (Value::Bool(x), Value::Bool(y)) => x == y,
                (Value::None | Value::Bool(_), _) | (_, Value::None | Value::Bool(_)) => false,
                _ => {
                    return Err(format!(
                        "unsupported: 'is' between {} and {} (only None/True/False identity is supported)",
                        a.type_name(),
                        b.type_name()
                    ))
                }
            };
            return Ok(same == (op == CmpOp::Is));
        }
    };
    if let (Value::Set(x), Value::Set(y)) = (a, b) {
        return Ok(match op {
            CmpOp::Le => subset(x, y),
            CmpOp::Lt => x.len() < y.len() && subset(x, y),
            CmpOp::Ge => subset(y, x),
            _ => y.len() < x.len() && subset(y, x),
        });
    }
    let o = order(a, b, sym)?;
    Ok(match o {
        None => false,
        Some(o) => match op {
            CmpOp::Lt => o == Ordering::Less,
            CmpOp::Le => o != Ordering::Greater,
            CmpOp::Gt => o == Ordering::Greater,
            _ => o != Ordering::Less,
        },
    })
}

/// `needle in container`.
pub(crate) fn contains(container: &Value, needle: &Value) -> Res<bool> {
    match container {
        Value::Str(s) => match needle {
            Value::Str(n) => Ok(s.contains(n.as_str())),
            other => Err(format!(
                "TypeError: 'in <string>' requires string as left operand, not {}",
                other.type_name()
            )),
        },
        Value::List(items) | Value::Tuple(items) => Ok(items.iter().any(|x| py_eq(x, needle))),
        Value::Set(items) => {
            check_hashable(needle)?;
            Ok(items.iter().any(|x| py_eq(x, needle)))
        }
        Value::Dict(items) => {
            check_hashable(needle)?;
            Ok(dict_find(items, needle).is_some())
        }
        other => Err(format!(
            "TypeError: argument of type '{}' is not iterable",
            other.type_name()
        )),
    }
}

// ----- arithmetic -----

fn overflow() -> String {
    "unsupported: integer overflow (only 64-bit integers are supported)".into()
}

fn float_divmod(vx: f64, wx: f64) -> (f64, f64) {
    let mut m = vx % wx;
    let mut div = (vx - m) / wx;
    if m != 0.0 {
        if (wx < 0.0) != (m < 0.0) {
            m += wx;
            div -= 1.0;
        }
    } else {
        m = 0.0f64.copysign(wx);
    }
    let floordiv = if div != 0.0 {
        let mut f = div.floor();
        if div - f > 0.5 {
            f += 1.0;
        }
        f
    } else {
        0.0f64.copysign(vx / wx)
    };
    (floordiv, m)
}

fn arith(op: BinOp, x: Num, y: Num) -> Res<Value> {
    if let (Num::I(a), Num::I(b)) = (x, y) {
        return match op {
            BinOp::Add => a.checked_add(b).map(Value::Int).ok_or_else(overflow),
            BinOp::Sub => a.checked_sub(b).map(Value::Int).ok_or_else(overflow),
            BinOp::Mul => a.checked_mul(b).map(Value::Int).ok_or_else(overflow),
            BinOp::Div => {
                if b == 0 {
                    Err("ZeroDivisionError: division by zero".into())
                } else {
                    Ok(Value::Float(a as f64 / b as f64))
                }
            }
            BinOp::FloorDiv | BinOp::Mod => {
                if b == 0 {
                    return Err("ZeroDivisionError: integer division or modulo by zero".into());
                }
                let q = a.checked_div(b).ok_or_else(overflow)?;
                let r = a - q * b;
                let (q, r) = if r != 0 && ((r < 0) != (b < 0)) {
                    (q - 1, r + b)
                } else {
                    (q, r)
                };
                Ok(Value::Int(if op == BinOp::Mod { r } else { q }))
            }
        };
    }
    let f = |n: Num| match n {
        Num::I(i) => i as f64,
        Num::F(f) => f,
    };
    let (a, b) = (f(x), f(y));
    Ok(Value::Float(match op {
        BinOp::Add => a + b,
        BinOp::Sub => a - b,
        BinOp::Mul => a * b,
        BinOp::Div => {
            if b == 0.0 {
                return Err("ZeroDivisionError: float division by zero".into());
            }
            a / b
        }
        BinOp::FloorDiv => {
            if b == 0.0 {
                return Err("ZeroDivisionError: float floor division by zero".into());
            }
            float_divmod(a, b).0
        }
        BinOp::Mod => {
            if b == 0.0 {
                return Err("ZeroDivisionError: float modulo".into());
            }
            float_divmod(a, b).1
        }
    }))
}

fn repeat_count(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::Bool(b) => Some(*b as i64),
        _ => None,
    }
}

fn repeat(seq: Value, n: i64) -> Res<Value> {
    let n = n.max(0) as usize;
    match seq {
        Value::Str(s) => {
            check_len(s.len().saturating_mul(n))?;
            Ok(Value::Str(s.repeat(n)))
        }
        Value::List(items) => {
            check_len(items.len().saturating_mul(n))?;
            Ok(Value::List(repeat_vec(items, n)))
        }
        Value::Tuple(items) => {
            check_len(items.len().saturating_mul(n))?;
            Ok(Value::Tuple(repeat_vec(items, n)))
        }
        _ => unreachable!("only sequences are repeated"),
    }
}

fn repeat_vec(items: Vec<Value>, n: usize) -> Vec<Value> {
    let mut out = Vec::with_capacity(items.len() * n);
    for _ in 0..n {
        out.extend(items.iter().cloned());
    }
    out
}

fn unsupported_operands(op: BinOp, a: &Value, b: &Value) -> String {
    format!(
        "TypeError: unsupported operand type(s) for {}: '{}' and '{}'",
        op.symbol(),
        a.type_name(),
        b.type_name()
    )
}

/// `l op r`; takes the left operand by value so `+` can append in place.
pub(crate) fn binop(l: Value, op: BinOp, r: &Value) -> Res<Value> {
    if let (Some(x), Some(y)) = (num(&l), num(r)) {
        return arith(op, x, y);
    }
    match op {
        BinOp::Add => match (l, r) {
            (Value::Str(mut a), Value::Str(b)) => {
                check_len(a.len() + b.len())?;
                a.push_str(b);
                Ok(Value::Str(a))
            }
            (Value::List(mut a), Value::List(b)) => {
                check_len(a.len() + b.len())?;
                a.extend(b.iter().cloned());
                Ok(Value::List(a))
            }
            (Value::Tuple(mut a), Value::Tuple(b)) => {
                check_len(a.len() + b.len())?;
                a.extend(b.iter().cloned());
                Ok(Value::Tuple(a))
            }
            (l @ (Value::Str(_) | Value::List(_) | Value::Tuple(_)), r) => Err(format!(
                "TypeError: can only concatenate {} (not \"{}\") to {}",
                l.type_name(),
                r.type_name(),
                l.type_name()
            )),
            (l, r) => Err(unsupported_operands(op, &l, r)),
        },
        BinOp::Mul => match (&l, r) {
            (Value::Str(_) | Value::List(_) | Value::Tuple(_), n) if repeat_count(n).is_some() => {
                repeat(l, repeat_count(n).unwrap_or(0))
            }
            (n, Value::Str(_) | Value::List(_) | Value::Tuple(_)) if repeat_count(n).is_some() => {
                repeat(r.clone(), repeat_count(n).unwrap_or(0))
            }
            (Value::Str(_) | Value::List(_) | Value::Tuple(_), other)
            | (other, Value::Str(_) | Value::List(_) | Value::Tuple(_)) => Err(format!(
                "TypeError: can't multiply sequence by non-int of type '{}'",
                other.type_name()
            )),
            _ => Err(unsupported_operands(op, &l, r)),
        },
        BinOp::Mod => match &l {
            Value::Str(fmt) => percent_format(fmt, r).map(Value::Str),
            _ => Err(unsupported_operands(op, &l, r)),
        },
        BinOp::Sub => match (&l, r) {
            (Value::Set(a), Value::Set(b)) => Ok(Value::Set(
                a.iter()
                    .filter(|x| !b.iter().any(|y| py_eq(x, y)))
                    .cloned()
                    .collect(),
            )),
            _ => Err(unsupported_operands(op, &l, r)),
        },
        _ => Err(unsupported_operands(op, &l, r)),
    }
}

pub(crate) fn unary(op: UnOp, v: Value) -> Res<Value> {
    match op {
        UnOp::Not => Ok(Value::Bool(!v.truthy())),
        UnOp::Neg => match v {
            Value::Int(i) => i.checked_neg().map(Value::Int).ok_or_else(overflow),
            Value::Bool(b) => Ok(Value::Int(-(b as i64))),
            Value::Float(f) => Ok(Value::Float(-f)),
            other => Err(format!(
                "TypeError: bad operand type for unary -: '{}'",
                other.type_name()
            )),
        },
        UnOp::Pos => match v {
            Value::Int(_) | Value::Float(_) => Ok(v),
            Value::Bool(b) => Ok(Value::Int(b as i64)),
            other => Err(format!(
                "TypeError: bad operand type for unary +: '{}'",
                other.type_name()
            )),
        },
    }
}

// ----- indexing -----

fn index_int(v: &Value, what: &str) -> Res<i64> {
    match v {
        Value::Int(i) => Ok(*i),
        Value::Bool(b) => Ok(*b as i64),
        other => Err(format!(
            "TypeError: {what} indices must be integers or slices, not {}",
            other.type_name()
        )),
    }
}

fn norm_index(i: i64, len: usize) -> Option<usize> {
    let j = if i < 0 { i.checked_add(len as i64)? } else { i };
    if j < 0 || j as usize >= len {
        None
    } else {
        Some(j as usize)
    }
}

fn key_error(k: &Value) -> String {
    let mut m = String::from("KeyError: ");
    write_repr(&mut m, k, false);
    m
}

/// `v[idx]` for lists, tuples and dicts, by reference.
pub(crate) fn index_ref<'a>(v: &'a Value, idx: &Value) -> Res<&'a Value> {
    match v {
        Value::List(items) | Value::Tuple(items) => {
            let what = v.type_name();
            let i = index_int(idx, what)?;
            norm_index(i, items.len())
                .map(|i| &items[i])
                .ok_or_else(|| format!("IndexError: {what} index out of range"))
        }
        Value::Dict(items) => {
            check_hashable(idx)?;
            dict_find(items, idx)
                .map(|i| &items[i].1)
                .ok_or_else(|| key_error(idx))
        }
        other => Err(format!(
            "TypeError: '{}' object is not subscriptable",
            other.type_name()
        )),
    }
}

/// Mutable `v[idx]` for lists, tuples and dicts (existing entries only).
pub(crate) fn index_mut<'a>(v: &'a mut Value, idx: &Value) -> Res<&'a mut Value> {
    let what = v.type_name();
    match v {
        Value::List(items) | Value::Tuple(items) => {
            let i = index_int(idx, what)?;
            let n = items.len();
            norm_index(i, n)
                .map(move |i| &mut items[i])
                .ok_or_else(|| format!("IndexError: {what} index out of range"))
        }
        Value::Dict(items) => {
            check_hashable(idx)?;
            match dict_find(items, idx) {
                Some(i) => Ok(&mut items[i].1),
                None => Err(key_error(idx)),
            }
        }
        _ => Err(format!("TypeError: '{what}' object is not subscriptable")),
    }
}

/// `v[idx] = value`.
pub(crate) fn set_item(v: &mut Value, idx: Value, value: Value) -> Res<()> {
    match v {
        Value::List(items) => {
            let i = index_int(&idx, "list")?;
            let n = items.len();
            let i = norm_index(i, n)
                .ok_or_else(|| "IndexError: list assignment index out of range".to_string())?;
            items[i] = value;
            Ok(())
        }
        Value::Dict(items) => {
            check_hashable(&idx)?;
            match dict_find(items, &idx) {
                Some(i) => items[i].1 = value,
                None => items.push((idx, value)),
            }
            Ok(())
        }
        other => Err(format!(
            "TypeError: '{}' object does not support item assignment",
            other.type_name()
        )),
    }
}

/// `v[idx]` (by value; strings index by code point).
pub(crate) fn index(v: &Value, idx: &Value) -> Res<Value> {
    match v {
        Value::Str(s) => {
            let i = index_int(idx, "string")?;
            let err = || "IndexError: string index out of range".to_string();
            if s.is_ascii() {
                let i = norm_index(i, s.len()).ok_or_else(err)?;
                Ok(Value::Str(s[i..i + 1].to_string()))
            } else {
                let n = s.chars().count();
                let i = norm_index(i, n).ok_or_else(err)?;
                Ok(Value::Str(
                    s.chars().nth(i).map(String::from).unwrap_or_default(),
                ))
            }
        }
        _ => index_ref(v, idx).cloned(),
    }
}

fn slice_bound(v: Option<&Value>) -> Res<Option<i64>> {
    match v {
        None | Some(Value::None) => Ok(None),
        Some(Value::Int(i)) => Ok(Some(*i)),
        Some(Value::Bool(b)) => Ok(Some(*b as i64)),
        Some(_) => Err(
            "TypeError: slice indices must be integers or None or have an __index__ method".into(),
        ),
    }
}

/// Python's `PySlice_AdjustIndices`: the selected positions.
pub(crate) fn slice_positions(
    len: usize,
    start: Option<&Value>,
    stop: Option<&Value>,
    step: Option<&Value>,
) -> Res<(i64, i64, usize)> {
    let step = slice_bound(step)?.unwrap_or(1);
    if step == 0 {
        return Err("ValueError: slice step cannot be zero".into());
    }
    // Python clamps the step to -sys.maxsize; i128 keeps the arithmetic exact.
    let step = step.max(-i64::MAX) as i128;
    let len = len as i128;
    let (lower, upper) = if step < 0 { (-1, len - 1) } else { (0, len) };
    let adjust = |b: Option<i64>, default: i128| -> i128 {
        match b {
            None => default,
            Some(x) => {
                let mut x = x as i128;
                if x < 0 {
                    x += len;
                    if x < lower {
                        x = lower;
                    }
                } else if x > upper {
                    x = upper;
                }
                x
            }
        }
    };
    let start = adjust(slice_bound(start)?, if step < 0 { upper } else { lower });
    let stop = adjust(slice_bound(stop)?, if step < 0 { lower } else { upper });
    let count = if step < 0 {
        if stop < start {
            ((start - stop - 1) / (-step) + 1) as usize
        } else {
            0
        }
    } else if start < stop {
        ((stop - start - 1) / step + 1) as usize
    } else {
        0
    };
    let (start, step) = (start as i64, step as i64);
    Ok((start, step, count))
}

fn take_slice<T: Clone>(items: &[T], start: i64, step: i64, count: usize) -> Vec<T> {
    if step == 1 {
        let s = start as usize;
        return items[s..s + count].to_vec();
    }
    (0..count)
        .map(|k| items[(start as i128 + k as i128 * step as i128) as usize].clone())
        .collect()
}

/// `v[start:stop:step]`.
pub(crate) fn slice(
    v: &Value,
    start: Option<&Value>,
    stop: Option<&Value>,
    step: Option<&Value>,
) -> Res<Value> {
    match v {
        Value::List(items) | Value::Tuple(items) => {
            let (s, st, n) = slice_positions(items.len(), start, stop, step)?;
            let out = take_slice(items, s, st, n);
            Ok(if matches!(v, Value::List(_)) {
                Value::List(out)
            } else {
                Value::Tuple(out)
            })
        }
        Value::Str(text) => {
            if text.is_ascii() {
                let (s, st, n) = slice_positions(text.len(), start, stop, step)?;
                if st == 1 {
                    let s = s as usize;
                    return Ok(Value::Str(text[s..s + n].to_string()));
                }
                let b = take_slice(text.as_bytes(), s, st, n);
                Ok(Value::Str(b.into_iter().map(|c| c as char).collect()))
            } else {
                let chars: Vec<char> = text.chars().collect();
                let (s, st, n) = slice_positions(chars.len(), start, stop, step)?;
                Ok(Value::Str(
                    take_slice(&chars, s, st, n).into_iter().collect(),
                ))
            }
        }
        Value::Dict(_) => Err("TypeError: unhashable type: 'slice'".into()),
        other => Err(format!(
            "TypeError: '{}' object is not subscriptable",
            other.type_name()
        )),
    }
}

/// `len(v)`.
pub(crate) fn len_of(v: &Value) -> Res<usize> {
    match v {
        Value::Str(s) => Ok(if s.is_ascii() {
            s.len()
        } else {
            s.chars().count()
        }),
        Value::List(x) | Value::Tuple(x) | Value::Set(x) => Ok(x.len()),
        Value::Dict(d) => Ok(d.len()),
        other => Err(format!(
            "TypeError: object of type '{}' has no len()",
            other.type_name()
        )),
    }
}

/// The items produced by iterating over `v`.
pub(crate) fn iter_values(v: Value) -> Res<Vec<Value>> {
    match v {
        Value::List(x) | Value::Tuple(x) | Value::Set(x) => Ok(x),
        Value::Dict(d) => Ok(d.into_iter().map(|(k, _)| k).collect()),
        Value::Str(s) => {
            // One value (~32 bytes) a character: count them before building them.
            if s.len() as u64 > MAX_ITERATIONS && s.chars().count() as u64 > MAX_ITERATIONS {
                return Err(format!(
                    "unsupported: iterating a string of more than {MAX_ITERATIONS} characters"
                ));
            }
            Ok(s.chars().map(|c| Value::Str(c.to_string())).collect())
        }
        other => Err(not_iterable(&other)),
    }
}

pub(crate) fn not_iterable(v: &Value) -> String {
    format!("TypeError: '{}' object is not iterable", v.type_name())
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

    #[test]
    fn equality_and_hash() {
        assert!(py_eq(&i(1), &Value::Float(1.0)));
        assert!(py_eq(&i(1), &Value::Bool(true)));
        assert!(!py_eq(&i(1), &s("1")));
        assert!(!py_eq(&l(vec![i(1)]), &Value::Tuple(vec![i(1)])));
        assert!(py_eq(
            &Value::Dict(vec![(s("a"), i(1)), (s("b"), i(2))]),
            &Value::Dict(vec![(s("b"), i(2)), (s("a"), i(1))])
        ));
        assert!(py_eq(
            &Value::Set(vec![i(1), i(2)]),
            &Value::Set(vec![i(2), i(1)])
        ));
        assert!(!py_eq(&Value::Float(f64::NAN), &Value::Float(f64::NAN)));
        assert!(!py_eq(&i(i64::MAX), &Value::Float(TWO_POW_63)));
        assert_eq!(py_hash(&i(1)), py_hash(&Value::Float(1.0)));
        assert_eq!(py_hash(&i(1)), py_hash(&Value::Bool(true)));
        assert_eq!(py_hash(&i(0)), py_hash(&Value::Float(-0.0)));
        assert_ne!(py_hash(&s("a")), py_hash(&s("b")));
        assert!(check_hashable(&Value::Tuple(vec![l(vec![])]))
            .unwrap_err()
            .contains("unhashable type: 'list'"));
    }

    #[test]
    fn dict_builder_indexes_large_dicts() {
        let mut b = DictBuilder::with_capacity(0);
        for k in 0..100 {
            b.insert(i(k % 50), i(k));
        }
        b.insert(Value::Float(3.0), i(-1));
        let items = b.finish();
        assert_eq!(items.len(), 50);
        assert_eq!(items[3], (i(3), i(-1)));
        assert_eq!(items[49], (i(49), i(99)));
        assert_eq!(unique(vec![s("b"), s("a"), s("b")]), vec![s("b"), s("a")]);
    }

    #[test]
    fn comparisons() {
        assert!(compare(CmpOp::Lt, &i(1), &Value::Float(1.5)).unwrap());
        assert!(compare(CmpOp::Lt, &s("10"), &s("9")).unwrap());
        assert!(compare(
            CmpOp::Ge,
            &Value::Tuple(vec![i(1), i(2)]),
            &Value::Tuple(vec![i(1)])
        )
        .unwrap());
        assert!(compare(CmpOp::Lt, &l(vec![i(1), i(2)]), &l(vec![i(1), i(3)])).unwrap());
        assert!(compare(CmpOp::Lt, &i(1), &s("a"))
            .unwrap_err()
            .contains("'<' not supported"));
        assert!(!compare(CmpOp::Lt, &Value::Float(f64::NAN), &i(1)).unwrap());
        assert!(compare(CmpOp::Is, &Value::None, &Value::None).unwrap());
        assert!(compare(CmpOp::IsNot, &s("a"), &Value::None).unwrap());
        assert!(compare(CmpOp::Is, &s("a"), &s("a")).is_err());
        assert!(compare(
            CmpOp::Le,
            &Value::Set(vec![i(1)]),
            &Value::Set(vec![i(2), i(1)])
        )
        .unwrap());
        assert!(compare(CmpOp::In, &s("gpu"), &s("cpu,gpu")).unwrap());
        assert!(compare(CmpOp::NotIn, &s("x"), &l(vec![s("a")])).unwrap());
    }

    #[test]
    fn membership() {
        assert!(contains(&s("abc"), &s("bc")).unwrap());
        assert!(contains(&s("abc"), &i(1))
            .unwrap_err()
            .contains("requires string"));
        assert!(contains(
            &Value::Tuple(vec![s("aarch64"), s("riscv64")]),
            &s("aarch64")
        )
        .unwrap());
        assert!(contains(&Value::Dict(vec![(s("k"), i(1))]), &s("k")).unwrap());
        assert!(contains(&Value::Dict(vec![]), &l(vec![]))
            .unwrap_err()
            .contains("unhashable"));
        assert!(contains(&i(3), &i(1)).unwrap_err().contains("not iterable"));
    }

    #[test]
    fn arithmetic() {
        assert_eq!(binop(i(7), BinOp::Mod, &i(-3)).unwrap(), i(-2));
        assert_eq!(binop(i(-7), BinOp::FloorDiv, &i(2)).unwrap(), i(-4));
        assert_eq!(binop(i(7), BinOp::Div, &i(2)).unwrap(), Value::Float(3.5));
        assert_eq!(
            binop(Value::Float(-7.5), BinOp::Mod, &i(2)).unwrap(),
            Value::Float(0.5)
        );
        assert_eq!(
            binop(Value::Float(7.0), BinOp::FloorDiv, &Value::Float(-2.0)).unwrap(),
            Value::Float(-4.0)
        );
        assert_eq!(binop(Value::Bool(true), BinOp::Add, &i(1)).unwrap(), i(2));
        assert_eq!(binop(i(5), BinOp::Mul, &i(60)).unwrap(), i(300));
        assert!(binop(i(1), BinOp::Div, &i(0))
            .unwrap_err()
            .contains("ZeroDivisionError"));
        assert!(binop(i(1), BinOp::Mod, &i(0))
            .unwrap_err()
            .contains("ZeroDivisionError"));
        assert!(binop(Value::Float(1.0), BinOp::Div, &i(0))
            .unwrap_err()
            .contains("ZeroDivisionError"));
        assert!(binop(i(i64::MAX), BinOp::Add, &i(1))
            .unwrap_err()
            .contains("overflow"));
        assert!(binop(i(i64::MIN), BinOp::FloorDiv, &i(-1))
            .unwrap_err()
            .contains("overflow"));
        assert!(unary(UnOp::Neg, i(i64::MIN))
            .unwrap_err()
            .contains("overflow"));
        assert_eq!(unary(UnOp::Neg, Value::Bool(true)).unwrap(), i(-1));
        assert_eq!(unary(UnOp::Not, s("")).unwrap(), Value::Bool(true));
        assert!(unary(UnOp::Neg, s("a"))
            .unwrap_err()
            .contains("bad operand type for unary -"));
    }

    #[test]
    fn sequence_operators() {
        assert_eq!(binop(s("a"), BinOp::Add, &s("b")).unwrap(), s("ab"));
        assert_eq!(
            binop(l(vec![i(1)]), BinOp::Add, &l(vec![i(2)])).unwrap(),
            l(vec![i(1), i(2)])
        );
        assert_eq!(
            binop(
                Value::Tuple(vec![i(1)]),
                BinOp::Add,
                &Value::Tuple(vec![i(2)])
            )
            .unwrap(),
            Value::Tuple(vec![i(1), i(2)])
        );
        assert_eq!(binop(s("ab"), BinOp::Mul, &i(3)).unwrap(), s("ababab"));
        assert_eq!(
            binop(i(2), BinOp::Mul, &l(vec![i(0)])).unwrap(),
            l(vec![i(0), i(0)])
        );
        assert_eq!(binop(s("ab"), BinOp::Mul, &i(-1)).unwrap(), s(""));
        assert_eq!(
            binop(s("%s-%s"), BinOp::Mod, &Value::Tuple(vec![s("a"), i(1)])).unwrap(),
            s("a-1")
        );
        assert!(binop(s("a"), BinOp::Add, &i(1))
            .unwrap_err()
            .contains("can only concatenate str (not \"int\") to str"));
        assert!(binop(l(vec![]), BinOp::Add, &Value::Tuple(vec![]))
            .unwrap_err()
            .contains("can only concatenate list (not \"tuple\") to list"));
        assert!(binop(s("a"), BinOp::Mul, &s("b"))
            .unwrap_err()
            .contains("can't multiply sequence"));
        assert!(binop(i(1), BinOp::Add, &s("a"))
            .unwrap_err()
            .contains("unsupported operand type(s) for +: 'int' and 'str'"));
        assert!(binop(s("a"), BinOp::Sub, &s("a"))
            .unwrap_err()
            .contains("unsupported operand"));
        assert!(binop(s("ab"), BinOp::Mul, &i(1 << 40))
            .unwrap_err()
            .contains("too large"));
        assert_eq!(
            binop(
                Value::Set(vec![i(1), i(2)]),
                BinOp::Sub,
                &Value::Set(vec![i(2)])
            )
            .unwrap(),
            Value::Set(vec![i(1)])
        );
    }

    #[test]
    fn indexing_and_slicing() {
        let v = l(vec![i(0), i(1), i(2), i(3), i(4)]);
        assert_eq!(index(&v, &i(-1)).unwrap(), i(4));
        assert!(index(&v, &i(5))
            .unwrap_err()
            .contains("IndexError: list index out of range"));
        assert!(index(&v, &s("a"))
            .unwrap_err()
            .contains("list indices must be integers"));
        assert_eq!(index(&s("héllo"), &i(1)).unwrap(), s("é"));
        assert!(index(&s("ab"), &i(2))
            .unwrap_err()
            .contains("string index out of range"));
        let d = Value::Dict(vec![(s("x86_64"), s("amd"))]);
        assert_eq!(index(&d, &s("x86_64")).unwrap(), s("amd"));
        assert_eq!(index(&d, &s("aarch64")).unwrap_err(), "KeyError: 'aarch64'");
        assert!(index(&i(1), &i(0))
            .unwrap_err()
            .contains("'int' object is not subscriptable"));
        let sl = |v: &Value, a: Option<i64>, b: Option<i64>, c: Option<i64>| {
            let (a, b, c) = (a.map(i), b.map(i), c.map(i));
            slice(v, a.as_ref(), b.as_ref(), c.as_ref()).unwrap()
        };
        assert_eq!(sl(&v, Some(1), Some(3), None), l(vec![i(1), i(2)]));
        assert_eq!(
            sl(&v, None, None, Some(-1)),
            l(vec![i(4), i(3), i(2), i(1), i(0)])
        );
        assert_eq!(sl(&v, Some(-2), None, None), l(vec![i(3), i(4)]));
        assert_eq!(sl(&v, None, Some(-8), None), l(vec![]));
        assert_eq!(sl(&v, Some(100), None, None), l(vec![]));
        assert_eq!(sl(&v, None, None, Some(2)), l(vec![i(0), i(2), i(4)]));
        assert_eq!(sl(&v, Some(3), Some(0), Some(-2)), l(vec![i(3), i(1)]));
        assert_eq!(sl(&s("0123456789abc"), None, Some(8), None), s("01234567"));
        assert_eq!(sl(&s("héllo"), Some(1), Some(3), None), s("él"));
        assert_eq!(sl(&s("abc"), None, None, Some(-1)), s("cba"));
        assert_eq!(
            sl(&Value::Tuple(vec![i(1), i(2)]), Some(1), None, None),
            Value::Tuple(vec![i(2)])
        );
        assert!(slice(&v, None, None, Some(&i(0)))
            .unwrap_err()
            .contains("slice step cannot be zero"));
        assert!(slice(&v, Some(&s("a")), None, None)
            .unwrap_err()
            .contains("slice indices"));
    }

    #[test]
    fn item_assignment() {
        let mut v = l(vec![i(0)]);
        set_item(&mut v, i(-1), s("x")).unwrap();
        assert_eq!(v, l(vec![s("x")]));
        assert!(set_item(&mut v, i(1), s("x"))
            .unwrap_err()
            .contains("assignment index out of range"));
        let mut d = Value::Dict(vec![]);
        set_item(&mut d, s("k"), i(1)).unwrap();
        set_item(&mut d, s("k"), i(2)).unwrap();
        assert_eq!(d, Value::Dict(vec![(s("k"), i(2))]));
        assert!(set_item(&mut d, l(vec![]), i(1))
            .unwrap_err()
            .contains("unhashable"));
        let mut t = Value::Tuple(vec![i(1)]);
        assert!(set_item(&mut t, i(0), i(1))
            .unwrap_err()
            .contains("does not support item assignment"));
    }

    #[test]
    fn size_units_counts_values_and_string_bytes() {
        assert_eq!(size_units(&i(1), 100), 1);
        assert_eq!(size_units(&s(&"x".repeat(64)), 100), 3);
        assert_eq!(size_units(&l(vec![i(1), l(vec![s("a")])]), 100), 4);
        let big = l(vec![i(0); 1000]);
        assert!(size_units(&big, 10) > 10);
        assert!(size_units(&big, 10) < 20, "stops early");
    }

    #[test]
    fn depth_limit() {
        let mut v = i(0);
        for _ in 0..10 {
            v = l(vec![v]);
        }
        assert!(depth_within(&v, 10));
        assert!(!depth_within(&v, 9));
        assert!(depth_within(&l(vec![]), 0));
    }
}
