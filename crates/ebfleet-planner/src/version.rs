//! Version comparison exactly as EasyBuild's `LooseVersion` (`tools/loose_version.py`).
//!
//! A version splits into runs of digits, runs of lowercase letters and the
//! pieces between them (dots dropped). Numbers compare as numbers; a number
//! against a word compares both as strings, so `2023.09 < 2023a` and
//! `1.0rc1 > 1.0`; a missing component counts as `0` or `""`, so
//! `1.0 == 1.0.0`.

use std::cmp::Ordering;
use std::fmt;

/// One component of a loose version.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part<'a> {
    /// A run of ASCII digits, kept as text so any length compares correctly.
    Num(&'a str),
    Word(&'a str),
}

/// A version string with EasyBuild's ordering.
#[derive(Clone, Debug, Eq)]
pub struct LooseVersion(String);

impl LooseVersion {
    pub fn new(version: impl Into<String>) -> Self {
        LooseVersion(version.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LooseVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq for LooseVersion {
    fn eq(&self, other: &Self) -> bool {
        compare(&self.0, &other.0) == Ordering::Equal
    }
}

impl PartialOrd for LooseVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for LooseVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        compare(&self.0, &other.0)
    }
}

/// Split like `re.split(r'(\d+|[a-z]+|\.)')`, keeping non-empty pieces but dots.
fn parts<'a>(version: &'a str) -> Vec<Part<'a>> {
    let bytes = version.as_bytes();
    let mut out = Vec::new();
    let mut other_start: Option<usize> = None;
    let mut i = 0;
    let flush = |out: &mut Vec<Part<'a>>, start: &mut Option<usize>, end: usize| {
        if let Some(s) = start.take() {
            out.push(Part::Word(&version[s..end]));
        }
    };
    while i < bytes.len() {
        let b = bytes[i];
        if b.is_ascii_digit() || b.is_ascii_lowercase() || b == b'.' {
            flush(&mut out, &mut other_start, i);
            let start = i;
            if b == b'.' {
                i += 1;
                continue;
            }
            let digit = b.is_ascii_digit();
            while i < bytes.len()
                && (if digit {
                    bytes[i].is_ascii_digit()
                } else {
                    bytes[i].is_ascii_lowercase()
                })
            {
                i += 1;
            }
            let run = &version[start..i];
            out.push(if digit {
                Part::Num(run)
            } else {
                Part::Word(run)
            });
        } else {
            if other_start.is_none() {
                other_start = Some(i);
            }
            // Step over a whole UTF-8 character.
            i += version[i..].chars().next().map_or(1, char::len_utf8);
        }
    }
    flush(&mut out, &mut other_start, bytes.len());
    out
}

fn cmp_numbers(a: &str, b: &str) -> Ordering {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// Python's `str(int(x))` of a digit run: leading zeros dropped.
fn number_text(n: &str) -> &str {
    let t = n.trim_start_matches('0');
    if t.is_empty() {
        "0"
    } else {
        t
    }
}

/// Compare two version strings the way `LooseVersion._cmp` does.
pub fn compare(a: &str, b: &str) -> Ordering {
    let (pa, pb) = (parts(a), parts(b));
    let n = pa.len().max(pb.len());
    for k in 0..n {
        let ord = match (pa.get(k), pb.get(k)) {
            (Some(Part::Num(x)), Some(Part::Num(y))) => cmp_numbers(x, y),
            (Some(Part::Word(x)), Some(Part::Word(y))) => x.cmp(y),
            (Some(Part::Num(x)), Some(Part::Word(y))) => number_text(x).cmp(y),
            (Some(Part::Word(x)), Some(Part::Num(y))) => (*x).cmp(number_text(y)),
            // A missing component is 0 against a number and "" against a word.
            (None, Some(Part::Num(y))) => cmp_numbers("0", y),
            (None, Some(Part::Word(y))) => "".cmp(y),
            (Some(Part::Num(x)), None) => cmp_numbers(x, "0"),
            (Some(Part::Word(x)), None) => (*x).cmp(""),
            (None, None) => Ordering::Equal,
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lt(a: &str, b: &str) {
        assert_eq!(compare(a, b), Ordering::Less, "{a} < {b}");
        assert_eq!(compare(b, a), Ordering::Greater, "{b} > {a}");
    }

    #[test]
    fn numbers_compare_numerically() {
        lt("1.9", "1.10");
        lt("2.2.9", "2.10");
        lt("9", "10");
        lt("12.3.0", "13.2.0");
        lt("99999999999999999999999", "100000000000000000000000");
    }

    #[test]
    fn trailing_zeros_are_equal() {
        assert_eq!(compare("1.0", "1.0.0"), Ordering::Equal);
        assert_eq!(compare("1", "1.0"), Ordering::Equal);
        assert_eq!(compare("01.2", "1.2"), Ordering::Equal);
    }

    #[test]
    fn mixed_types_compare_as_strings() {
        // "09" is the number 9, and "9" < "a" as strings.
        lt("2023.09", "2023a");
        lt("2023a", "2023b");
        lt("1.0", "1.0rc1");
        // A number against a word: "2" > "1a"? compares "2" vs "b" etc.
        lt("1.0.a", "1.0.b");
        lt("1.0.10", "1.0.a");
    }

    #[test]
    fn other_characters_form_their_own_pieces() {
        // '-' is not a separator: "1.0-2" is [1, 0, '-', 2].
        assert_eq!(
            parts("1.0-2"),
            vec![
                Part::Num("1"),
                Part::Num("0"),
                Part::Word("-"),
                Part::Num("2")
            ]
        );
        // Uppercase letters are not word runs; they stay as one piece.
        assert_eq!(
            parts("5.0RC2"),
            vec![
                Part::Num("5"),
                Part::Num("0"),
                Part::Word("RC"),
                Part::Num("2")
            ]
        );
        // "1.0-2" vs "1.0.2": '-' vs 2 compares "-" < "2".
        lt("1.0-2", "1.0.2");
    }

    #[test]
    fn ordering_is_usable_for_sorting() {
        let mut v: Vec<LooseVersion> = ["3.11.3", "3.9.5", "3.10.4", "3.12.3"]
            .into_iter()
            .map(LooseVersion::new)
            .collect();
        v.sort();
        let s: Vec<&str> = v.iter().map(LooseVersion::as_str).collect();
        assert_eq!(s, ["3.9.5", "3.10.4", "3.11.3", "3.12.3"]);
    }
}
