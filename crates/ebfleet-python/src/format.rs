//! Text conversions with CPython's exact output: `repr()`, `str()` of floats, `%`
//! formatting, `str.format()` and the format-spec mini-language (also used by f-strings).

use super::{Value, MAX_LEN};

type Res<T> = Result<T, String>;

// ----- repr -----

/// Append Python's `repr(v)` (or `ascii(v)` when `ascii`) to `out`.
pub(crate) fn write_repr(out: &mut String, v: &Value, ascii: bool) {
    match v {
        Value::None => out.push_str("None"),
        Value::Bool(true) => out.push_str("True"),
        Value::Bool(false) => out.push_str("False"),
        Value::Int(i) => {
            use std::fmt::Write;
            let _ = write!(out, "{i}");
        }
        Value::Float(f) => out.push_str(&float_repr(*f)),
        Value::Str(s) => write_str_repr(out, s, ascii),
        Value::List(items) => {
            out.push('[');
            write_items(out, items, ascii);
            out.push(']');
        }
        Value::Tuple(items) => {
            out.push('(');
            write_items(out, items, ascii);
            if items.len() == 1 {
                out.push(',');
            }
            out.push(')');
        }
        Value::Set(items) => {
            if items.is_empty() {
                out.push_str("set()");
            } else {
                out.push('{');
                write_items(out, items, ascii);
                out.push('}');
            }
        }
        Value::Dict(items) => {
            out.push('{');
            for (i, (k, v)) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_repr(out, k, ascii);
                out.push_str(": ");
                write_repr(out, v, ascii);
            }
            out.push('}');
        }
    }
}

fn write_items(out: &mut String, items: &[Value], ascii: bool) {
    for (i, v) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write_repr(out, v, ascii);
    }
}

/// Code points that Python's `str.isprintable()` rejects, approximated without a Unicode
/// database: controls, separators other than space, format characters, private use,
/// surrogates and a few non-characters.
fn is_printable(c: char) -> bool {
    let u = c as u32;
    if u < 0x20 || u == 0x7f {
        return false;
    }
    if u < 0x7f {
        return true;
    }
    !matches!(u,
        0x80..=0xa0
        | 0xad
        | 0x600..=0x605
        | 0x61c
        | 0x6dd
        | 0x70f
        | 0x8e2
        | 0x1680
        | 0x180e
        | 0x2000..=0x200f
        | 0x2028..=0x202f
        | 0x205f..=0x2064
        | 0x2066..=0x206f
        | 0x3000
        | 0xd800..=0xf8ff
        | 0xfeff
        | 0xfff9..=0xfffb
        | 0xfffe..=0xffff
        | 0x110bd
        | 0x110cd
        | 0x1bca0..=0x1bca3
        | 0x1d173..=0x1d17a
        | 0xe0001
        | 0xe0020..=0xe007f
        | 0xf0000..
    )
}

pub(crate) fn write_str_repr(out: &mut String, s: &str, ascii: bool) {
    use std::fmt::Write;
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    out.reserve(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            _ if c == quote => {
                out.push('\\');
                out.push(c);
            }
            _ if (c as u32) < 0x7f && (c as u32) >= 0x20 => out.push(c),
            _ if !ascii && (c as u32) > 0x7f && is_printable(c) => out.push(c),
            _ => {
                let u = c as u32;
                let _ = if u <= 0xff {
                    write!(out, "\\x{u:02x}")
                } else if u <= 0xffff {
                    write!(out, "\\u{u:04x}")
                } else {
                    write!(out, "\\U{u:08x}")
                };
            }
        }
    }
    out.push(quote);
}

/// Python's `repr(float)` (shortest round-trip digits, CPython's notation rules).
pub(crate) fn float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.into();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    let s = format!("{:e}", f);
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (neg, mant) = match mant.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mant),
    };
    let mut out = String::with_capacity(24);
    if neg {
        out.push('-');
    }
    if !(-4..16).contains(&exp) {
        out.push_str(mant);
        push_exponent(&mut out, exp);
        return out;
    }
    let digits: String = mant.chars().filter(|&c| c != '.').collect();
    let n = digits.len() as i32;
    let decpt = exp + 1;
    if decpt <= 0 {
        out.push_str("0.");
        for _ in 0..-decpt {
            out.push('0');
        }
        out.push_str(&digits);
    } else if decpt >= n {
        out.push_str(&digits);
        for _ in 0..decpt - n {
            out.push('0');
        }
        out.push_str(".0");
    } else {
        out.push_str(&digits[..decpt as usize]);
        out.push('.');
        out.push_str(&digits[decpt as usize..]);
    }
    out
}

fn push_exponent(out: &mut String, exp: i32) {
    use std::fmt::Write;
    out.push('e');
    out.push(if exp < 0 { '-' } else { '+' });
    let _ = write!(out, "{:02}", exp.unsigned_abs());
}

// ----- number formatting helpers -----

/// `%.{prec}f` of |f| (no sign).
fn fixed(f: f64, prec: usize) -> String {
    format!("{:.*}", prec, f.abs())
}

/// `%.{prec}e` of |f| (no sign).
fn exponent(f: f64, prec: usize, upper: bool) -> String {
    let s = format!("{:.*e}", prec, f.abs());
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let mut out = String::with_capacity(mant.len() + 5);
    out.push_str(mant);
    push_exponent(&mut out, exp);
    if upper {
        out = out.to_uppercase();
    }
    out
}

