//! Tokenizer: Python's logical lines, INDENT/DEDENT, bracket depth, string and number
//! literals. Tokens carry byte offsets into the source; string bodies are decoded by the
//! parser.

use super::{PyError, MAX_NESTING};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kw {
    False,
    None,
    True,
    And,
    As,
    Assert,
    Async,
    Await,
    Break,
    Class,
    Continue,
    Def,
    Del,
    Elif,
    Else,
    Except,
    Finally,
    For,
    From,
    Global,
    If,
    Import,
    In,
    Is,
    Lambda,
    Nonlocal,
    Not,
    Or,
    Pass,
    Raise,
    Return,
    Try,
    While,
    With,
    Yield,
}

impl Kw {
    fn from_word(w: &[u8]) -> Option<Kw> {
        Some(match w {
            b"False" => Kw::False,
            b"None" => Kw::None,
            b"True" => Kw::True,
            b"and" => Kw::And,
            b"as" => Kw::As,
            b"assert" => Kw::Assert,
            b"async" => Kw::Async,
            b"await" => Kw::Await,
            b"break" => Kw::Break,
            b"class" => Kw::Class,
            b"continue" => Kw::Continue,
            b"def" => Kw::Def,
            b"del" => Kw::Del,
            b"elif" => Kw::Elif,
            b"else" => Kw::Else,
            b"except" => Kw::Except,
            b"finally" => Kw::Finally,
            b"for" => Kw::For,
            b"from" => Kw::From,
            b"global" => Kw::Global,
            b"if" => Kw::If,
            b"import" => Kw::Import,
            b"in" => Kw::In,
            b"is" => Kw::Is,
            b"lambda" => Kw::Lambda,
            b"nonlocal" => Kw::Nonlocal,
            b"not" => Kw::Not,
            b"or" => Kw::Or,
            b"pass" => Kw::Pass,
            b"raise" => Kw::Raise,
            b"return" => Kw::Return,
            b"try" => Kw::Try,
            b"while" => Kw::While,
            b"with" => Kw::With,
            b"yield" => Kw::Yield,
            _ => return None,
        })
    }

    pub(crate) fn text(self) -> &'static str {
        match self {
            Kw::False => "False",
            Kw::None => "None",
            Kw::True => "True",
            Kw::And => "and",
            Kw::As => "as",
            Kw::Assert => "assert",
            Kw::Async => "async",
            Kw::Await => "await",
            Kw::Break => "break",
            Kw::Class => "class",
            Kw::Continue => "continue",
            Kw::Def => "def",
            Kw::Del => "del",
            Kw::Elif => "elif",
            Kw::Else => "else",
            Kw::Except => "except",
            Kw::Finally => "finally",
            Kw::For => "for",
            Kw::From => "from",
            Kw::Global => "global",
            Kw::If => "if",
            Kw::Import => "import",
            Kw::In => "in",
            Kw::Is => "is",
            Kw::Lambda => "lambda",
            Kw::Nonlocal => "nonlocal",
            Kw::Not => "not",
            Kw::Or => "or",
            Kw::Pass => "pass",
            Kw::Raise => "raise",
            Kw::Return => "return",
            Kw::Try => "try",
            Kw::While => "while",
            Kw::With => "with",
            Kw::Yield => "yield",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    LParen,
    RParen,
    LBracket,
    RBracket,
    LBrace,
    RBrace,
    Comma,
    Colon,
    Dot,
    Semi,
    At,
    Assign,
    Arrow,
    Walrus,
    Ellipsis,
    PlusEq,
    MinusEq,
    StarEq,
    SlashEq,
    DSlashEq,
    PercentEq,
    DStarEq,
    ShlEq,
    ShrEq,
    AmpEq,
    PipeEq,
    CaretEq,
    AtEq,
    EqEq,
    NotEq,
    Lt,
    Gt,
    Le,
    Ge,
    Plus,
    Minus,
    Star,
    Slash,
    DSlash,
    Percent,
    DStar,
    Tilde,
    Amp,
    Pipe,
    Caret,
    Shl,
    Shr,
    /// `!` — only meaningful inside f-string replacement fields.
    Bang,
}

impl Op {
    pub(crate) fn text(self) -> &'static str {
        match self {
            Op::LParen => "(",
            Op::RParen => ")",
            Op::LBracket => "[",
            Op::RBracket => "]",
            Op::LBrace => "{",
            Op::RBrace => "}",
            Op::Comma => ",",
            Op::Colon => ":",
            Op::Dot => ".",
            Op::Semi => ";",
            Op::At => "@",
            Op::Assign => "=",
            Op::Arrow => "->",
            Op::Walrus => ":=",
            Op::Ellipsis => "...",
            Op::PlusEq => "+=",
            Op::MinusEq => "-=",
            Op::StarEq => "*=",
            Op::SlashEq => "/=",
            Op::DSlashEq => "//=",
            Op::PercentEq => "%=",
            Op::DStarEq => "**=",
            Op::ShlEq => "<<=",
            Op::ShrEq => ">>=",
            Op::AmpEq => "&=",
            Op::PipeEq => "|=",
            Op::CaretEq => "^=",
            Op::AtEq => "@=",
            Op::EqEq => "==",
            Op::NotEq => "!=",
            Op::Lt => "<",
            Op::Gt => ">",
            Op::Le => "<=",
            Op::Ge => ">=",
            Op::Plus => "+",
            Op::Minus => "-",
            Op::Star => "*",
            Op::Slash => "/",
            Op::DSlash => "//",
            Op::Percent => "%",
            Op::DStar => "**",
            Op::Tilde => "~",
            Op::Amp => "&",
            Op::Pipe => "|",
            Op::Caret => "^",
            Op::Shl => "<<",
            Op::Shr => ">>",
            Op::Bang => "!",
        }
    }
}

