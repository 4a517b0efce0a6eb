//! Recursive-descent parser from tokens to a small AST. Displays made only of literals
//! (the bulk of every easyconfig) are folded into constant [`Value`]s here.

use std::collections::HashMap;

use super::ast::{
    BinOp, Call, CmpOp, Comp, CompKind, Expr, ExprKind, FPart, Generator, Index, MethodCall,
    Module, Stmt, Target, UnOp,
};
use super::lexer::{tokenize, tokenize_inner, Kw, Op, StrTok, Tok, Token};
use super::ops::{hashable, unique, DictBuilder};
use super::{PyError, Value, MAX_NESTING};

/// Positional and keyword arguments of a call.
type CallArgs = (Vec<Expr>, Vec<(Box<str>, Expr)>);

fn syntax(line: u32, msg: impl std::fmt::Display) -> PyError {
    PyError::new(line, format!("SyntaxError: {msg}"))
}

fn unsupported(line: u32, what: impl std::fmt::Display) -> PyError {
    PyError::new(line, format!("unsupported syntax: {what}"))
}

/// Parse a module.
pub(crate) fn parse(source: &str) -> Result<Module, PyError> {
    // Python's compile() translates \r\n and \r to \n first.
    let translated;
    let src = if source.contains('\r') {
        translated = source.replace("\r\n", "\n").replace('\r', "\n");
        translated.as_str()
    } else {
        source
    };
    let toks = tokenize(src)?;
    let mut interner = Interner::default();
    let mut p = Parser {
        src,
        toks: &toks,
        pos: 0,
        depth: 0,
        names: &mut interner,
    };
    let mut body = Vec::new();
    while p.tok() != Tok::Eof {
        p.statement(&mut body)?;
    }
    Ok(Module {
        body,
        names: interner.names,
    })
}

/// FNV-1a: identifiers are short, SipHash is overkill here.
#[derive(Default)]
struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            h ^= b as u64;
            h = h.wrapping_mul(0x100_0000_01b3);
        }
        self.0 = h;
    }
}

#[derive(Default)]
struct Interner<'s> {
    map: HashMap<&'s str, u32, std::hash::BuildHasherDefault<Fnv>>,
    names: Vec<Box<str>>,
}

impl<'s> Interner<'s> {
    fn intern(&mut self, name: &'s str) -> u32 {
        if let Some(&i) = self.map.get(name) {
            return i;
        }
        let i = self.names.len() as u32;
        self.names.push(name.into());
        self.map.insert(name, i);
        i
    }
}

struct Parser<'s, 't, 'i> {
    src: &'s str,
    toks: &'t [Token],
    pos: usize,
    depth: u32,
    names: &'i mut Interner<'s>,
}

impl<'s> Parser<'s, '_, '_> {
    #[inline]
    fn cur(&self) -> Token {
        self.toks[self.pos]
    }

    #[inline]
    fn tok(&self) -> Tok {
        self.toks[self.pos].tok
    }

    #[inline]
    fn line(&self) -> u32 {
        self.toks[self.pos].line
    }

    fn peek_tok(&self, n: usize) -> Tok {
        self.toks
            .get(self.pos + n)
            .map(|t| t.tok)
            .unwrap_or(Tok::Eof)
    }

    #[inline]
    fn bump(&mut self) {
        if self.pos + 1 < self.toks.len() {
            self.pos += 1;
        }
    }

    #[inline]
    fn is_op(&self, op: Op) -> bool {
        self.tok() == Tok::Op(op)
    }

    #[inline]
    fn is_kw(&self, kw: Kw) -> bool {
        self.tok() == Tok::Kw(kw)
    }

    fn eat_op(&mut self, op: Op) -> bool {
        if self.is_op(op) {
            self.bump();
            true
        } else {
            false
        }
    }

    fn expect_op(&mut self, op: Op) -> Result<(), PyError> {
        if self.eat_op(op) {
            Ok(())
        } else {
            Err(self.unexpected(&format!("expected '{}'", op.text())))
        }
    }

    fn describe(&self, t: Token) -> String {
        match t.tok {
            Tok::Newline => "end of line".into(),
            Tok::Indent => "indent".into(),
            Tok::Dedent => "dedent".into(),
            Tok::Eof => "end of input".into(),
            _ => format!("'{}'", &self.src[t.start as usize..t.end as usize]),
        }
    }

    fn unexpected(&self, what: &str) -> PyError {
        let t = self.cur();
        match t.tok {
            Tok::Op(Op::Walrus) => unsupported(t.line, "walrus operator ':='"),
            Tok::Op(Op::Ellipsis) => unsupported(t.line, "'...'"),
            Tok::Indent => PyError::new(t.line, "IndentationError: unexpected indent"),
            _ => syntax(
                t.line,
                format!("invalid syntax: {what}, found {}", self.describe(t)),
            ),
        }
    }

    fn enter(&mut self) -> Result<(), PyError> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(syntax(self.line(), "too deeply nested"));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    // ----- statements -----

    fn statement(&mut self, out: &mut Vec<Stmt>) -> Result<(), PyError> {
        let line = self.line();
        match self.tok() {
            Tok::Kw(Kw::If) => {
                self.bump();
                let s = self.if_rest()?;
                out.push(s);
                Ok(())
            }
            Tok::Kw(Kw::For) => {
                self.bump();
                let target = self.target_list()?;
                if !self.is_kw(Kw::In) {
                    return Err(self.unexpected("expected 'in'"));
                }
                self.bump();
                let iter = self.star_expressions()?;
                self.expect_op(Op::Colon)?;
                let body = self.block()?;
                let orelse = if self.is_kw(Kw::Else) {
                    self.bump();
                    self.expect_op(Op::Colon)?;
                    self.block()?
                } else {
                    Vec::new()
                };
                out.push(Stmt::For {
                    target,
                    iter,
                    body,
                    orelse,
                    line,
                });
                Ok(())
            }
            Tok::Kw(
                k @ (Kw::Def
                | Kw::Class
                | Kw::While
                | Kw::Try
                | Kw::With
                | Kw::Async
                | Kw::Except
                | Kw::Finally),
            ) => Err(unsupported(line, k.text())),
            Tok::Kw(Kw::Elif) | Tok::Kw(Kw::Else) => Err(self.unexpected("unexpected keyword")),
            Tok::Op(Op::At) => Err(unsupported(line, "decorator")),
            Tok::Indent => Err(PyError::new(line, "IndentationError: unexpected indent")),
            _ => self.simple_statements(out),
        }
    }

    fn if_rest(&mut self) -> Result<Stmt, PyError> {
        let test = self.named_expression()?;
        self.expect_op(Op::Colon)?;
        let body = self.block()?;
        let orelse = if self.is_kw(Kw::Elif) {
            self.bump();
            vec![self.if_rest()?]
        } else if self.is_kw(Kw::Else) {
            self.bump();
            self.expect_op(Op::Colon)?;
            self.block()?
        } else {
            Vec::new()
        };
        Ok(Stmt::If { test, body, orelse })
    }