/// `%.{prec}g` of |f| (no sign). `none_type` applies the rules of the empty presentation
/// type of `format()` (at least one digit after the point, switch at `exp >= prec - 1`).
fn general(f: f64, prec: usize, alt: bool, upper: bool, none_type: bool) -> String {
    let p = prec.max(1);
    let e = format!("{:.*e}", p - 1, f.abs());
    let exp: i32 = e
        .split_once('e')
        .and_then(|(_, x)| x.parse().ok())
        .unwrap_or(0);
    let limit = if none_type { p as i32 - 1 } else { p as i32 };
    let mut s = if exp >= -4 && exp < limit {
        fixed(f, (p as i32 - 1 - exp).max(0) as usize)
    } else {
        exponent(f, p - 1, false)
    };
    if !alt {
        // strip trailing zeros of the fraction (before any exponent)
        let (num, exp_part) = match s.find('e') {
            Some(i) => (s[..i].to_string(), s[i..].to_string()),
            None => (s.clone(), String::new()),
        };
        let mut num = num;
        if num.contains('.') {
            while num.ends_with('0') {
                num.pop();
            }
            if num.ends_with('.') {
                num.pop();
            }
        }
        s = num + &exp_part;
    }
    if none_type && !s.contains(['.', 'e']) {
        s.push_str(".0");
    }
    if upper {
        s = s.to_uppercase();
    }
    s
}

fn non_finite(f: f64, upper: bool) -> Option<String> {
    let s = if f.is_nan() {
        "nan"
    } else if f.is_infinite() {
        "inf"
    } else {
        return None;
    };
    Some(if upper {
        s.to_uppercase()
    } else {
        s.to_string()
    })
}

fn check_width(width: usize) -> Res<()> {
    if width > MAX_LEN {
        return Err("ValueError: format width too large".into());
    }
    Ok(())
}

fn char_len(s: &str) -> usize {
    if s.is_ascii() {
        s.len()
    } else {
        s.chars().count()
    }
}

// ----- % formatting -----

#[derive(Default)]
struct PctSpec {
    left: bool,
    plus: bool,
    space: bool,
    alt: bool,
    zero: bool,
    width: usize,
    prec: Option<usize>,
}

/// `fmt % args` for a str `fmt`.
pub(crate) fn percent_format(fmt: &str, args: &Value) -> Res<String> {
    let tuple: Option<&[Value]> = match args {
        Value::Tuple(items) => Some(items),
        _ => None,
    };
    // Python treats any mapping (a dict; lists also pass PyMapping_Check) as a mapping
    // argument for `%(name)s`.
    let mapping = matches!(args, Value::Dict(_) | Value::List(_));
    let arglen: isize = tuple.map(|t| t.len() as isize).unwrap_or(-1);
    let mut argidx: isize = if tuple.is_some() { 0 } else { -2 };
    let next_arg = |argidx: &mut isize| -> Res<&Value> {
        if *argidx < arglen {
            let i = *argidx;
            *argidx += 1;
            return Ok(match tuple {
                Some(t) => &t[i as usize],
                None => args,
            });
        }
        Err("TypeError: not enough arguments for format string".into())
    };
    let b = fmt.as_bytes();
    let mut out = String::with_capacity(fmt.len() + 16);
    let mut i = 0;
    while i < b.len() {
        let start = i;
        while i < b.len() && b[i] != b'%' {
            i += 1;
        }
        out.push_str(&fmt[start..i]);
        if i >= b.len() {
            break;
        }
        i += 1;
        if i >= b.len() {
            return Err("ValueError: incomplete format".into());
        }
        // Only a directly doubled '%' is a literal percent sign.
        if b[i] == b'%' {
            out.push('%');
            i += 1;
            continue;
        }
        let mut value: Option<&Value> = None;
        if b[i] == b'(' {
            if !mapping {
                return Err("TypeError: format requires a mapping".into());
            }
            let mut depth = 1;
            i += 1;
            let kstart = i;
            while i < b.len() {
                match b[i] {
                    b'(' => depth += 1,
                    b')' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            if i >= b.len() {
                return Err("ValueError: incomplete format key".into());
            }
            let key = &fmt[kstart..i];
            i += 1;
            // CPython: after a keyed lookup, the mapping no longer serves as the single
            // positional argument.
            argidx = arglen;
            value = Some(match args {
                Value::Dict(d) => d
                    .iter()
                    .find(|(k, _)| k.as_str() == Some(key))
                    .map(|(_, v)| v)
                    .ok_or_else(|| {
                        let mut m = String::from("KeyError: ");
                        write_str_repr(&mut m, key, false);
                        m
                    })?,
                _ => {
                    return Err(
                        "TypeError: list indices must be integers or slices, not str".into(),
                    )
                }
            });
        }
        let mut spec = PctSpec::default();
        while i < b.len() {
            match b[i] {
                b'-' => spec.left = true,
                b'+' => spec.plus = true,
                b' ' => spec.space = true,
                b'#' => spec.alt = true,
                b'0' => spec.zero = true,
                _ => break,
            }
            i += 1;
        }
        if i < b.len() && b[i] == b'*' {
            let w = next_arg(&mut argidx)?;
            let w = match w {
                Value::Int(w) => *w,
                Value::Bool(w) => *w as i64,
                _ => return Err("TypeError: * wants int".into()),
            };
            if w < 0 {
                spec.left = true;
            }
            spec.width = w.unsigned_abs() as usize;
            i += 1;
        } else {
            while i < b.len() && b[i].is_ascii_digit() {
                spec.width = spec
                    .width
                    .saturating_mul(10)
                    .saturating_add((b[i] - b'0') as usize);
                i += 1;
            }
        }
        if i < b.len() && b[i] == b'.' {
            i += 1;
            let mut p = 0usize;
            if i < b.len() && b[i] == b'*' {
                let v = next_arg(&mut argidx)?;
                p = match v {
                    Value::Int(p) => (*p).max(0) as usize,
                    Value::Bool(p) => *p as usize,
                    _ => return Err("TypeError: * wants int".into()),
                };
                i += 1;
            } else {
                while i < b.len() && b[i].is_ascii_digit() {
                    p = p.saturating_mul(10).saturating_add((b[i] - b'0') as usize);
                    i += 1;
                }
            }
            spec.prec = Some(p);
        }
        check_width(spec.width)?;
        check_width(spec.prec.unwrap_or(0))?;
        // length modifiers are accepted and ignored
        while i < b.len() && matches!(b[i], b'h' | b'l' | b'L') {
            i += 1;
        }
        if i >= b.len() {
            return Err("ValueError: incomplete format".into());
        }
        let conv = fmt[i..].chars().next().unwrap_or('%');
        i += conv.len_utf8();
        let v = match value {
            Some(v) => v,
            None => next_arg(&mut argidx)?,
        };
        let body = percent_one(conv, &spec, v, i - conv.len_utf8())?;
        pad_percent(&mut out, &spec, body);
    }
    if argidx < arglen && !mapping {
        return Err("TypeError: not all arguments converted during string formatting".into());
    }
    Ok(out)
}

/// A formatted number: sign, prefix (`0x`...), digits.
struct NumBody {
    sign: &'static str,
    prefix: &'static str,
    digits: String,
}

enum Body {
    Text(String),
    Num(NumBody),
}

fn int_value(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::Bool(b) => Some(*b as i64),
        _ => None,
    }
}

fn float_value(v: &Value) -> Option<f64> {
    match v {
        Value::Int(i) => Some(*i as f64),
        Value::Bool(b) => Some(*b as i64 as f64),
        Value::Float(f) => Some(*f),
        _ => None,
    }
}

fn sign_of(neg: bool, plus: bool, space: bool) -> &'static str {
    if neg {
        "-"
    } else if plus {
        "+"
    } else if space {
        " "
    } else {
        ""
    }
}