/// A string literal token: prefix flags and the byte range of the body (between quotes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StrTok {
    pub raw: bool,
    pub fstr: bool,
    pub bytes: bool,
    pub body_start: u32,
    pub body_end: u32,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Tok {
    Name,
    Kw(Kw),
    Int(i64),
    Float(f64),
    Str(StrTok),
    Op(Op),
    Newline,
    Indent,
    Dedent,
    Eof,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Token {
    pub tok: Tok,
    pub start: u32,
    pub end: u32,
    pub line: u32,
}

fn syntax(line: u32, msg: impl std::fmt::Display) -> PyError {
    PyError::new(line, format!("SyntaxError: {msg}"))
}

/// Tokenize a whole module.
pub(crate) fn tokenize(src: &str) -> Result<Vec<Token>, PyError> {
    if src.len() > u32::MAX as usize / 2 {
        return Err(syntax(1, "source too large"));
    }
    let mut lx = Lexer::new(src, 0, src.len(), 1, false);
    let mut out = Vec::with_capacity(src.len() / 8 + 16);
    loop {
        let t = lx.next()?;
        out.push(t);
        if t.tok == Tok::Eof {
            return Ok(out);
        }
    }
}

/// Tokenize the expression of an f-string replacement field, `src[start..end]`, as if it
/// were inside parentheses (newlines are insignificant, no indentation).
pub(crate) fn tokenize_inner(
    src: &str,
    start: usize,
    end: usize,
    line: u32,
) -> Result<Vec<Token>, PyError> {
    let mut lx = Lexer::new(src, start, end, line, true);
    let mut out = Vec::new();
    loop {
        let t = lx.next()?;
        out.push(t);
        if t.tok == Tok::Eof {
            return Ok(out);
        }
    }
}

struct Lexer<'s> {
    b: &'s [u8],
    src: &'s str,
    pos: usize,
    end: usize,
    line: u32,
    /// Open brackets with the line they were opened on.
    parens: Vec<(u8, u32)>,
    /// Indentation stack: (column with tabs to 8, column with tabs as 1).
    indents: Vec<(u32, u32)>,
    pending_dedents: u32,
    at_line_start: bool,
    line_has_tokens: bool,
    inner: bool,
    eof_newline_done: bool,
}

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c >= 0x80
}