    fn block(&mut self) -> Result<Vec<Stmt>, PyError> {
        self.enter()?;
        let mut body = Vec::new();
        if self.tok() == Tok::Newline {
            self.bump();
            if self.tok() != Tok::Indent {
                return Err(PyError::new(
                    self.line(),
                    "IndentationError: expected an indented block",
                ));
            }
            self.bump();
            while self.tok() != Tok::Dedent && self.tok() != Tok::Eof {
                self.statement(&mut body)?;
            }
            if self.tok() == Tok::Dedent {
                self.bump();
            }
        } else {
            self.simple_statements(&mut body)?;
        }
        self.leave();
        Ok(body)
    }

    fn simple_statements(&mut self, out: &mut Vec<Stmt>) -> Result<(), PyError> {
        loop {
            let s = self.small_statement()?;
            out.push(s);
            if self.eat_op(Op::Semi) {
                if self.tok() == Tok::Newline {
                    break;
                }
                continue;
            }
            break;
        }
        if self.tok() == Tok::Newline {
            self.bump();
            Ok(())
        } else {
            Err(self.unexpected("expected end of statement"))
        }
    }

    fn small_statement(&mut self) -> Result<Stmt, PyError> {
        let line = self.line();
        if let Tok::Kw(k) = self.tok() {
            match k {
                Kw::Pass => {
                    self.bump();
                    return Ok(Stmt::Pass);
                }
                Kw::Import
                | Kw::From
                | Kw::Global
                | Kw::Nonlocal
                | Kw::Del
                | Kw::Assert
                | Kw::Raise
                | Kw::Return
                | Kw::Yield
                | Kw::Break
                | Kw::Continue => return Err(unsupported(line, k.text())),
                _ => {}
            }
        }
        let first = self.star_expressions()?;
        match self.tok() {
            Tok::Op(Op::Assign) => {
                let mut exprs = vec![first];
                while self.eat_op(Op::Assign) {
                    if self.is_kw(Kw::Yield) {
                        return Err(unsupported(self.line(), "yield"));
                    }
                    exprs.push(self.star_expressions()?);
                }
                let value = exprs.pop().expect("at least two expressions");
                let targets = exprs
                    .into_iter()
                    .map(to_target)
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Stmt::Assign {
                    targets,
                    value,
                    line,
                })
            }
            Tok::Op(
                op @ (Op::PlusEq
                | Op::MinusEq
                | Op::StarEq
                | Op::SlashEq
                | Op::DSlashEq
                | Op::PercentEq),
            ) => {
                self.bump();
                let op = match op {
                    Op::PlusEq => BinOp::Add,
                    Op::MinusEq => BinOp::Sub,
                    Op::StarEq => BinOp::Mul,
                    Op::SlashEq => BinOp::Div,
                    Op::DSlashEq => BinOp::FloorDiv,
                    _ => BinOp::Mod,
                };
                let target = match first.kind {
                    ExprKind::Name(_) | ExprKind::Subscript(..) => to_target(first)?,
                    _ => {
                        return Err(syntax(
                            line,
                            "'expression' is an illegal expression for augmented assignment",
                        ))
                    }
                };
                if self.is_kw(Kw::Yield) {
                    return Err(unsupported(self.line(), "yield"));
                }
                let value = self.star_expressions()?;
                Ok(Stmt::AugAssign {
                    target,
                    op,
                    value,
                    line,
                })
            }
            Tok::Op(
                op @ (Op::DStarEq
                | Op::ShlEq
                | Op::ShrEq
                | Op::AmpEq
                | Op::PipeEq
                | Op::CaretEq
                | Op::AtEq),
            ) => Err(unsupported(line, format!("'{}' operator", op.text()))),
            Tok::Op(Op::Colon) => Err(unsupported(line, "annotated assignment")),
            _ => Ok(Stmt::Expr { value: first, line }),
        }
    }

    /// Targets of `for ... in` (stops before `in`).
    fn target_list(&mut self) -> Result<Target, PyError> {
        let line = self.line();
        let first = self.target_atom()?;
        if !self.is_op(Op::Comma) {
            return to_target(first);
        }
        let mut items = vec![first];
        while self.eat_op(Op::Comma) {
            if self.is_kw(Kw::In) {
                break;
            }
            items.push(self.target_atom()?);
        }
        to_target(Expr {
            kind: ExprKind::Tuple(items),
            line,
        })
    }

    fn target_atom(&mut self) -> Result<Expr, PyError> {
        if self.is_op(Op::Star) {
            return Err(unsupported(self.line(), "starred assignment target"));
        }
        self.sum()
    }

    // ----- expressions -----

    /// `expression (',' expression)* [',']` — a tuple when there is a comma.
    fn star_expressions(&mut self) -> Result<Expr, PyError> {
        let line = self.line();
        let first = self.star_expression()?;
        if !self.is_op(Op::Comma) {
            return Ok(first);
        }
        let mut items = vec![first];
        while self.eat_op(Op::Comma) {
            if self.starts_expression() {
                items.push(self.star_expression()?);
            } else {
                break;
            }
        }
        Ok(fold_tuple(items, line))
    }

    fn star_expression(&mut self) -> Result<Expr, PyError> {
        if self.is_op(Op::Star) {
            return Err(unsupported(self.line(), "star-args / starred expression"));
        }
        self.expression()
    }

    fn starts_expression(&self) -> bool {
        match self.tok() {
            Tok::Name | Tok::Int(_) | Tok::Float(_) | Tok::Str(_) => true,
            Tok::Kw(k) => matches!(
                k,
                Kw::True | Kw::False | Kw::None | Kw::Not | Kw::Lambda | Kw::Await
            ),
            Tok::Op(op) => matches!(
                op,
                Op::LParen
                    | Op::LBracket
                    | Op::LBrace
                    | Op::Minus
                    | Op::Plus
                    | Op::Tilde
                    | Op::Star
                    | Op::Ellipsis
            ),
            _ => false,
        }
    }

    fn named_expression(&mut self) -> Result<Expr, PyError> {
        let e = self.expression()?;
        if self.is_op(Op::Walrus) {
            return Err(unsupported(self.line(), "walrus operator ':='"));
        }
        Ok(e)
    }

    /// Fast path for the most common expression, a lone literal or name followed by a
    /// delimiter: skips the descent through every precedence level.
    fn simple_atom(&mut self) -> Result<Option<Expr>, PyError> {
        let next = match self.tok() {
            Tok::Str(_) => {
                let mut j = self.pos + 1;
                while matches!(self.toks.get(j).map(|t| t.tok), Some(Tok::Str(_))) {
                    j += 1;
                }
                j
            }
            Tok::Int(_)
            | Tok::Float(_)
            | Tok::Name
            | Tok::Kw(Kw::True)
            | Tok::Kw(Kw::False)
            | Tok::Kw(Kw::None) => self.pos + 1,
            _ => return Ok(None),
        };
        match self.toks.get(next).map(|t| t.tok) {
            Some(
                Tok::Op(
                    Op::Comma | Op::RParen | Op::RBracket | Op::RBrace | Op::Colon | Op::Assign,
                )
                | Tok::Newline,
            ) => Ok(Some(self.atom()?)),
            _ => Ok(None),
        }
    }

    fn expression(&mut self) -> Result<Expr, PyError> {
        if let Some(e) = self.simple_atom()? {
            return Ok(e);
        }
        if self.is_kw(Kw::Lambda) {
            return Err(unsupported(self.line(), "lambda"));
        }
        self.enter()?;
        let line = self.line();
        let body = self.disjunction()?;
        let e = if self.is_kw(Kw::If) {
            self.bump();
            let test = self.disjunction()?;
            if !self.is_kw(Kw::Else) {
                return Err(self.unexpected("expected 'else' after 'if' expression"));
            }
            self.bump();
            let orelse = self.expression()?;
            Expr {
                kind: ExprKind::IfExp(Box::new([test, body, orelse])),
                line,
            }
        } else {
            body
        };
        if self.is_op(Op::Walrus) {
            return Err(unsupported(self.line(), "walrus operator ':='"));
        }
        self.leave();
        Ok(e)
    }

    fn disjunction(&mut self) -> Result<Expr, PyError> {
        let line = self.line();
        let first = self.conjunction()?;
        if !self.is_kw(Kw::Or) {
            return Ok(first);
        }
        let mut items = vec![first];
        while self.is_kw(Kw::Or) {
            self.bump();
            items.push(self.conjunction()?);
        }
        Ok(Expr {
            kind: ExprKind::BoolOp(false, items),
            line,
        })
    }

    fn conjunction(&mut self) -> Result<Expr, PyError> {
        let line = self.line();
        let first = self.inversion()?;
        if !self.is_kw(Kw::And) {
            return Ok(first);
        }
        let mut items = vec![first];
        while self.is_kw(Kw::And) {
            self.bump();
            items.push(self.inversion()?);
        }
        Ok(Expr {
            kind: ExprKind::BoolOp(true, items),
            line,
        })
    }

    fn inversion(&mut self) -> Result<Expr, PyError> {
        if self.is_kw(Kw::Not) {
            let line = self.line();
            self.bump();
            self.enter()?;
            let operand = self.inversion()?;
            self.leave();
            return Ok(Expr {
                kind: ExprKind::Unary(UnOp::Not, Box::new(operand)),
                line,
            });
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Expr, PyError> {
        let line = self.line();
        let left = self.bitwise()?;
        let mut ops = Vec::new();
        loop {
            let op = match self.tok() {
                Tok::Op(Op::EqEq) => CmpOp::Eq,
                Tok::Op(Op::NotEq) => CmpOp::NotEq,
                Tok::Op(Op::Lt) => CmpOp::Lt,
                Tok::Op(Op::Le) => CmpOp::Le,
                Tok::Op(Op::Gt) => CmpOp::Gt,
                Tok::Op(Op::Ge) => CmpOp::Ge,
                Tok::Kw(Kw::In) => CmpOp::In,
                Tok::Kw(Kw::Not) if self.peek_tok(1) == Tok::Kw(Kw::In) => {
                    self.bump();
                    CmpOp::NotIn
                }
                Tok::Kw(Kw::Is) => {
                    if self.peek_tok(1) == Tok::Kw(Kw::Not) {
                        self.bump();
                        CmpOp::IsNot
                    } else {
                        CmpOp::Is
                    }
                }
                _ => break,
            };
            self.bump();
            ops.push((op, self.bitwise()?));
        }
        if ops.is_empty() {
            return Ok(left);
        }
        Ok(Expr {
            kind: ExprKind::Compare(Box::new(left), ops),
            line,
        })
    }

    /// The bitwise/shift levels, which the subset does not support.
    fn bitwise(&mut self) -> Result<Expr, PyError> {
        let e = self.sum()?;
        if let Tok::Op(op @ (Op::Pipe | Op::Caret | Op::Amp | Op::Shl | Op::Shr)) = self.tok() {
            return Err(unsupported(
                self.line(),
                format!("'{}' operator", op.text()),
            ));
        }
        Ok(e)
    }

    fn sum(&mut self) -> Result<Expr, PyError> {
        let depth = self.depth;
        let mut left = self.term()?;
        loop {
            let op = match self.tok() {
                Tok::Op(Op::Plus) => BinOp::Add,
                Tok::Op(Op::Minus) => BinOp::Sub,
                _ => {
                    self.depth = depth;
                    return Ok(left);
                }
            };
            let line = self.line();
            self.bump();
            // A left-nested chain is as deep as it is long.
            self.enter()?;
            let right = self.term()?;
            left = Expr {
                kind: ExprKind::BinOp(Box::new(left), op, Box::new(right)),
                line,
            };
        }
    }

    fn term(&mut self) -> Result<Expr, PyError> {
        let depth = self.depth;
        let mut left = self.factor()?;
        loop {
            let op = match self.tok() {
                Tok::Op(Op::Star) => BinOp::Mul,
                Tok::Op(Op::Slash) => BinOp::Div,
                Tok::Op(Op::DSlash) => BinOp::FloorDiv,
                Tok::Op(Op::Percent) => BinOp::Mod,
                Tok::Op(Op::At) => return Err(unsupported(self.line(), "'@' operator")),
                _ => {
                    self.depth = depth;
                    return Ok(left);
                }
            };
            let line = self.line();
            self.bump();
            self.enter()?;
            let right = self.factor()?;
            left = Expr {
                kind: ExprKind::BinOp(Box::new(left), op, Box::new(right)),
                line,
            };
        }
    }

    fn factor(&mut self) -> Result<Expr, PyError> {
        let line = self.line();
        let op = match self.tok() {
            Tok::Op(Op::Minus) => UnOp::Neg,
            Tok::Op(Op::Plus) => UnOp::Pos,
            Tok::Op(Op::Tilde) => return Err(unsupported(line, "'~' operator")),
            _ => return self.power(),
        };
        self.bump();
        self.enter()?;
        let operand = self.factor()?;
        self.leave();
        // Fold negative number literals.
        if let ExprKind::Const(v) = &operand.kind {
            match (op, v) {
                (UnOp::Neg, Value::Int(i)) if *i != i64::MIN => {
                    return Ok(Expr {
                        kind: ExprKind::Const(Value::Int(-i)),
                        line,
                    })
                }
                (UnOp::Neg, Value::Float(f)) => {
                    return Ok(Expr {
                        kind: ExprKind::Const(Value::Float(-f)),
                        line,
                    })
                }
                _ => {}
            }
        }
        Ok(Expr {
            kind: ExprKind::Unary(op, Box::new(operand)),
            line,
        })
    }

    fn power(&mut self) -> Result<Expr, PyError> {
        if self.is_kw(Kw::Await) {
            return Err(unsupported(self.line(), "await"));
        }
        let e = self.primary()?;
        if self.is_op(Op::DStar) {
            return Err(unsupported(self.line(), "'**' operator"));
        }
        Ok(e)
    }

    fn primary(&mut self) -> Result<Expr, PyError> {
        let depth = self.depth;
        let mut e = self.atom()?;
        loop {
            let line = self.line();
            if matches!(self.tok(), Tok::Op(Op::Dot | Op::LParen | Op::LBracket)) {
                // A chain of trailers nests like brackets.
                self.enter()?;
            }
            match self.tok() {
                Tok::Op(Op::Dot) => {
                    self.bump();
                    if self.tok() != Tok::Name {
                        return Err(self.unexpected("expected a name after '.'"));
                    }
                    let t = self.cur();
                    let name: Box<str> = self.src[t.start as usize..t.end as usize].into();
                    self.bump();
                    if !self.is_op(Op::LParen) {
                        return Err(unsupported(line, format!("attribute access '.{name}'")));
                    }
                    self.bump();
                    let (args, kwargs) = self.call_args()?;
                    e = Expr {
                        kind: ExprKind::Method(Box::new(MethodCall {
                            recv: e,
                            name,
                            args,
                            kwargs,
                        })),
                        line,
                    };
                }
                Tok::Op(Op::LParen) => {
                    self.bump();
                    let (args, kwargs) = self.call_args()?;
                    e = Expr {
                        kind: ExprKind::Call(Box::new(Call {
                            func: e,
                            args,
                            kwargs,
                        })),
                        line,
                    };
                }
                Tok::Op(Op::LBracket) => {
                    self.bump();
                    let index = self.subscript()?;
                    e = Expr {
                        kind: ExprKind::Subscript(Box::new(e), Box::new(index)),
                        line,
                    };
                }
                _ => {
                    self.depth = depth;
                    return Ok(e);
                }
            }
        }
    }

    /// Arguments after `(`, through `)`.
    fn call_args(&mut self) -> Result<CallArgs, PyError> {
        let mut args = Vec::new();
        let mut kwargs: Vec<(Box<str>, Expr)> = Vec::new();
        while !self.is_op(Op::RParen) {
            let line = self.line();
            match self.tok() {
                Tok::Op(Op::Star) => return Err(unsupported(line, "star-args '*'")),
                Tok::Op(Op::DStar) => return Err(unsupported(line, "keyword unpacking '**'")),
                Tok::Name if self.peek_tok(1) == Tok::Op(Op::Assign) => {
                    let t = self.cur();
                    let name = &self.src[t.start as usize..t.end as usize];
                    if kwargs.iter().any(|(k, _)| &**k == name) {
                        return Err(syntax(line, format!("keyword argument repeated: {name}")));
                    }
                    self.bump();
                    self.bump();
                    let value = self.expression()?;
                    kwargs.push((name.into(), value));
                }
                _ => {
                    if !kwargs.is_empty() {
                        return Err(syntax(line, "positional argument follows keyword argument"));
                    }
                    let e = self.named_expression()?;
                    if self.is_kw(Kw::For) {
                        let g = self.comprehension(CompKind::Gen, e, None, line)?;
                        if !args.is_empty() || !self.is_op(Op::RParen) {
                            return Err(syntax(line, "Generator expression must be parenthesized"));
                        }
                        args.push(g);
                        break;
                    }
                    args.push(e);
                }
            }
            if !self.eat_op(Op::Comma) {
                break;
            }
        }
        self.expect_op(Op::RParen)?;
        Ok((args, kwargs))
    }

    /// After `[`, through `]`.
    fn subscript(&mut self) -> Result<Index, PyError> {
        let line = self.line();
        let mut items = Vec::new();
        let mut trailing_comma = false;
        loop {
            items.push(self.slice_item()?);
            if self.eat_op(Op::Comma) {
                trailing_comma = true;
                if self.is_op(Op::RBracket) {
                    break;
                }
                trailing_comma = false;
                continue;
            }
            break;
        }
        self.expect_op(Op::RBracket)?;
        if items.len() == 1 && !trailing_comma {
            return Ok(items.pop().expect("one item"));
        }
        let mut exprs = Vec::with_capacity(items.len());
        for it in items {
            match it {
                Index::Expr(e) => exprs.push(e),
                Index::Slice(..) => return Err(unsupported(line, "multi-dimensional slice")),
            }
        }
        Ok(Index::Expr(fold_tuple(exprs, line)))
    }

    fn slice_item(&mut self) -> Result<Index, PyError> {
        let lower = if self.is_op(Op::Colon) {
            None
        } else {
            let e = self.named_expression()?;
            if !self.is_op(Op::Colon) {
                return Ok(Index::Expr(e));
            }
            Some(e)
        };
        self.expect_op(Op::Colon)?;
        let bound_end =
            |p: &Self| p.is_op(Op::Colon) || p.is_op(Op::RBracket) || p.is_op(Op::Comma);
        let upper = if bound_end(self) {
            None
        } else {
            Some(self.expression()?)
        };
        let step = if self.eat_op(Op::Colon) {
            if self.is_op(Op::RBracket) || self.is_op(Op::Comma) {
                None
            } else {
                Some(self.expression()?)
            }
        } else {
            None
        };
        Ok(Index::Slice(lower, upper, step))
    }

    fn atom(&mut self) -> Result<Expr, PyError> {
        let t = self.cur();
        let line = t.line;
        let konst = |v: Value| Expr {
            kind: ExprKind::Const(v),
            line,
        };
        match t.tok {
            Tok::Name => {
                let name = &self.src[t.start as usize..t.end as usize];
                let id = self.names.intern(name);
                self.bump();
                Ok(Expr {
                    kind: ExprKind::Name(id),
                    line,
                })
            }
            Tok::Int(i) => {
                self.bump();
                Ok(konst(Value::Int(i)))
            }
            Tok::Float(f) => {
                self.bump();
                Ok(konst(Value::Float(f)))
            }
            Tok::Kw(Kw::True) => {
                self.bump();
                Ok(konst(Value::Bool(true)))
            }
            Tok::Kw(Kw::False) => {
                self.bump();
                Ok(konst(Value::Bool(false)))
            }
            Tok::Kw(Kw::None) => {
                self.bump();
                Ok(konst(Value::None))
            }
            Tok::Str(_) => self.strings(),
            Tok::Op(Op::LParen) => {
                self.bump();
                self.paren_rest(line)
            }
            Tok::Op(Op::LBracket) => {
                self.bump();
                self.list_rest(line)
            }
            Tok::Op(Op::LBrace) => {
                self.bump();
                self.brace_rest(line)
            }
            Tok::Kw(k @ (Kw::Lambda | Kw::Yield | Kw::Await)) => Err(unsupported(line, k.text())),
            _ => Err(self.unexpected("expected an expression")),
        }
    }

    fn paren_rest(&mut self, line: u32) -> Result<Expr, PyError> {
        if self.eat_op(Op::RParen) {
            return Ok(Expr {
                kind: ExprKind::Const(Value::Tuple(Vec::new())),
                line,
            });
        }
        if self.is_kw(Kw::Yield) {
            return Err(unsupported(self.line(), "yield"));
        }
        let first = self.star_expression()?;
        if self.is_op(Op::Walrus) {
            return Err(unsupported(self.line(), "walrus operator ':='"));
        }
        if self.is_kw(Kw::For) {
            let g = self.comprehension(CompKind::Gen, first, None, line)?;
            self.expect_op(Op::RParen)?;
            return Ok(g);
        }
        if self.eat_op(Op::RParen) {
            return Ok(first);
        }
        let mut items = vec![first];
        while self.eat_op(Op::Comma) {
            if self.is_op(Op::RParen) {
                break;
            }
            items.push(self.star_expression()?);
        }
        self.expect_op(Op::RParen)?;
        Ok(fold_tuple(items, line))
    }

    fn list_rest(&mut self, line: u32) -> Result<Expr, PyError> {
        if self.eat_op(Op::RBracket) {
            return Ok(Expr {
                kind: ExprKind::Const(Value::List(Vec::new())),
                line,
            });
        }
        let first = self.star_expression()?;
        if self.is_kw(Kw::For) {
            let c = self.comprehension(CompKind::List, first, None, line)?;
            self.expect_op(Op::RBracket)?;
            return Ok(c);
        }
        let mut items = vec![first];
        while self.eat_op(Op::Comma) {
            if self.is_op(Op::RBracket) {
                break;
            }
            items.push(self.star_expression()?);
        }
        self.expect_op(Op::RBracket)?;
        if items.iter().all(|e| matches!(e.kind, ExprKind::Const(_))) {
            return Ok(Expr {
                kind: ExprKind::Const(Value::List(take_consts(items))),
                line,
            });
        }
        Ok(Expr {
            kind: ExprKind::List(items),
            line,
        })
    }

    fn brace_rest(&mut self, line: u32) -> Result<Expr, PyError> {
        if self.eat_op(Op::RBrace) {
            return Ok(Expr {
                kind: ExprKind::Const(Value::Dict(Vec::new())),
                line,
            });
        }
        if self.is_op(Op::DStar) {
            return Err(unsupported(self.line(), "dict unpacking '**'"));
        }
        let first = self.star_expression()?;
        if self.eat_op(Op::Colon) {
            let value = self.expression()?;
            if self.is_kw(Kw::For) {
                let c = self.comprehension(CompKind::Dict, first, Some(value), line)?;
                self.expect_op(Op::RBrace)?;
                return Ok(c);
            }
            let mut items = vec![(first, value)];
            while self.eat_op(Op::Comma) {
                if self.is_op(Op::RBrace) {
                    break;
                }
                if self.is_op(Op::DStar) {
                    return Err(unsupported(self.line(), "dict unpacking '**'"));
                }
                let k = self.expression()?;
                self.expect_op(Op::Colon)?;
                let v = self.expression()?;
                items.push((k, v));
            }
            self.expect_op(Op::RBrace)?;
            return Ok(fold_dict(items, line));
        }
        if self.is_kw(Kw::For) {
            let c = self.comprehension(CompKind::Set, first, None, line)?;
            self.expect_op(Op::RBrace)?;
            return Ok(c);
        }
        let mut items = vec![first];
        while self.eat_op(Op::Comma) {
            if self.is_op(Op::RBrace) {
                break;
            }
            items.push(self.star_expression()?);
        }
        self.expect_op(Op::RBrace)?;
        Ok(fold_set(items, line))
    }

    /// `for ... in ... [if ...]...` after the element expression.
    fn comprehension(
        &mut self,
        kind: CompKind,
        elt: Expr,
        value: Option<Expr>,
        line: u32,
    ) -> Result<Expr, PyError> {
        let mut gens = Vec::new();
        while self.is_kw(Kw::For) {
            self.bump();
            let target = self.target_list()?;
            if !self.is_kw(Kw::In) {
                return Err(self.unexpected("expected 'in'"));
            }
            self.bump();
            let iter = self.disjunction()?;
            let mut ifs = Vec::new();
            while self.is_kw(Kw::If) {
                self.bump();
                ifs.push(self.disjunction()?);
            }
            gens.push(Generator { target, iter, ifs });
        }
        if self.is_kw(Kw::Async) {
            return Err(unsupported(self.line(), "async comprehension"));
        }
        Ok(Expr {
            kind: ExprKind::Comp(Box::new(Comp {
                kind,
                elt,
                value,
                gens,
            })),
            line,
        })
    }

    // ----- string literals -----

    /// One or more adjacent string literal tokens.
    fn strings(&mut self) -> Result<Expr, PyError> {
        let line = self.line();
        let mut lit = String::new();
        let mut parts: Vec<FPart> = Vec::new();
        let mut is_f = false;
        let mut first = true;
        let mut bytes = false;
        while let Tok::Str(st) = self.tok() {
            if first {
                bytes = st.bytes;
                first = false;
            } else if bytes != st.bytes {
                return Err(syntax(
                    self.line(),
                    "cannot mix bytes and nonbytes literals",
                ));
            }
            if st.bytes {
                return Err(unsupported(self.line(), "bytes literal"));
            }
            let tline = self.line();
            if st.fstr {
                is_f = true;
                self.fstring(st, tline, &mut parts, &mut lit)?;
            } else {
                let body = &self.src[st.body_start as usize..st.body_end as usize];
                decode_into(&mut lit, body, st.raw, tline)?;
            }
            self.bump();
        }
        if !is_f {
            return Ok(Expr {
                kind: ExprKind::Const(Value::Str(lit)),
                line,
            });
        }
        if !lit.is_empty() {
            parts.push(FPart::Lit(lit));
        }
        Ok(Expr {
            kind: ExprKind::FString(parts),
            line,
        })
    }

    /// Parse the body of an f-string (Python 3.11 rules), appending to `parts`; `lit`
    /// accumulates the pending literal text.
    fn fstring(
        &mut self,
        st: StrTok,
        line: u32,
        parts: &mut Vec<FPart>,
        lit: &mut String,
    ) -> Result<(), PyError> {
        let end = st.body_end as usize;
        let mut pos = st.body_start as usize;
        self.fstring_parts(st.raw, &mut pos, end, 0, line, parts, lit)?;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn fstring_parts(
        &mut self,
        raw: bool,
        pos: &mut usize,
        end: usize,
        level: u32,
        line: u32,
        parts: &mut Vec<FPart>,
        lit: &mut String,
    ) -> Result<(), PyError> {
        let b = self.src.as_bytes();
        let mut chunk_start = *pos;
        while *pos < end {
            let c = b[*pos];
            if c == b'\\' && !raw && *pos + 1 < end {
                if b[*pos + 1] == b'N' {
                    return Err(unsupported(line, "\\N{...} escape"));
                }
                if b[*pos + 1] != b'{' && b[*pos + 1] != b'}' {
                    *pos += 2;
                    continue;
                }
                *pos += 1;
                continue;
            }
            if c == b'{' || c == b'}' {
                decode_into(lit, &self.src[chunk_start..*pos], raw, line)?;
                if level == 0 && *pos + 1 < end && b[*pos + 1] == c {
                    lit.push(c as char);
                    *pos += 2;
                    chunk_start = *pos;
                    continue;
                }
                if c == b'}' {
                    if level == 0 {
                        return Err(syntax(line, "f-string: single '}' is not allowed"));
                    }
                    // End of a format spec.
                    return Ok(());
                }
                // A replacement field.
                if level >= 2 {
                    return Err(syntax(line, "f-string: expressions nested too deeply"));
                }
                *pos += 1;
                self.fstring_field(raw, pos, end, level, line, parts, lit)?;
                chunk_start = *pos;
                continue;
            }
            *pos += 1;
        }
        decode_into(lit, &self.src[chunk_start..*pos], raw, line)?;
        if level > 0 {
            return Err(syntax(line, "f-string: expecting '}'"));
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn fstring_field(
        &mut self,
        raw: bool,
        pos: &mut usize,
        end: usize,
        level: u32,
        line: u32,
        parts: &mut Vec<FPart>,
        lit: &mut String,
    ) -> Result<(), PyError> {
        let b = self.src.as_bytes();
        let expr_start = *pos;
        let mut nested: Vec<u8> = Vec::new();
        let mut quote: Option<(u8, bool)> = None;
        while *pos < end {
            let c = b[*pos];
            if c == b'\\' {
                return Err(syntax(
                    line,
                    "f-string expression part cannot include a backslash",
                ));
            }
            if let Some((q, triple)) = quote {
                if c == q {
                    if triple {
                        if *pos + 2 < end && b[*pos + 1] == q && b[*pos + 2] == q {
                            *pos += 3;
                            quote = None;
                            continue;
                        }
                    } else {
                        quote = None;
                    }
                }
                *pos += 1;
                continue;
            }
            let next = if *pos + 1 < end { b[*pos + 1] } else { 0 };
            match c {
                b'\'' | b'"' => {
                    let triple = *pos + 2 < end && b[*pos + 1] == c && b[*pos + 2] == c;
                    quote = Some((c, triple));
                    *pos += if triple { 3 } else { 1 };
                    continue;
                }
                b'[' | b'(' | b'{' => {
                    if nested.len() >= MAX_NESTING as usize {
                        return Err(syntax(line, "f-string: too many nested parenthesis"));
                    }
                    nested.push(c);
                }
                b'#' => {
                    return Err(syntax(line, "f-string expression part cannot include '#'"));
                }
                b']' | b')' | b'}' if !nested.is_empty() => {
                    let open = nested.pop().unwrap_or(b'(');
                    let want = match open {
                        b'[' => b']',
                        b'(' => b')',
                        _ => b'}',
                    };
                    if c != want {
                        return Err(syntax(
                            line,
                            format!("f-string: closing parenthesis '{}' does not match opening parenthesis '{}'", c as char, open as char),
                        ));
                    }
                }
                b']' | b')' => {
                    return Err(syntax(line, format!("f-string: unmatched '{}'", c as char)));
                }
                _ if !nested.is_empty() => {}
                b'!' if next == b'=' => {
                    *pos += 2;
                    continue;
                }
                b'=' | b'<' | b'>' if next == b'=' => {
                    *pos += 2;
                    continue;
                }
                b'<' | b'>' => {}
                b'!' | b':' | b'}' | b'=' => break,
                _ => {}
            }
            *pos += 1;
        }
        if quote.is_some() {
            return Err(syntax(line, "f-string: unterminated string"));
        }
        if !nested.is_empty() {
            return Err(syntax(
                line,
                format!("f-string: unmatched '{}'", nested[nested.len() - 1] as char),
            ));
        }
        if *pos >= end {
            return Err(syntax(line, "f-string: expecting '}'"));
        }
        let expr_end = *pos;
        let text = &self.src[expr_start..expr_end];
        if text.trim().is_empty() {
            return Err(syntax(line, "f-string: empty expression not allowed"));
        }
        // The field's line: the token's line plus the newlines before the field.
        let tok_start = self.cur().start as usize;
        let expr_line = line
            + b[tok_start..expr_start]
                .iter()
                .filter(|&&c| c == b'\n')
                .count() as u32;
        let expr = self.sub_expression(expr_start, expr_end, expr_line)?;
        let mut conv = None;
        let mut debug = false;
        if b[*pos] == b'=' {
            debug = true;
            *pos += 1;
            lit.push_str(&self.src[expr_start..*pos]);
        }
        if *pos < end && b[*pos] == b'!' {
            *pos += 1;
            let c = if *pos < end { b[*pos] } else { 0 };
            if !matches!(c, b's' | b'r' | b'a') {
                return Err(syntax(
                    line,
                    "f-string: invalid conversion character: expected 's', 'r', or 'a'",
                ));
            }
            conv = Some(c);
            *pos += 1;
            if *pos >= end || (b[*pos] != b':' && b[*pos] != b'}') {
                return Err(syntax(line, "f-string: expecting '}'"));
            }
        }
        let mut spec = Vec::new();
        if *pos < end && b[*pos] == b':' {
            *pos += 1;
            let mut spec_lit = String::new();
            self.fstring_parts(raw, pos, end, level + 1, line, &mut spec, &mut spec_lit)?;
            if !spec_lit.is_empty() {
                spec.push(FPart::Lit(spec_lit));
            }
        }
        if *pos >= end || b[*pos] != b'}' {
            return Err(syntax(line, "f-string: expecting '}'"));
        }
        *pos += 1;
        if debug && conv.is_none() && spec.is_empty() {
            conv = Some(b'r');
        }
        if !lit.is_empty() {
            parts.push(FPart::Lit(std::mem::take(lit)));
        }
        parts.push(FPart::Field { expr, conv, spec });
        Ok(())
    }

    /// Parse `src[start..end]` as a parenthesized expression (an f-string field).
    fn sub_expression(&mut self, start: usize, end: usize, line: u32) -> Result<Expr, PyError> {
        let toks = tokenize_inner(self.src, start, end, line)?;
        let mut sub = Parser {
            src: self.src,
            toks: &toks,
            pos: 0,
            depth: self.depth,
            names: &mut *self.names,
        };
        sub.enter()?;
        let e = if sub.is_kw(Kw::Yield) {
            return Err(unsupported(line, "yield"));
        } else {
            sub.star_expressions()?
        };
        if sub.tok() != Tok::Eof {
            if sub.is_op(Op::Bang) {
                return Err(syntax(line, "f-string: invalid conversion"));
            }
            return Err(sub.unexpected("f-string: expected end of expression"));
        }
        Ok(e)
    }
}

fn take_consts(items: Vec<Expr>) -> Vec<Value> {
    items
        .into_iter()
        .map(|e| match e.kind {
            ExprKind::Const(v) => v,
            _ => unreachable!("checked by the caller"),
        })
        .collect()
}

fn fold_tuple(items: Vec<Expr>, line: u32) -> Expr {
    if items.iter().all(|e| matches!(e.kind, ExprKind::Const(_))) {
        return Expr {
            kind: ExprKind::Const(Value::Tuple(take_consts(items))),
            line,
        };
    }
    Expr {
        kind: ExprKind::Tuple(items),
        line,
    }
}

fn fold_dict(items: Vec<(Expr, Expr)>, line: u32) -> Expr {
    let foldable = items.iter().all(|(k, v)| match (&k.kind, &v.kind) {
        (ExprKind::Const(k), ExprKind::Const(_)) => hashable(k),
        _ => false,
    });
    if !foldable {
        return Expr {
            kind: ExprKind::Dict(items),
            line,
        };
    }
    let mut d = DictBuilder::with_capacity(items.len());
    for (k, v) in items {
        if let (ExprKind::Const(k), ExprKind::Const(v)) = (k.kind, v.kind) {
            d.insert(k, v);
        }
    }
    Expr {
        kind: ExprKind::Const(Value::Dict(d.finish())),
        line,
    }
}

fn fold_set(items: Vec<Expr>, line: u32) -> Expr {
    let foldable = items.iter().all(|e| match &e.kind {
        ExprKind::Const(v) => hashable(v),
        _ => false,
    });
    if !foldable {
        return Expr {
            kind: ExprKind::Set(items),
            line,
        };
    }
    Expr {
        kind: ExprKind::Const(Value::Set(unique(take_consts(items)))),
        line,
    }
}

fn to_target(e: Expr) -> Result<Target, PyError> {
    let line = e.line;
    match e.kind {
        ExprKind::Name(id) => Ok(Target::Name(id)),
        ExprKind::Tuple(items) | ExprKind::List(items) => Ok(Target::Unpack(
            items
                .into_iter()
                .map(to_target)
                .collect::<Result<Vec<_>, _>>()?,
        )),
        ExprKind::Const(Value::Tuple(v)) | ExprKind::Const(Value::List(v)) if v.is_empty() => {
            Ok(Target::Unpack(Vec::new()))
        }
        ExprKind::Subscript(value, index) => Ok(Target::Subscript { value, index }),
        ExprKind::Const(_) | ExprKind::FString(_) => Err(syntax(line, "cannot assign to literal")),
        ExprKind::Call(_) | ExprKind::Method(_) => {
            Err(syntax(line, "cannot assign to function call"))
        }
        _ => Err(syntax(line, "cannot assign to expression")),
    }
}

/// Append the decoded body of a (non-f) string literal to `out`.
pub(crate) fn decode_into(
    out: &mut String,
    body: &str,
    raw: bool,
    line: u32,
) -> Result<(), PyError> {
    if raw || !body.as_bytes().contains(&b'\\') {
        out.push_str(body);
        return Ok(());
    }
    let b = body.as_bytes();
    let mut i = 0;
    let mut run = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            i += 1;
            continue;
        }
        out.push_str(&body[run..i]);
        if i + 1 >= b.len() {
            // A lone backslash at the end (only possible in f-string chunks).
            out.push('\\');
            i += 1;
            run = i;
            continue;
        }
        let c = b[i + 1];
        i += 2;
        match c {
            b'\n' => {}
            b'\\' => out.push('\\'),
            b'\'' => out.push('\''),
            b'"' => out.push('"'),
            b'a' => out.push('\x07'),
            b'b' => out.push('\x08'),
            b'f' => out.push('\x0c'),
            b'n' => out.push('\n'),
            b'r' => out.push('\r'),
            b't' => out.push('\t'),
            b'v' => out.push('\x0b'),
            b'0'..=b'7' => {
                let mut v = (c - b'0') as u32;
                let mut n = 1;
                while n < 3 && i < b.len() && (b'0'..=b'7').contains(&b[i]) {
                    v = v * 8 + (b[i] - b'0') as u32;
                    i += 1;
                    n += 1;
                }
                out.push(char::from_u32(v).expect("octal escapes are below 0o777"));
            }
            b'x' | b'u' | b'U' => {
                let n = match c {
                    b'x' => 2,
                    b'u' => 4,
                    _ => 8,
                };
                let hex = body.get(i..i + n).unwrap_or("");
                if hex.len() != n || !hex.bytes().all(|h| h.is_ascii_hexdigit()) {
                    return Err(syntax(
                        line,
                        format!(
                            "(unicode error) truncated \\{}{} escape",
                            c as char,
                            "X".repeat(n)
                        ),
                    ));
                }
                let v = u32::from_str_radix(hex, 16).unwrap_or(u32::MAX);
                match char::from_u32(v) {
                    Some(ch) => out.push(ch),
                    None if (0xD800..0xE000).contains(&v) => {
                        return Err(unsupported(line, "lone surrogate in string literal"))
                    }
                    None => return Err(syntax(line, "(unicode error) illegal Unicode character")),
                }
                i += n;
            }
            b'N' => return Err(unsupported(line, "\\N{...} escape")),
            _ => {
                // Unknown escape: the backslash is kept (Python warns).
                out.push('\\');
                i -= 1;
            }
        }
        run = i;
    }
    out.push_str(&body[run..]);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(src: &str) -> Module {
        parse(src).unwrap_or_else(|e| panic!("{src:?}: {e}"))
    }

    fn expr(src: &str) -> Expr {
        let m = module(&format!("x = {src}\n"));
        match m.body.into_iter().next() {
            Some(Stmt::Assign { value, .. }) => value,
            other => panic!("not an assignment: {other:?}"),
        }
    }

    fn konst(src: &str) -> Value {
        match expr(src).kind {
            ExprKind::Const(v) => v,
            other => panic!("not folded: {other:?}"),
        }
    }

    fn err(src: &str) -> PyError {
        match parse(src) {
            Ok(_) => panic!("{src:?} parsed"),
            Err(e) => e,
        }
    }

    fn s(x: &str) -> Value {
        Value::Str(x.into())
    }

    #[test]
    fn literals_are_folded() {
        assert_eq!(
            konst("[1, 'a', (2.5, None), True]"),
            Value::List(vec![
                Value::Int(1),
                s("a"),
                Value::Tuple(vec![Value::Float(2.5), Value::None]),
                Value::Bool(true)
            ])
        );
        assert_eq!(konst("(1,)"), Value::Tuple(vec![Value::Int(1)]));
        assert_eq!(konst("(1)"), Value::Int(1));
        assert_eq!(konst("()"), Value::Tuple(vec![]));
        assert_eq!(
            konst("1, 2,"),
            Value::Tuple(vec![Value::Int(1), Value::Int(2)])
        );
        assert_eq!(konst("-3"), Value::Int(-3));
        // duplicate keys: last value wins, first position kept
        assert_eq!(
            konst("{'a': 1, 'b': 2, 'a': 3,}"),
            Value::Dict(vec![(s("a"), Value::Int(3)), (s("b"), Value::Int(2))])
        );
        // 1 and True are the same key
        assert_eq!(
            konst("{1: 'x', True: 'y'}"),
            Value::Dict(vec![(Value::Int(1), s("y"))])
        );
        assert_eq!(konst("{'b', 'a', 'b'}"), Value::Set(vec![s("b"), s("a")]));
        // an unhashable key is left for the evaluator (TypeError at run time)
        assert!(matches!(expr("{[1]: 2}").kind, ExprKind::Dict(_)));
    }

    #[test]
    fn string_literals() {
        assert_eq!(konst("'a' \"b\" '''c'''"), s("abc"));
        assert_eq!(konst(r"'\n\t\\\'\x41\u00e9\101\0'"), s("\n\t\\'A\u{e9}A\0"));
        assert_eq!(konst(r"r'\n\d'"), s("\\n\\d"));
        assert_eq!(konst(r"'\d\.'"), s("\\d\\."));
        assert_eq!(konst("'a\\\nb'"), s("ab"));
        assert_eq!(konst("('x'\n   'y')"), s("xy"));
        assert_eq!(konst("u'x'"), s("x"));
        assert_eq!(konst("'''it's \"q\"'''"), s("it's \"q\""));
        assert!(err("x = b'abc'\n").message.contains("bytes"));
        assert!(err("x = '\\N{DASH}'\n").message.contains("\\N"));
        assert!(err("x = '\\x4'\n").message.contains("truncated"));
    }

    #[test]
    fn fstrings() {
        let e = expr("f'a{b!r:>{w}}c{{d}}' 'e'");
        let ExprKind::FString(parts) = e.kind else {
            panic!("not an f-string")
        };
        assert_eq!(parts.len(), 3);
        assert!(matches!(&parts[0], FPart::Lit(l) if l == "a"));
        match &parts[1] {
            FPart::Field { conv, spec, .. } => {
                assert_eq!(*conv, Some(b'r'));
                assert_eq!(spec.len(), 2);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(&parts[2], FPart::Lit(l) if l == "c{d}e"));
        assert!(err("x = f'{}'\n").message.contains("empty expression"));
        assert!(err("x = f'a}'\n").message.contains("single '}'"));
        assert!(err("x = f'{a'\n").message.contains("expecting '}'"));
        assert!(err("x = f'{a!x}'\n").message.contains("conversion"));
        assert!(err("x = f'{a\\n}'\n").message.contains("backslash"));
        assert!(err("x = f'{a[0}'\n").message.contains("f-string"));
    }

    #[test]
    fn statements() {
        let m = module(
            "a = b = 1\nc, (d, e) = 1, (2, 3)\nx[0] = 1\ny += 'z'\nif a:\n  pass\nelif b: c = 1\nelse:\n  d = 2\nfor i, j in k:\n  l.append(i)\n",
        );
        assert_eq!(m.body.len(), 6);
        assert!(matches!(&m.body[0], Stmt::Assign { targets, .. } if targets.len() == 2));
        assert!(matches!(&m.body[1], Stmt::Assign { targets, .. }
            if matches!(&targets[0], Target::Unpack(t) if t.len() == 2)));
        assert!(matches!(&m.body[2], Stmt::Assign { targets, .. }
            if matches!(targets[0], Target::Subscript { .. })));
        assert!(matches!(&m.body[3], Stmt::AugAssign { op: BinOp::Add, .. }));
        match &m.body[4] {
            Stmt::If { orelse, .. } => {
                assert!(matches!(&orelse[0], Stmt::If { orelse, .. } if orelse.len() == 1))
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(&m.body[5], Stmt::For { target: Target::Unpack(t), .. } if t.len() == 2));
        assert_eq!(module("a = 1; b = 2;\n").body.len(), 2);
        assert_eq!(&*module("foo = bar\n").names[1], "bar");
    }

    #[test]
    fn unsupported_syntax() {
        for (src, what) in [
            ("def f():\n  pass\n", "def"),
            ("class A:\n  pass\n", "class"),
            ("x = lambda: 1\n", "lambda"),
            ("import os\n", "import"),
            ("from os import path\n", "from"),
            ("while x:\n  pass\n", "while"),
            ("try:\n  pass\nexcept:\n  pass\n", "try"),
            ("with x:\n  pass\n", "with"),
            ("assert x\n", "assert"),
            ("global x\n", "global"),
            ("del x\n", "del"),
            ("@dec\ndef f(): pass\n", "decorator"),
            ("x = (y := 1)\n", "walrus"),
            ("f(*args)\n", "star-args"),
            ("f(**kw)\n", "'**'"),
            ("x = {**a}\n", "'**'"),
            ("x = 2 ** 3\n", "'**'"),
            ("x = a | b\n", "'|'"),
            ("x = ~a\n", "'~'"),
            ("x = a.b\n", "attribute"),
            ("x: int = 1\n", "annotated"),
            ("x = ...\n", "'...'"),
            ("*a, b = c\n", "star"),
            ("x **= 2\n", "'**='"),
        ] {
            let e = err(src);
            assert!(
                e.message.starts_with("unsupported syntax") && e.message.contains(what),
                "{src:?}: {e}"
            );
        }
    }

    #[test]
    fn syntax_errors() {
        assert!(err("x = \n").message.contains("SyntaxError"));
        assert!(err("1 = x\n").message.contains("cannot assign to literal"));
        assert!(err("f() = x\n").message.contains("function call"));
        assert!(err("a + 1 += 2\n").message.contains("augmented"));
        assert!(err("x = 1 2\n").message.contains("invalid syntax"));
        assert!(err("f(a=1, a=2)\n").message.contains("repeated"));
        assert!(err("f(a=1, 2)\n").message.contains("positional argument"));
        assert!(err("f(x for x in y, 1)\n")
            .message
            .contains("parenthesized"));
        let e = err("  x = 1\n");
        assert!(e.message.contains("unexpected indent"), "{e}");
        let e = err("if x:\ny = 1\n");
        assert!(e.message.contains("expected an indented block"), "{e}");
        let e = err("x = 1\nelse:\n  y = 2\n");
        assert_eq!(e.line, 2);
        let e = err("x = [1,\n 2,\n 3 4]\n");
        assert_eq!(e.line, 3);
    }

    #[test]
    fn depth_is_capped() {
        let deep = format!("x = {}1\n", "-".repeat(500));
        assert!(err(&deep).message.contains("too deeply nested"));
        let deep = format!("x = {}1\n", "not ".repeat(500));
        assert!(err(&deep).message.contains("too deeply nested"));
        let mut src = String::new();
        for i in 0..120 {
            src.push_str(&" ".repeat(i));
            src.push_str("if x:\n");
        }
        src.push_str(&" ".repeat(120));
        src.push_str("pass\n");
        let e = err(&src);
        assert!(
            e.message.contains("nested") || e.message.contains("indentation"),
            "{e}"
        );
        // f-strings inside f-strings share the depth budget
        let nested = format!("x = {}1{}\n", "f'{".repeat(3), "}'".repeat(3));
        assert!(parse(&nested).is_err());
    }

    #[test]
    fn slices_and_calls() {
        let e = expr("a[1:-2:3]");
        assert!(matches!(e.kind, ExprKind::Subscript(_, ref i)
            if matches!(**i, Index::Slice(Some(_), Some(_), Some(_)))));
        let e = expr("a[::2]");
        assert!(matches!(e.kind, ExprKind::Subscript(_, ref i)
            if matches!(**i, Index::Slice(None, None, Some(_)))));
        let e = expr("a[1, 2]");
        assert!(matches!(e.kind, ExprKind::Subscript(_, ref i)
            if matches!(**i, Index::Expr(Expr { kind: ExprKind::Const(Value::Tuple(_)), .. }))));
        let e = expr("'{}-{x}'.format(1, x=2)");
        assert!(
            matches!(e.kind, ExprKind::Method(ref m) if m.args.len() == 1 && m.kwargs.len() == 1)
        );
        let e = expr("' '.join(x for x in y if x)");
        assert!(matches!(e.kind, ExprKind::Method(ref m)
            if matches!(m.args[0].kind, ExprKind::Comp(ref c) if c.kind == CompKind::Gen)));
    }
}