fn percent_one(conv: char, spec: &PctSpec, v: &Value, index: usize) -> Res<Body> {
    Ok(match conv {
        's' | 'r' | 'a' => {
            let mut s = match conv {
                's' => v.py_str(),
                _ => {
                    let mut s = String::new();
                    write_repr(&mut s, v, conv == 'a');
                    s
                }
            };
            if let Some(p) = spec.prec {
                if let Some((idx, _)) = s.char_indices().nth(p) {
                    s.truncate(idx);
                }
            }
            Body::Text(s)
        }
        'c' => Body::Text(match v {
            Value::Int(i) => char::from_u32(u32::try_from(*i).unwrap_or(u32::MAX))
                .ok_or("OverflowError: %c arg not in range(0x110000)")?
                .to_string(),
            Value::Str(s) if s.chars().count() == 1 => s.clone(),
            _ => return Err("TypeError: %c requires int or char".into()),
        }),
        'd' | 'i' | 'u' | 'x' | 'X' | 'o' => {
            let i = match v {
                Value::Float(f) if matches!(conv, 'd' | 'i' | 'u') => {
                    if !f.is_finite() {
                        return Err(format!(
                            "{}: cannot convert float {} to integer",
                            if f.is_nan() {
                                "ValueError"
                            } else {
                                "OverflowError"
                            },
                            float_repr(*f)
                        ));
                    }
                    let t = f.trunc();
                    if t.abs() >= 9.2e18 {
                        return Err("unsupported: integer too large".into());
                    }
                    t as i64
                }
                _ => match int_value(v) {
                    Some(i) => i,
                    None => {
                        return Err(if matches!(conv, 'd' | 'i' | 'u') {
                            format!(
                                "TypeError: %{conv} format: a real number is required, not {}",
                                v.type_name()
                            )
                        } else {
                            format!(
                                "TypeError: %{conv} format: an integer is required, not {}",
                                v.type_name()
                            )
                        })
                    }
                },
            };
            let mag = i.unsigned_abs();
            let mut digits = match conv {
                'x' => format!("{mag:x}"),
                'X' => format!("{mag:X}"),
                'o' => format!("{mag:o}"),
                _ => mag.to_string(),
            };
            if let Some(p) = spec.prec {
                if digits.len() < p {
                    digits = "0".repeat(p - digits.len()) + &digits;
                }
            }
            let prefix = match (spec.alt, conv) {
                (true, 'x') => "0x",
                (true, 'X') => "0X",
                (true, 'o') => "0o",
                _ => "",
            };
            Body::Num(NumBody {
                sign: sign_of(i < 0, spec.plus, spec.space),
                prefix,
                digits,
            })
        }
        'e' | 'E' | 'f' | 'F' | 'g' | 'G' => {
            let f = match float_value(v) {
                Some(f) => f,
                None => {
                    return Err(format!(
                        "TypeError: must be real number, not {}",
                        v.type_name()
                    ))
                }
            };
            let upper = conv.is_ascii_uppercase();
            let prec = spec.prec.unwrap_or(6);
            let mut digits = match non_finite(f, upper) {
                Some(s) => s,
                None => match conv.to_ascii_lowercase() {
                    'e' => exponent(f, prec, upper),
                    'f' => fixed(f, prec),
                    _ => general(f, prec, spec.alt, upper, false),
                },
            };
            if spec.alt && f.is_finite() && !digits.contains('.') {
                // '#' forces a decimal point
                match digits.find(['e', 'E']) {
                    Some(pos) => digits.insert(pos, '.'),
                    None => digits.push('.'),
                }
            }
            Body::Num(NumBody {
                sign: sign_of(f.is_sign_negative() && !f.is_nan(), spec.plus, spec.space),
                prefix: "",
                digits,
            })
        }
        other => {
            return Err(format!(
                "ValueError: unsupported format character '{}' (0x{:x}) at index {}",
                other, other as u32, index
            ))
        }
    })
}