fn is_ident_cont(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80
}

impl<'s> Lexer<'s> {
    fn new(src: &'s str, start: usize, end: usize, line: u32, inner: bool) -> Self {
        Lexer {
            b: src.as_bytes(),
            src,
            pos: start,
            end,
            line,
            parens: if inner {
                vec![(b'(', line)]
            } else {
                Vec::new()
            },
            indents: vec![(0, 0)],
            pending_dedents: 0,
            at_line_start: !inner,
            line_has_tokens: false,
            inner,
            eof_newline_done: false,
        }
    }

    #[inline]
    fn peek(&self, off: usize) -> u8 {
        let p = self.pos + off;
        if p < self.end {
            self.b[p]
        } else {
            0
        }
    }

    fn tok(&mut self, tok: Tok, start: usize, line: u32) -> Token {
        self.line_has_tokens = true;
        Token {
            tok,
            start: start as u32,
            end: self.pos as u32,
            line,
        }
    }

    fn next(&mut self) -> Result<Token, PyError> {
        if self.pending_dedents > 0 {
            self.pending_dedents -= 1;
            return Ok(self.mark(Tok::Dedent));
        }
        if self.at_line_start && self.parens.is_empty() {
            if let Some(t) = self.indentation()? {
                return Ok(t);
            }
        }
        loop {
            // Skip blanks.
            while self.pos < self.end && matches!(self.b[self.pos], b' ' | b'\t' | 0x0c) {
                self.pos += 1;
            }
            if self.pos >= self.end {
                return self.at_eof();
            }
            let c = self.b[self.pos];
            match c {
                b'#' => {
                    if self.inner {
                        return Err(syntax(
                            self.line,
                            "f-string expression part cannot include '#'",
                        ));
                    }
                    while self.pos < self.end && self.b[self.pos] != b'\n' {
                        self.pos += 1;
                    }
                }
                b'\n' => {
                    self.pos += 1;
                    let line = self.line;
                    self.line += 1;
                    if self.parens.is_empty() {
                        self.at_line_start = true;
                        let t = Token {
                            tok: Tok::Newline,
                            start: (self.pos - 1) as u32,
                            end: self.pos as u32,
                            line,
                        };
                        self.line_has_tokens = false;
                        // `indentation` runs when the next token is requested.
                        return Ok(t);
                    }
                }
                b'\\' => {
                    if self.inner {
                        return Err(syntax(
                            self.line,
                            "f-string expression part cannot include a backslash",
                        ));
                    }
                    if self.peek(1) == b'\n' {
                        self.pos += 2;
                        self.line += 1;
                    } else if self.pos + 1 >= self.end {
                        return Err(syntax(self.line, "unexpected EOF while parsing"));
                    } else {
                        return Err(syntax(
                            self.line,
                            "unexpected character after line continuation character",
                        ));
                    }
                }
                b'"' | b'\'' => return self.string(self.pos, 0, StrFlags::default()),
                b'0'..=b'9' => return self.number(),
                b'.' if self.peek(1).is_ascii_digit() => return self.number(),
                _ if is_ident_start(c) => return self.word(),
                _ => return self.operator(),
            }
        }
    }

    fn mark(&self, tok: Tok) -> Token {
        Token {
            tok,
            start: self.pos as u32,
            end: self.pos as u32,
            line: self.line,
        }
    }

