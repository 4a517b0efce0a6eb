//! The AST the parser produces and the evaluator walks: statements,
//! assignment targets and expressions. Displays made only of literals are
//! already folded into constant [`Value`]s by the parser.

use super::Value;

pub(crate) struct Module {
    pub body: Vec<Stmt>,
    /// Interned identifiers; `Expr::Name(i)` refers to `names[i]`.
    pub names: Vec<Box<str>>,
}

#[derive(Debug)]
pub(crate) enum Stmt {
    Assign {
        targets: Vec<Target>,
        value: Expr,
        line: u32,
    },
    AugAssign {
        target: Target,
        op: BinOp,
        value: Expr,
        line: u32,
    },
    Expr {
        value: Expr,
        line: u32,
    },
    If {
        test: Expr,
        body: Vec<Stmt>,
        orelse: Vec<Stmt>,
    },
    For {
        target: Target,
        iter: Expr,
        body: Vec<Stmt>,
        orelse: Vec<Stmt>,
        line: u32,
    },
    Pass,
}

#[derive(Debug)]
pub(crate) enum Target {
    Name(u32),
    /// Tuple or list unpacking.
    Unpack(Vec<Target>),
    Subscript {
        value: Box<Expr>,
        index: Box<Index>,
    },
}

#[derive(Debug)]
pub(crate) struct Expr {
    pub kind: ExprKind,
    pub line: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    FloorDiv,
    Mod,
}

impl BinOp {
    pub(crate) fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::FloorDiv => "//",
            BinOp::Mod => "%",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq,
    NotEq,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    NotIn,
    Is,
    IsNot,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum UnOp {
    Neg,
    Pos,
    Not,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CompKind {
    List,
    Set,
    Dict,
    Gen,
}

#[derive(Debug)]
pub(crate) struct Comp {
    pub kind: CompKind,
    /// The element (for a dict comprehension: the key).
    pub elt: Expr,
    /// For a dict comprehension: the value.
    pub value: Option<Expr>,
    pub gens: Vec<Generator>,
}

#[derive(Debug)]
pub(crate) struct Generator {
    pub target: Target,
    pub iter: Expr,
    pub ifs: Vec<Expr>,
}

#[derive(Debug)]
pub(crate) enum Index {
    Expr(Expr),
    Slice(Option<Expr>, Option<Expr>, Option<Expr>),
}

#[derive(Debug)]
pub(crate) struct Call {
    pub func: Expr,
    pub args: Vec<Expr>,
    pub kwargs: Vec<(Box<str>, Expr)>,
}

#[derive(Debug)]
pub(crate) struct MethodCall {
    pub recv: Expr,
    pub name: Box<str>,
    pub args: Vec<Expr>,
    pub kwargs: Vec<(Box<str>, Expr)>,
}

#[derive(Debug)]
pub(crate) enum FPart {
    Lit(String),
    Field {
        expr: Expr,
        conv: Option<u8>,
        spec: Vec<FPart>,
    },
}

#[derive(Debug)]
pub(crate) enum ExprKind {
    Const(Value),
    Name(u32),
    List(Vec<Expr>),
    Tuple(Vec<Expr>),
    Set(Vec<Expr>),
    Dict(Vec<(Expr, Expr)>),
    BinOp(Box<Expr>, BinOp, Box<Expr>),
    Unary(UnOp, Box<Expr>),
    /// `and` (true) / `or` (false) over two or more operands.
    BoolOp(bool, Vec<Expr>),
    Compare(Box<Expr>, Vec<(CmpOp, Expr)>),
    IfExp(Box<[Expr; 3]>),
    Comp(Box<Comp>),
    Subscript(Box<Expr>, Box<Index>),
    Call(Box<Call>),
    Method(Box<MethodCall>),
    FString(Vec<FPart>),
}