fn pad_percent(out: &mut String, spec: &PctSpec, body: Body) {
    match body {
        Body::Text(s) => {
            let n = char_len(&s);
            if n >= spec.width {
                out.push_str(&s);
            } else if spec.left {
                out.push_str(&s);
                push_n(out, ' ', spec.width - n);
            } else {
                push_n(out, ' ', spec.width - n);
                out.push_str(&s);
            }
        }
        Body::Num(nb) => {
            let n = nb.sign.len() + nb.prefix.len() + nb.digits.len();
            if n >= spec.width {
                out.push_str(nb.sign);
                out.push_str(nb.prefix);
                out.push_str(&nb.digits);
            } else if spec.left {
                out.push_str(nb.sign);
                out.push_str(nb.prefix);
                out.push_str(&nb.digits);
                push_n(out, ' ', spec.width - n);
            } else if spec.zero {
                out.push_str(nb.sign);
                out.push_str(nb.prefix);
                push_n(out, '0', spec.width - n);
                out.push_str(&nb.digits);
            } else {
                push_n(out, ' ', spec.width - n);
                out.push_str(nb.sign);
                out.push_str(nb.prefix);
                out.push_str(&nb.digits);
            }
        }
    }
}

fn push_n(out: &mut String, c: char, n: usize) {
    out.extend(std::iter::repeat_n(c, n));
}

// ----- format spec mini-language -----

struct FmtSpec {
    fill: char,
    align: Option<char>,
    sign: Option<char>,
    alt: bool,
    zero: bool,
    width: usize,
    grouping: Option<char>,
    prec: Option<usize>,
    ty: Option<char>,
}

fn parse_spec(spec: &str) -> Res<FmtSpec> {
    let chars: Vec<char> = spec.chars().collect();
    let mut i = 0;
    let mut s = FmtSpec {
        fill: ' ',
        align: None,
        sign: None,
        alt: false,
        zero: false,
        width: 0,
        grouping: None,
        prec: None,
        ty: None,
    };
    let is_align = |c: char| matches!(c, '<' | '>' | '=' | '^');
    if chars.len() >= 2 && is_align(chars[1]) {
        s.fill = chars[0];
        s.align = Some(chars[1]);
        i = 2;
    } else if !chars.is_empty() && is_align(chars[0]) {
        s.align = Some(chars[0]);
        i = 1;
    }
    if i < chars.len() && matches!(chars[i], '+' | '-' | ' ') {
        s.sign = Some(chars[i]);
        i += 1;
    }
    if i < chars.len() && chars[i] == 'z' {
        i += 1;
    }
    if i < chars.len() && chars[i] == '#' {
        s.alt = true;
        i += 1;
    }
    if i < chars.len() && chars[i] == '0' {
        s.zero = true;
        i += 1;
    }
    while i < chars.len() && chars[i].is_ascii_digit() {
        s.width = s
            .width
            .saturating_mul(10)
            .saturating_add(chars[i] as usize - '0' as usize);
        i += 1;
    }
    if i < chars.len() && matches!(chars[i], ',' | '_') {
        s.grouping = Some(chars[i]);
        i += 1;
    }
    if i < chars.len() && chars[i] == '.' {
        i += 1;
        let st = i;
        let mut p = 0usize;
        while i < chars.len() && chars[i].is_ascii_digit() {
            p = p
                .saturating_mul(10)
                .saturating_add(chars[i] as usize - '0' as usize);
            i += 1;
        }
        if i == st {
            return Err("ValueError: Format specifier missing precision".into());
        }
        s.prec = Some(p);
    }
    if i < chars.len() {
        s.ty = Some(chars[i]);
        i += 1;
    }
    if i < chars.len() {
        return Err("ValueError: Invalid format specifier".into());
    }
    check_width(s.width)?;
    check_width(s.prec.unwrap_or(0))?;
    if s.zero && s.align.is_none() {
        s.fill = '0';
        s.align = Some('=');
    }
    Ok(s)
}

fn group_digits(digits: &str, sep: char, every: usize) -> String {
    let (int_part, rest) = match digits.find(|c: char| !c.is_ascii_alphanumeric()) {
        Some(i) => (&digits[..i], &digits[i..]),
        None => (digits, ""),
    };
    let n = int_part.len();
    let mut out = String::with_capacity(n + n / every + rest.len());
    for (i, c) in int_part.chars().enumerate() {
        if i > 0 && (n - i) % every == 0 {
            out.push(sep);
        }
        out.push(c);
    }
    out.push_str(rest);
    out
}

fn align_out(out: &mut String, s: &FmtSpec, sign_prefix: &str, body: &str, default: char) {
    let n = char_len(sign_prefix) + char_len(body);
    let pad = s.width.saturating_sub(n);
    match s.align.unwrap_or(default) {
        '<' => {
            out.push_str(sign_prefix);
            out.push_str(body);
            push_n(out, s.fill, pad);
        }
        '^' => {
            push_n(out, s.fill, pad / 2);
            out.push_str(sign_prefix);
            out.push_str(body);
            push_n(out, s.fill, pad - pad / 2);
        }
        '=' => {
            out.push_str(sign_prefix);
            push_n(out, s.fill, pad);
            out.push_str(body);
        }
        _ => {
            push_n(out, s.fill, pad);
            out.push_str(sign_prefix);
            out.push_str(body);
        }
    }
}