    /// At the start of a logical line outside brackets: skip blank/comment lines, measure
    /// the indentation and produce INDENT/DEDENT tokens.
    fn indentation(&mut self) -> Result<Option<Token>, PyError> {
        loop {
            let mut col: u32 = 0;
            let mut alt: u32 = 0;
            while self.pos < self.end {
                match self.b[self.pos] {
                    b' ' => {
                        col += 1;
                        alt += 1;
                    }
                    b'\t' => {
                        col = (col / 8 + 1) * 8;
                        alt += 1;
                    }
                    0x0c => {
                        col = 0;
                        alt = 0;
                    }
                    _ => break,
                }
                self.pos += 1;
            }
            if self.pos >= self.end {
                return Ok(None);
            }
            match self.b[self.pos] {
                b'#' => {
                    while self.pos < self.end && self.b[self.pos] != b'\n' {
                        self.pos += 1;
                    }
                    continue;
                }
                b'\n' => {
                    self.pos += 1;
                    self.line += 1;
                    continue;
                }
                _ => {}
            }
            self.at_line_start = false;
            let (top, top_alt) = *self.indents.last().unwrap_or(&(0, 0));
            if col == top {
                if alt != top_alt {
                    return Err(tab_error(self.line));
                }
                return Ok(None);
            }
            if col > top {
                if alt <= top_alt {
                    return Err(tab_error(self.line));
                }
                if self.indents.len() > MAX_NESTING as usize {
                    return Err(PyError::new(
                        self.line,
                        "IndentationError: too many levels of indentation",
                    ));
                }
                self.indents.push((col, alt));
                return Ok(Some(self.mark(Tok::Indent)));
            }
            let mut n = 0;
            while self.indents.len() > 1 && col < self.indents[self.indents.len() - 1].0 {
                self.indents.pop();
                n += 1;
            }
            let (top, top_alt) = *self.indents.last().unwrap_or(&(0, 0));
            if col != top {
                return Err(PyError::new(
                    self.line,
                    "IndentationError: unindent does not match any outer indentation level",
                ));
            }
            if alt != top_alt {
                return Err(tab_error(self.line));
            }
            self.pending_dedents = n - 1;
            return Ok(Some(self.mark(Tok::Dedent)));
        }
    }

    fn at_eof(&mut self) -> Result<Token, PyError> {
        if self.inner {
            if self.parens.len() > 1 {
                let (c, line) = self.parens[self.parens.len() - 1];
                return Err(syntax(line, format!("'{}' was never closed", c as char)));
            }
            return Ok(self.mark(Tok::Eof));
        }
        if let Some(&(c, line)) = self.parens.last() {
            return Err(syntax(line, format!("'{}' was never closed", c as char)));
        }
        if self.line_has_tokens && !self.eof_newline_done {
            self.eof_newline_done = true;
            self.line_has_tokens = false;
            return Ok(self.mark(Tok::Newline));
        }
        if self.indents.len() > 1 {
            self.indents.pop();
            return Ok(self.mark(Tok::Dedent));
        }
        Ok(self.mark(Tok::Eof))
    }

    fn word(&mut self) -> Result<Token, PyError> {
        let start = self.pos;
        while self.pos < self.end && is_ident_cont(self.b[self.pos]) {
            self.pos += 1;
        }
        let w = &self.b[start..self.pos];
        if w.len() <= 2 && matches!(self.peek(0), b'"' | b'\'') {
            let mut flags = StrFlags::default();
            let mut ok = true;
            for &ch in w {
                match ch.to_ascii_lowercase() {
                    b'r' if !flags.raw => flags.raw = true,
                    b'f' if !flags.fstr && !flags.bytes => flags.fstr = true,
                    b'b' if !flags.bytes && !flags.fstr => flags.bytes = true,
                    b'u' if w.len() == 1 => {}
                    _ => ok = false,
                }
            }
            if ok {
                return self.string(start, w.len(), flags);
            }
        }
        if w.iter().any(|&c| c >= 0x80) {
            // Validate a non-ASCII identifier (approximately XID_Start/XID_Continue).
            let text = &self.src[start..self.pos];
            for (i, ch) in text.char_indices() {
                let ok = ch == '_'
                    || ch.is_alphabetic()
                    || (i > 0 && (ch.is_alphanumeric() || ch.is_ascii_digit()));
                if !ok {
                    return Err(syntax(
                        self.line,
                        format!("invalid character '{ch}' (U+{:04X})", ch as u32),
                    ));
                }
            }
        }
        let tok = match Kw::from_word(w) {
            Some(k) => Tok::Kw(k),
            None => Tok::Name,
        };
        let line = self.line;
        Ok(self.tok(tok, start, line))
    }

    fn string(
        &mut self,
        start: usize,
        prefix_len: usize,
        flags: StrFlags,
    ) -> Result<Token, PyError> {
        let line = self.line;
        self.pos = start + prefix_len;
        let q = self.b[self.pos];
        let triple = self.peek(1) == q && self.peek(2) == q;
        self.pos += if triple { 3 } else { 1 };
        let body_start = self.pos;
        let body_end;
        loop {
            if self.pos >= self.end {
                let what = if triple {
                    "unterminated triple-quoted string literal"
                } else {
                    "unterminated string literal"
                };
                return Err(syntax(
                    line,
                    format!("{what} (detected at line {})", self.line),
                ));
            }
            let c = self.b[self.pos];
            if c == b'\\' {
                if self.peek(1) == b'\n' {
                    self.line += 1;
                }
                self.pos += 2;
                continue;
            }
            if c == b'\n' {
                if !triple {
                    return Err(syntax(
                        line,
                        format!(
                            "unterminated string literal (detected at line {})",
                            self.line
                        ),
                    ));
                }
                self.line += 1;
            } else if c == q && (!triple || (self.peek(1) == q && self.peek(2) == q)) {
                body_end = self.pos;
                self.pos += if triple { 3 } else { 1 };
                break;
            }
            self.pos += 1;
        }
        if self.pos > self.end {
            // A backslash as the very last byte.
            return Err(syntax(line, "unterminated string literal"));
        }
        let st = StrTok {
            raw: flags.raw,
            fstr: flags.fstr,
            bytes: flags.bytes,
            body_start: body_start as u32,
            body_end: body_end as u32,
        };
        Ok(self.tok(Tok::Str(st), start, line))
    }

    fn digits(&mut self, radix: u32) -> Result<(), PyError> {
        // digits with single underscores between them
        let mut last_us = false;
        let mut any = false;
        while self.pos < self.end {
            let c = self.b[self.pos];
            if c == b'_' {
                if last_us || !any {
                    return Err(syntax(self.line, "invalid decimal literal"));
                }
                last_us = true;
            } else if (c as char).is_digit(radix) {
                last_us = false;
                any = true;
            } else {
                break;
            }
            self.pos += 1;
        }
        if last_us {
            return Err(syntax(self.line, "invalid decimal literal"));
        }
        Ok(())
    }

    fn number(&mut self) -> Result<Token, PyError> {
        let start = self.pos;
        let line = self.line;
        let c1 = self.peek(1).to_ascii_lowercase();
        if self.b[self.pos] == b'0' && matches!(c1, b'x' | b'o' | b'b') {
            let radix = match c1 {
                b'x' => 16,
                b'o' => 8,
                _ => 2,
            };
            self.pos += 2;
            if self.peek(0) == b'_' {
                self.pos += 1;
            }
            let dstart = self.pos;
            self.digits(radix)?;
            if self.pos == dstart || (self.pos < self.end && is_ident_cont(self.b[self.pos])) {
                return Err(syntax(line, "invalid number literal"));
            }
            let text: String = self.src[dstart..self.pos]
                .chars()
                .filter(|&c| c != '_')
                .collect();
            let v = i64::from_str_radix(&text, radix).map_err(|_| too_big(line))?;
            return Ok(self.tok(Tok::Int(v), start, line));
        }
        let mut is_float = false;
        if self.b[self.pos] != b'.' {
            self.digits(10)?;
        }
        if self.peek(0) == b'.' {
            is_float = true;
            self.pos += 1;
            if self.peek(0).is_ascii_digit() {
                self.digits(10)?;
            }
        }
        if matches!(self.peek(0), b'e' | b'E') {
            let save = self.pos;
            self.pos += 1;
            if matches!(self.peek(0), b'+' | b'-') {
                self.pos += 1;
            }
            if self.peek(0).is_ascii_digit() {
                self.digits(10)?;
                is_float = true;
            } else {
                self.pos = save;
            }
        }
        if matches!(self.peek(0), b'j' | b'J') {
            return Err(PyError::new(line, "unsupported syntax: complex number"));
        }
        let text = &self.src[start..self.pos];
        let cleaned: std::borrow::Cow<str> = if text.contains('_') {
            text.chars()
                .filter(|&c| c != '_')
                .collect::<String>()
                .into()
        } else {
            text.into()
        };
        if is_float {
            let v: f64 = cleaned
                .parse()
                .map_err(|_| syntax(line, "invalid decimal literal"))?;
            return Ok(self.tok(Tok::Float(v), start, line));
        }
        if cleaned.len() > 1 && cleaned.starts_with('0') && cleaned.bytes().any(|c| c != b'0') {
            return Err(syntax(
                line,
                "leading zeros in decimal integer literals are not permitted",
            ));
        }
        let v: i64 = cleaned.parse().map_err(|_| too_big(line))?;
        Ok(self.tok(Tok::Int(v), start, line))
    }