/// `format(v, spec)`.
pub(crate) fn format_value(out: &mut String, v: &Value, spec: &str) -> Res<()> {
    if spec.is_empty() {
        match v {
            Value::Str(s) => out.push_str(s),
            other => write_str_of(out, other),
        }
        return Ok(());
    }
    let s = parse_spec(spec)?;
    match v {
        Value::Str(text) => {
            if let Some(t) = s.ty {
                if t != 's' {
                    return Err(format!(
                        "ValueError: Unknown format code '{t}' for object of type 'str'"
                    ));
                }
            }
            if s.sign.is_some() {
                return Err("ValueError: Sign not allowed in string format specifier".into());
            }
            if s.alt {
                return Err(
                    "ValueError: Alternate form (#) not allowed in string format specifier".into(),
                );
            }
            if s.align == Some('=') {
                return Err(
                    "ValueError: '=' alignment not allowed in string format specifier".into(),
                );
            }
            if s.grouping.is_some() {
                return Err(format!(
                    "ValueError: Cannot specify '{}' with 's'.",
                    s.grouping.unwrap_or(',')
                ));
            }
            let body: &str = match s.prec {
                Some(p) => match text.char_indices().nth(p) {
                    Some((i, _)) => &text[..i],
                    None => text,
                },
                None => text,
            };
            align_out(out, &s, "", body, '<');
            Ok(())
        }
        Value::Int(_) | Value::Bool(_) => {
            let i = int_value(v).unwrap_or(0);
            match s.ty {
                None | Some('d') | Some('n') | Some('b') | Some('o') | Some('x') | Some('X')
                | Some('c') => {
                    if s.prec.is_some() {
                        return Err(
                            "ValueError: Precision not allowed in integer format specifier".into(),
                        );
                    }
                    let mag = i.unsigned_abs();
                    let ty = s.ty.unwrap_or('d');
                    if ty == 'c' {
                        let c = char::from_u32(u32::try_from(i).unwrap_or(u32::MAX))
                            .ok_or("OverflowError: %c arg not in range(0x110000)")?;
                        align_out(out, &s, "", &c.to_string(), '<');
                        return Ok(());
                    }
                    let mut digits = match ty {
                        'b' => format!("{mag:b}"),
                        'o' => format!("{mag:o}"),
                        'x' => format!("{mag:x}"),
                        'X' => format!("{mag:X}"),
                        _ => mag.to_string(),
                    };
                    if let Some(g) = s.grouping {
                        let every = if matches!(ty, 'd' | 'n') { 3 } else { 4 };
                        digits = group_digits(&digits, g, every);
                    }
                    let mut sp = String::from(num_sign(i < 0, s.sign));
                    if s.alt {
                        sp.push_str(match ty {
                            'b' => "0b",
                            'o' => "0o",
                            'x' => "0x",
                            'X' => "0X",
                            _ => "",
                        });
                    }
                    align_out(out, &s, &sp, &digits, '>');
                    Ok(())
                }
                Some('e' | 'E' | 'f' | 'F' | 'g' | 'G' | '%') => format_float(out, i as f64, &s),
                Some(t) => Err(format!(
                    "ValueError: Unknown format code '{t}' for object of type '{}'",
                    v.type_name()
                )),
            }
        }
        Value::Float(f) => format_float(out, *f, &s),
        other => Err(format!(
            "TypeError: unsupported format string passed to {}.__format__",
            other.type_name()
        )),
    }
}

fn num_sign(neg: bool, sign: Option<char>) -> &'static str {
    if neg {
        "-"
    } else {
        match sign {
            Some('+') => "+",
            Some(' ') => " ",
            _ => "",
        }
    }
}

fn format_float(out: &mut String, f: f64, s: &FmtSpec) -> Res<()> {
    let ty = s.ty;
    let upper = matches!(ty, Some('E' | 'F' | 'G'));
    let mut x = f;
    let mut digits = match non_finite(f, upper) {
        Some(t) => t,
        None => match ty {
            Some('e' | 'E') => exponent(f, s.prec.unwrap_or(6), upper),
            Some('f' | 'F') => fixed(f, s.prec.unwrap_or(6)),
            Some('g' | 'G' | 'n') => general(f, s.prec.unwrap_or(6), s.alt, upper, false),
            Some('%') => {
                x = f * 100.0;
                let mut t = fixed(x, s.prec.unwrap_or(6));
                t.push('%');
                t
            }
            None => match s.prec {
                Some(p) => general(f, p, s.alt, false, true),
                None => float_repr(f.abs()),
            },
            Some(t) => {
                return Err(format!(
                    "ValueError: Unknown format code '{t}' for object of type 'float'"
                ))
            }
        },
    };
    if s.alt && x.is_finite() && !digits.contains('.') && ty != Some('g') && ty != Some('G') {
        match digits.find(['e', 'E', '%']) {
            Some(pos) => digits.insert(pos, '.'),
            None => digits.push('.'),
        }
    }
    if let Some(g) = s.grouping {
        digits = group_digits(&digits, g, 3);
    }
    let sp = num_sign(x.is_sign_negative() && !x.is_nan(), s.sign);
    align_out(out, s, sp, &digits, '>');
    Ok(())
}

fn write_str_of(out: &mut String, v: &Value) {
    match v {
        Value::Str(s) => out.push_str(s),
        other => write_repr(out, other, false),
    }
}

// ----- str.format -----

/// `fmt.format(*args, **kwargs)`.
pub(crate) fn str_format(fmt: &str, args: &[Value], kwargs: &[(&str, Value)]) -> Res<String> {
    let mut out = String::with_capacity(fmt.len() + 16);
    let mut auto: Option<usize> = None;
    let mut manual = false;
    format_into(&mut out, fmt, args, kwargs, &mut auto, &mut manual, 0)?;
    Ok(out)
}