    fn operator(&mut self) -> Result<Token, PyError> {
        let start = self.pos;
        let line = self.line;
        let c = self.b[self.pos];
        let c1 = self.peek(1);
        let c2 = self.peek(2);
        let (op, len) = match c {
            b'(' | b'[' | b'{' => {
                if self.parens.len() >= MAX_NESTING as usize {
                    return Err(syntax(line, "too many nested parentheses"));
                }
                self.parens.push((c, line));
                let op = match c {
                    b'(' => Op::LParen,
                    b'[' => Op::LBracket,
                    _ => Op::LBrace,
                };
                (op, 1)
            }
            b')' | b']' | b'}' => {
                let open = match c {
                    b')' => b'(',
                    b']' => b'[',
                    _ => b'{',
                };
                match self.parens.last() {
                    Some(&(o, _)) if o == open && !(self.inner && self.parens.len() == 1) => {
                        self.parens.pop();
                    }
                    Some(&(o, _)) if !(self.inner && self.parens.len() == 1) => {
                        return Err(syntax(
                            line,
                            format!(
                                "closing parenthesis '{}' does not match opening parenthesis '{}'",
                                c as char, o as char
                            ),
                        ));
                    }
                    _ => return Err(syntax(line, format!("unmatched '{}'", c as char))),
                }
                let op = match c {
                    b')' => Op::RParen,
                    b']' => Op::RBracket,
                    _ => Op::RBrace,
                };
                (op, 1)
            }
            b',' => (Op::Comma, 1),
            b';' => (Op::Semi, 1),
            b':' if c1 == b'=' => (Op::Walrus, 2),
            b':' => (Op::Colon, 1),
            b'.' if c1 == b'.' && c2 == b'.' => (Op::Ellipsis, 3),
            b'.' => (Op::Dot, 1),
            b'@' if c1 == b'=' => (Op::AtEq, 2),
            b'@' => (Op::At, 1),
            b'=' if c1 == b'=' => (Op::EqEq, 2),
            b'=' => (Op::Assign, 1),
            b'!' if c1 == b'=' => (Op::NotEq, 2),
            b'!' if self.inner => (Op::Bang, 1),
            b'+' if c1 == b'=' => (Op::PlusEq, 2),
            b'+' => (Op::Plus, 1),
            b'-' if c1 == b'=' => (Op::MinusEq, 2),
            b'-' if c1 == b'>' => (Op::Arrow, 2),
            b'-' => (Op::Minus, 1),
            b'*' if c1 == b'*' && c2 == b'=' => (Op::DStarEq, 3),
            b'*' if c1 == b'*' => (Op::DStar, 2),
            b'*' if c1 == b'=' => (Op::StarEq, 2),
            b'*' => (Op::Star, 1),
            b'/' if c1 == b'/' && c2 == b'=' => (Op::DSlashEq, 3),
            b'/' if c1 == b'/' => (Op::DSlash, 2),
            b'/' if c1 == b'=' => (Op::SlashEq, 2),
            b'/' => (Op::Slash, 1),
            b'%' if c1 == b'=' => (Op::PercentEq, 2),
            b'%' => (Op::Percent, 1),
            b'<' if c1 == b'<' && c2 == b'=' => (Op::ShlEq, 3),
            b'<' if c1 == b'<' => (Op::Shl, 2),
            b'<' if c1 == b'=' => (Op::Le, 2),
            b'<' => (Op::Lt, 1),
            b'>' if c1 == b'>' && c2 == b'=' => (Op::ShrEq, 3),
            b'>' if c1 == b'>' => (Op::Shr, 2),
            b'>' if c1 == b'=' => (Op::Ge, 2),
            b'>' => (Op::Gt, 1),
            b'&' if c1 == b'=' => (Op::AmpEq, 2),
            b'&' => (Op::Amp, 1),
            b'|' if c1 == b'=' => (Op::PipeEq, 2),
            b'|' => (Op::Pipe, 1),
            b'^' if c1 == b'=' => (Op::CaretEq, 2),
            b'^' => (Op::Caret, 1),
            b'~' => (Op::Tilde, 1),
            _ => {
                let ch = self.src[self.pos..].chars().next().unwrap_or('?');
                let msg = if ch.is_ascii_graphic() {
                    format!("invalid syntax: unexpected character '{ch}'")
                } else {
                    format!("invalid non-printable character U+{:04X}", ch as u32)
                };
                return Err(syntax(line, msg));
            }
        };
        self.pos += len;
        Ok(self.tok(Tok::Op(op), start, line))
    }
}