fn format_into(
    out: &mut String,
    fmt: &str,
    args: &[Value],
    kwargs: &[(&str, Value)],
    auto: &mut Option<usize>,
    manual: &mut bool,
    depth: u32,
) -> Res<()> {
    let b = fmt.as_bytes();
    let mut i = 0;
    let mut run = 0;
    while i < b.len() {
        match b[i] {
            b'{' => {
                out.push_str(&fmt[run..i]);
                if i + 1 < b.len() && b[i + 1] == b'{' {
                    out.push('{');
                    i += 2;
                    run = i;
                    continue;
                }
                // find the matching '}'
                let start = i + 1;
                let mut level = 1;
                let mut j = start;
                while j < b.len() {
                    match b[j] {
                        b'{' => level += 1,
                        b'}' => {
                            level -= 1;
                            if level == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    j += 1;
                }
                if j >= b.len() {
                    return Err("ValueError: expected '}' before end of string".into());
                }
                replacement_field(out, &fmt[start..j], args, kwargs, auto, manual, depth)?;
                i = j + 1;
                run = i;
            }
            b'}' => {
                out.push_str(&fmt[run..i]);
                if i + 1 < b.len() && b[i + 1] == b'}' {
                    out.push('}');
                    i += 2;
                    run = i;
                    continue;
                }
                return Err("ValueError: Single '}' encountered in format string".into());
            }
            _ => i += 1,
        }
    }
    out.push_str(&fmt[run..]);
    Ok(())
}

fn replacement_field(
    out: &mut String,
    field: &str,
    args: &[Value],
    kwargs: &[(&str, Value)],
    auto: &mut Option<usize>,
    manual: &mut bool,
    depth: u32,
) -> Res<()> {
    if depth > 1 {
        return Err("ValueError: Max string recursion exceeded".into());
    }
    // split name / conversion / spec (':' or '!' outside brackets)
    let b = field.as_bytes();
    let mut k = 0;
    let mut in_bracket = false;
    while k < b.len() {
        match b[k] {
            b'[' => in_bracket = true,
            b']' => in_bracket = false,
            b':' | b'!' if !in_bracket => break,
            _ => {}
        }
        k += 1;
    }
    let name = &field[..k];
    let mut conv = None;
    let mut spec = "";
    if k < b.len() && b[k] == b'!' {
        if k + 1 >= b.len() {
            return Err("ValueError: end of string while looking for conversion specifier".into());
        }
        let c = field[k + 1..].chars().next().unwrap_or(' ');
        let after = k + 1 + c.len_utf8();
        if after < b.len() && b[after] != b':' {
            return Err("ValueError: expected ':' after conversion specifier".into());
        }
        conv = Some(c);
        if after < b.len() {
            spec = &field[after + 1..];
        }
    } else if k < b.len() {
        spec = &field[k + 1..];
    }
    // first part of the name
    let first_end = name.find(['.', '[']).unwrap_or(name.len());
    let first = &name[..first_end];
    let mut value: &Value = if first.is_empty() {
        if *manual {
            return Err("ValueError: cannot switch from manual field specification to automatic field numbering".into());
        }
        let n = auto.map(|n| n + 1).unwrap_or(0);
        *auto = Some(n);
        args.get(n).ok_or_else(|| {
            format!("IndexError: Replacement index {n} out of range for positional args tuple")
        })?
    } else if first.bytes().all(|c| c.is_ascii_digit()) {
        if auto.is_some() {
            return Err("ValueError: cannot switch from automatic field numbering to manual field specification".into());
        }
        *manual = true;
        let n: usize = first
            .parse()
            .map_err(|_| "ValueError: Too many decimal digits in format string".to_string())?;
        args.get(n).ok_or_else(|| {
            format!("IndexError: Replacement index {n} out of range for positional args tuple")
        })?
    } else {
        kwargs
            .iter()
            .find(|(k, _)| *k == first)
            .map(|(_, v)| v)
            .ok_or_else(|| {
                let mut m = String::from("KeyError: ");
                write_str_repr(&mut m, first, false);
                m
            })?
    };
    // accessors
    let mut rest = &name[first_end..];
    while !rest.is_empty() {
        if rest.starts_with('.') {
            return Err("unsupported: attribute access in format field".into());
        }
        let close = rest
            .find(']')
            .ok_or("ValueError: Missing ']' in format string")?;
        let key = &rest[1..close];
        if key.is_empty() {
            return Err("ValueError: Empty attribute in format string".into());
        }
        rest = &rest[close + 1..];
        if !rest.is_empty() && !rest.starts_with(['.', '[']) {
            return Err(
                "ValueError: Only '.' or '[' may follow ']' in format field specifier".into(),
            );
        }
        value = if key.bytes().all(|c| c.is_ascii_digit()) {
            let n: usize = key.parse().unwrap_or(usize::MAX);
            match value {
                Value::List(v) | Value::Tuple(v) => v.get(n).ok_or_else(|| {
                    format!("IndexError: {} index out of range", value.type_name())
                })?,
                Value::Dict(d) => d
                    .iter()
                    .find(|(k, _)| matches!(k, Value::Int(i) if *i as usize == n && *i >= 0))
                    .map(|(_, v)| v)
                    .ok_or_else(|| format!("KeyError: {n}"))?,
                other => {
                    return Err(format!(
                        "TypeError: '{}' object is not subscriptable",
                        other.type_name()
                    ))
                }
            }
        } else {
            match value {
                Value::Dict(d) => d
                    .iter()
                    .find(|(k, _)| k.as_str() == Some(key))
                    .map(|(_, v)| v)
                    .ok_or_else(|| {
                        let mut m = String::from("KeyError: ");
                        write_str_repr(&mut m, key, false);
                        m
                    })?,
                Value::List(_) | Value::Tuple(_) | Value::Str(_) => {
                    return Err(format!(
                        "TypeError: {} indices must be integers or slices, not str",
                        value.type_name()
                    ))
                }
                other => {
                    return Err(format!(
                        "TypeError: '{}' object is not subscriptable",
                        other.type_name()
                    ))
                }
            }
        };
    }
    // nested fields in the spec
    let spec_owned;
    let spec = if spec.contains('{') {
        let mut s = String::new();
        format_into(&mut s, spec, args, kwargs, auto, manual, depth + 1)?;
        spec_owned = s;
        spec_owned.as_str()
    } else {
        spec
    };
    let converted;
    let value = match conv {
        None => value,
        Some('s') => {
            converted = Value::Str(value.py_str());
            &converted
        }
        Some('r') | Some('a') => {
            let mut s = String::new();
            write_repr(&mut s, value, conv == Some('a'));
            converted = Value::Str(s);
            &converted
        }
        Some(c) => return Err(format!("ValueError: Unknown conversion specifier {c}")),
    };
    format_value(out, value, spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Value {
        Value::Str(x.into())
    }

    fn t(items: Vec<Value>) -> Value {
        Value::Tuple(items)
    }

    fn pct(fmt: &str, args: Value) -> String {
        percent_format(fmt, &args).unwrap_or_else(|e| panic!("{fmt:?}: {e}"))
    }

    fn pct_err(fmt: &str, args: Value) -> String {
        percent_format(fmt, &args).unwrap_err()
    }

    fn fv(v: Value, spec: &str) -> String {
        let mut out = String::new();
        format_value(&mut out, &v, spec).unwrap_or_else(|e| panic!("{spec:?}: {e}"));
        out
    }

    #[test]
    fn float_repr_matches_python() {
        for (f, want) in [
            (0.98, "0.98"),
            (1.0, "1.0"),
            (-2.5, "-2.5"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (123456789012345678.0, "1.2345678901234568e+17"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (-0.0, "-0.0"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (f64::NAN, "nan"),
            (1e300, "1e+300"),
            (5e-324, "5e-324"),
        ] {
            assert_eq!(float_repr(f), want, "{f}");
        }
    }

    #[test]
    fn str_repr_quotes_and_escapes() {
        let r = |x: &str| {
            let mut o = String::new();
            write_str_repr(&mut o, x, false);
            o
        };
        assert_eq!(r("abc"), "'abc'");
        assert_eq!(r("it's"), "\"it's\"");
        assert_eq!(r("'\""), "'\\'\"'");
        assert_eq!(r("a\\b\t\n\r\x01\x7f"), "'a\\\\b\\t\\n\\r\\x01\\x7f'");
        assert_eq!(r("é\u{a0}\u{2028}😀"), "'é\\xa0\\u2028😀'");
        let mut o = String::new();
        write_str_repr(&mut o, "é😀", true);
        assert_eq!(o, "'\\xe9\\U0001f600'");
    }

    #[test]
    fn percent_basic() {
        assert_eq!(pct("%s-%s", t(vec![s("GCC"), s("12.3.0")])), "GCC-12.3.0");
        assert_eq!(pct("v%s", s("1.0")), "v1.0");
        assert_eq!(pct("%s", t(vec![t(vec![Value::Int(1)])])), "(1,)");
        assert_eq!(pct("%s", Value::List(vec![Value::Int(1)])), "[1]");
        assert_eq!(pct("%d%%", Value::Int(5)), "5%");
        assert_eq!(
            pct("%i|%d", t(vec![Value::Float(3.9), Value::Bool(true)])),
            "3|1"
        );
        assert_eq!(pct("%r", s("x")), "'x'");
        assert_eq!(
            pct("%x %X %#x %o %#o", t(vec![Value::Int(255); 5])),
            "ff FF 0xff 377 0o377"
        );
        assert_eq!(
            pct("%5s|%-5s|%.2s", t(vec![s("ab"), s("ab"), s("abc")])),
            "   ab|ab   |ab"
        );
        assert_eq!(
            pct(
                "%05d|%+d|% d|%-4d|",
                t(vec![
                    Value::Int(-42),
                    Value::Int(3),
                    Value::Int(3),
                    Value::Int(7)
                ])
            ),
            "-0042|+3| 3|7   |"
        );
        assert_eq!(pct("%.3d", Value::Int(7)), "007");
        assert_eq!(pct("%*d", t(vec![Value::Int(4), Value::Int(7)])), "   7");
        assert_eq!(pct("%c%c", t(vec![Value::Int(65), s("b")])), "Ab");
        assert_eq!(
            pct(
                "%(name)s-%(version)s",
                Value::Dict(vec![(s("name"), s("x")), (s("version"), Value::Int(1))])
            ),
            "x-1"
        );
        assert_eq!(pct("no args", Value::Dict(vec![])), "no args");
        let d = Value::Dict(vec![(s("a"), Value::Int(1))]);
        assert_eq!(pct("%s %(a)s", d.clone()), "{'a': 1} 1");
        assert_eq!(pct("%(a)s %(a)s", d.clone()), "1 1");
        assert!(pct_err("%(a)s %s", d.clone()).contains("not enough arguments"));
        assert!(pct_err("%(a)s", Value::List(vec![])).contains("list indices"));
        assert_eq!(pct("no args", t(vec![])), "no args");
        assert_eq!(pct("%%(version)s-%s", s("1")), "%(version)s-1");
    }

    #[test]
    fn percent_floats() {
        assert_eq!(pct("%f", Value::Float(0.98)), "0.980000");
        assert_eq!(pct("%.2f", Value::Float(0.125)), "0.12");
        assert_eq!(pct("%.0f", Value::Float(2.5)), "2");
        assert_eq!(pct("%8.3f|", Value::Float(-1.23456)), "  -1.235|");
        assert_eq!(pct("%e", Value::Float(12345.678)), "1.234568e+04");
        assert_eq!(pct("%.2E", Value::Float(0.000123)), "1.23E-04");
        assert_eq!(
            pct(
                "%g|%g|%g|%g",
                t(vec![
                    Value::Float(0.0001),
                    Value::Float(1e-5),
                    Value::Float(123456.0),
                    Value::Float(1234567.0)
                ])
            ),
            "0.0001|1e-05|123456|1.23457e+06"
        );
        assert_eq!(pct("%#g", Value::Float(1.0)), "1.00000");
        assert_eq!(pct("%s", Value::Float(1e22)), "1e+22");
        assert_eq!(pct("%f", Value::Int(2)), "2.000000");
        assert_eq!(
            pct(
                "%f|%F",
                t(vec![Value::Float(f64::INFINITY), Value::Float(f64::NAN)])
            ),
            "inf|NAN"
        );
    }

    #[test]
    fn percent_errors() {
        assert!(pct_err("%s %s", s("a")).contains("not enough arguments"));
        assert!(pct_err("%s", t(vec![s("a"), s("b")])).contains("not all arguments converted"));
        assert!(pct_err("abc", s("a")).contains("not all arguments converted"));
        assert!(pct_err("abc", Value::Int(1)).contains("not all arguments converted"));
        assert!(pct_err("%(version)s", s("1")).contains("format requires a mapping"));
        assert!(pct_err("%(v)s", Value::Dict(vec![])).contains("KeyError: 'v'"));
        assert!(pct_err("%d", s("1")).contains("real number is required, not str"));
        assert!(pct_err("%x", Value::Float(1.0)).contains("integer is required"));
        assert!(pct_err("%f", s("x")).contains("must be real number"));
        assert!(pct_err("%y", Value::Int(1)).contains("unsupported format character 'y'"));
        assert!(pct_err("abc %", t(vec![])).contains("incomplete format"));
        assert!(pct_err("%c", s("ab")).contains("%c requires"));
        // '%' after flags or a width is not a literal percent sign
        assert!(pct_err("%5%", t(vec![])).contains("not enough arguments"));
        assert!(pct_err("%5%", t(vec![Value::Int(1)])).contains("unsupported format character '%'"));
        assert!(pct_err("%999999999999s", s("a")).contains("too large"));
    }

    #[test]
    fn format_spec() {
        assert_eq!(fv(s("ab"), ">5"), "   ab");
        assert_eq!(fv(s("ab"), "*^6"), "**ab**");
        assert_eq!(fv(s("ab"), "<4"), "ab  ");
        assert_eq!(fv(s("abcdef"), ".3"), "abc");
        assert_eq!(fv(Value::Int(42), "05"), "00042");
        assert_eq!(fv(Value::Int(-42), "=+6"), "-   42");
        assert_eq!(fv(Value::Int(1234567), ","), "1,234,567");
        assert_eq!(fv(Value::Int(255), "#x"), "0xff");
        assert_eq!(fv(Value::Int(5), "b"), "101");
        assert_eq!(fv(Value::Int(3), ".2f"), "3.00");
        assert_eq!(fv(Value::Bool(true), ""), "True");
        assert_eq!(fv(Value::Bool(true), ">3"), "  1");
        assert_eq!(fv(Value::Float(1.23456), ".2f"), "1.23");
        assert_eq!(fv(Value::Float(0.5), ".0%"), "50%");
        assert_eq!(fv(Value::Float(1.5), ""), "1.5");
        assert_eq!(fv(Value::Float(1.5), "8"), "     1.5");
        assert_eq!(fv(Value::Float(12.0), ".3"), "12.0");
        assert_eq!(fv(Value::Float(100.0), ".3"), "1e+02");
        assert_eq!(fv(Value::Float(1234.5), ",.1f"), "1,234.5");
        assert_eq!(fv(Value::None, ""), "None");
        let mut out = String::new();
        assert!(format_value(&mut out, &Value::None, ">5")
            .unwrap_err()
            .contains("NoneType.__format__"));
        assert!(format_value(&mut out, &s("a"), "d")
            .unwrap_err()
            .contains("Unknown format code 'd'"));
        assert!(format_value(&mut out, &Value::Int(1), ".2")
            .unwrap_err()
            .contains("Precision not allowed"));
        assert!(format_value(&mut out, &Value::Float(1.0), "d")
            .unwrap_err()
            .contains("Unknown format code"));
        assert!(format_value(&mut out, &s("a"), "+")
            .unwrap_err()
            .contains("Sign not allowed"));
        assert!(format_value(&mut out, &s("a"), "5x5")
            .unwrap_err()
            .contains("Invalid format specifier"));
    }

    #[test]
    fn str_format_fields() {
        let args = [s("a"), Value::Int(2)];
        let kw = [
            ("name", s("GCC")),
            ("d", Value::Dict(vec![(s("k"), s("v"))])),
        ];
        let f = |fmt: &str| str_format(fmt, &args, &kw);
        assert_eq!(f("{}-{}").unwrap(), "a-2");
        assert_eq!(f("{1}{0}{1}").unwrap(), "2a2");
        assert_eq!(f("{name}/{0}").unwrap(), "GCC/a");
        assert_eq!(f("{{{}}}").unwrap(), "{a}");
        assert_eq!(f("{!r:>5}").unwrap(), "  'a'");
        assert_eq!(f("{name:>{1}}").unwrap(), "GCC");
        assert_eq!(f("{d[k]}").unwrap(), "v");
        assert_eq!(f("{1:03d}").unwrap(), "002");
        assert!(f("{2}").unwrap_err().contains("IndexError"));
        assert!(f("{}{0}").unwrap_err().contains("cannot switch"));
        assert!(f("{0}{}").unwrap_err().contains("cannot switch"));
        assert!(f("{nope}").unwrap_err().contains("KeyError: 'nope'"));
        assert!(f("a}").unwrap_err().contains("Single '}'"));
        assert!(f("{").unwrap_err().contains("expected '}'"));
        assert!(f("{name.upper}").unwrap_err().contains("attribute"));
        assert!(f("{!x}").unwrap_err().contains("conversion"));
    }
}