#[derive(Clone, Copy, Default)]
struct StrFlags {
    raw: bool,
    fstr: bool,
    bytes: bool,
}

fn tab_error(line: u32) -> PyError {
    PyError::new(
        line,
        "TabError: inconsistent use of tabs and spaces in indentation",
    )
}

fn too_big(line: u32) -> PyError {
    PyError::new(
        line,
        "unsupported syntax: integer literal too large (only 64-bit integers are supported)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<Tok> {
        tokenize(src).unwrap().into_iter().map(|t| t.tok).collect()
    }

    fn err(src: &str) -> PyError {
        tokenize(src).unwrap_err()
    }

    #[test]
    fn simple_line() {
        assert_eq!(
            kinds("x = 1\n"),
            [
                Tok::Name,
                Tok::Op(Op::Assign),
                Tok::Int(1),
                Tok::Newline,
                Tok::Eof
            ]
        );
        // Missing final newline still ends the logical line.
        assert_eq!(
            kinds("x = 1.5"),
            [
                Tok::Name,
                Tok::Op(Op::Assign),
                Tok::Float(1.5),
                Tok::Newline,
                Tok::Eof
            ]
        );
    }

    #[test]
    fn indentation_and_blank_lines() {
        let src = "if a:\n    x = 1\n\n    # comment\n        \n    y = 2\nz = 3\n";
        let k = kinds(src);
        assert_eq!(
            k,
            [
                Tok::Kw(Kw::If),
                Tok::Name,
                Tok::Op(Op::Colon),
                Tok::Newline,
                Tok::Indent,
                Tok::Name,
                Tok::Op(Op::Assign),
                Tok::Int(1),
                Tok::Newline,
                Tok::Name,
                Tok::Op(Op::Assign),
                Tok::Int(2),
                Tok::Newline,
                Tok::Dedent,
                Tok::Name,
                Tok::Op(Op::Assign),
                Tok::Int(3),
                Tok::Newline,
                Tok::Eof
            ]
        );
        // Dedents are emitted at EOF.
        let k = kinds("if a:\n  if b:\n    x = 1");
        assert_eq!(&k[k.len() - 3..], [Tok::Dedent, Tok::Dedent, Tok::Eof]);
    }

    #[test]
    fn brackets_join_lines_and_lines_are_counted() {
        let toks = tokenize("x = [\n  1,  # one\n  2,\n]\ny = 3\n").unwrap();
        let newlines = toks.iter().filter(|t| t.tok == Tok::Newline).count();
        assert_eq!(newlines, 2);
        let y = toks
            .iter()
            .find(|t| t.tok == Tok::Name && t.start > 5)
            .unwrap();
        assert_eq!(y.line, 5);
        // backslash continuation
        let toks = tokenize("x = 1 + \\\n  2\ny = 1\n").unwrap();
        assert_eq!(toks.iter().filter(|t| t.tok == Tok::Newline).count(), 2);
        assert_eq!(toks[toks.len() - 3].line, 3);
    }

    #[test]
    fn strings() {
        let src = "a = r'x\\'y' f\"{b}\" '''t\nq''' b'z' Rb'w'\n";
        let toks = tokenize(src).unwrap();
        let strs: Vec<StrTok> = toks
            .iter()
            .filter_map(|t| match t.tok {
                Tok::Str(s) => Some(s),
                _ => None,
            })
            .collect();
        assert_eq!(strs.len(), 5);
        let body = |s: &StrTok| &src[s.body_start as usize..s.body_end as usize];
        assert!(strs[0].raw && !strs[0].fstr);
        assert_eq!(body(&strs[0]), "x\\'y");
        assert!(strs[1].fstr);
        assert_eq!(body(&strs[1]), "{b}");
        assert_eq!(body(&strs[2]), "t\nq");
        assert!(strs[3].bytes);
        assert!(strs[4].bytes && strs[4].raw);
        // ur'' is not a valid prefix in Python 3: `ur` is a name followed by a string
        assert_eq!(kinds("ur'x'")[0], Tok::Name);
    }

    #[test]
    fn numbers() {
        assert_eq!(kinds("0x1F")[0], Tok::Int(31));
        assert_eq!(kinds("0o17")[0], Tok::Int(15));
        assert_eq!(kinds("0b101")[0], Tok::Int(5));
        assert_eq!(kinds("1_000")[0], Tok::Int(1000));
        assert_eq!(kinds("1e3")[0], Tok::Float(1000.0));
        assert_eq!(kinds(".5")[0], Tok::Float(0.5));
        assert_eq!(kinds("2.")[0], Tok::Float(2.0));
        assert_eq!(kinds("00")[0], Tok::Int(0));
        assert!(err("0777").message.contains("leading zeros"));
        assert!(err("99999999999999999999").message.contains("too large"));
        assert!(err("1j").message.contains("complex"));
        assert!(err("1__0").message.contains("invalid"));
    }

    #[test]
    fn errors() {
        let e = err("x = 'abc\n");
        assert_eq!(e.line, 1);
        assert!(e.message.contains("unterminated string literal"), "{e}");
        let e = err("x = '''abc\n\n");
        assert!(e.message.contains("unterminated triple-quoted"), "{e}");
        let e = err("x = (1,\n2\n");
        assert!(e.message.contains("'(' was never closed"), "{e}");
        assert!(err("x = 1)\n").message.contains("unmatched ')'"));
        assert!(err("x = (1]\n").message.contains("does not match"));
        let e = err("if a:\n    x = 1\n  y = 2\n");
        assert_eq!(e.line, 3);
        assert!(e.message.contains("unindent does not match"), "{e}");
        assert!(err("if a:\n\tx = 1\n        y = 2\n")
            .message
            .contains("TabError"));
        assert!(err("x = 1 \\ 2\n").message.contains("continuation"));
        assert!(err("x = $\n").message.contains("invalid syntax"));
        assert!(err("x = 1\\").message.contains("EOF"));
        assert!(err("x = 'a\\").message.contains("unterminated"));
        let deep = format!("x = {}1{}", "(".repeat(150), ")".repeat(150));
        assert!(err(&deep).message.contains("too many nested"));
        assert!(err("x = a\u{2192}b").message.contains("invalid character"));
    }
}
