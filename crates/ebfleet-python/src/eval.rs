//! Tree-walking evaluator over the parser's AST.

use std::borrow::Cow;
use std::cell::{Cell, OnceCell};
use std::time::Instant;

use super::ast::{
    BinOp, CmpOp, Comp, CompKind, Expr, ExprKind, FPart, Index, MethodCall, Module, Stmt, Target,
};
use super::builtins::{self, builtin_kind, Builtin};
use super::format::{format_value, write_repr};
use super::ops::{self, check_hashable, check_len, DictBuilder};
use super::{
    Namespace, PyError, Value, MAX_COPY_UNITS, MAX_EVAL_TIME, MAX_ITERATIONS, MAX_VALUE_DEPTH,
};

use super::ops::unique as unique_values;

type R<T> = Result<T, PyError>;

/// Evaluated positional and keyword arguments.
type Args<'e> = (Vec<Value>, Vec<(&'e str, Value)>);

trait At<T> {
    fn at(self, line: u32) -> R<T>;
}

impl<T> At<T> for Result<T, String> {
    fn at(self, line: u32) -> R<T> {
        self.map_err(|m| PyError::new(line, m))
    }
}

/// Variables of a comprehension, chained to the enclosing comprehension's scope.
struct Scope<'p> {
    vars: Vec<(u32, Value)>,
    parent: Option<&'p Scope<'p>>,
}

type Sc<'a> = Option<&'a Scope<'a>>;

/// Execute a parsed module.
pub(crate) fn run(module: Module, globals: &dyn Fn(&str) -> Option<Value>) -> R<Namespace> {
    let Module {
        mut body,
        mut names,
    } = module;
    // A leading string literal is the module docstring, stored as `__doc__`.
    let doc = match body.first() {
        Some(Stmt::Expr {
            value:
                Expr {
                    kind: ExprKind::Const(Value::Str(s)),
                    ..
                },
            ..
        }) => Some(s.clone()),
        _ => None,
    };
    let doc_id = doc.as_ref().map(|_| {
        names
            .iter()
            .position(|n| &**n == "__doc__")
            .unwrap_or_else(|| {
                names.push("__doc__".into());
                names.len() - 1
            }) as u32
    });
    let n = names.len();
    let mut it = Interp {
        slots: vec![None; n],
        order: Vec::with_capacity(n),
        consts: (0..n).map(|_| OnceCell::new()).collect(),
        names,
        globals,
        iterations: Cell::new(0),
        budget: Cell::new(MAX_COPY_UNITS),
        started: Instant::now(),
        steps: Cell::new(0),
    };
    if let (Some(id), Some(doc)) = (doc_id, doc) {
        it.set_name(id, Value::Str(doc));
    }
    it.exec_block(&mut body, true)?;
    Ok(it.into_namespace())
}

struct Interp<'g> {
    names: Vec<Box<str>>,
    /// Values of assigned names, indexed by interned name.
    slots: Vec<Option<Value>>,
    /// First-assignment order of the names.
    order: Vec<u32>,
    /// Lazily looked-up predefined constants.
    consts: Vec<OnceCell<Option<Value>>>,
    globals: &'g dyn Fn(&str) -> Option<Value>,
    iterations: Cell<u64>,
    /// Remaining copy budget (see `MAX_COPY_UNITS`).
    budget: Cell<u64>,
    /// When the run started, for the time budget (`MAX_EVAL_TIME`).
    started: Instant,
    /// Expressions evaluated, so the clock is read only every few of them.
    steps: Cell<u32>,
}

fn budget_exhausted(line: u32) -> PyError {
    PyError::new(
        line,
        "unsupported: evaluation copies too much data (value semantics budget exhausted)",
    )
}

fn is_place(e: &Expr) -> bool {
    match &e.kind {
        ExprKind::Name(_) => true,
        ExprKind::Subscript(base, idx) => matches!(**idx, Index::Expr(_)) && is_place(base),
        _ => false,
    }
}

fn check_depth(v: &Value, limit: usize, line: u32) -> R<()> {
    if ops::depth_within(v, limit) {
        Ok(())
    } else {
        Err(PyError::new(
            line,
            format!("unsupported: value nested more than {MAX_VALUE_DEPTH} levels deep"),
        ))
    }
}

/// Unpack `v` into `n` values for a tuple/list target.
fn unpack(v: Value, n: usize, line: u32) -> R<Vec<Value>> {
    let items = match v {
        Value::List(x) | Value::Tuple(x) | Value::Set(x) => x,
        v @ (Value::Str(_) | Value::Dict(_)) => ops::iter_values(v).at(line)?,
        other => {
            return Err(PyError::new(
                line,
                format!(
                    "TypeError: cannot unpack non-iterable {} object",
                    other.type_name()
                ),
            ))
        }
    };
    if items.len() > n {
        return Err(PyError::new(
            line,
            format!("ValueError: too many values to unpack (expected {n})"),
        ));
    }
    if items.len() < n {
        return Err(PyError::new(
            line,
            format!(
                "ValueError: not enough values to unpack (expected {n}, got {})",
                items.len()
            ),
        ));
    }
    Ok(items)
}

/// Bind a comprehension target.
fn bind(vars: &mut Vec<(u32, Value)>, target: &Target, v: Value, line: u32) -> R<()> {
    match target {
        Target::Name(id) => {
            match vars.iter_mut().find(|(k, _)| k == id) {
                Some(slot) => slot.1 = v,
                None => vars.push((*id, v)),
            }
            Ok(())
        }
        Target::Unpack(ts) => {
            let items = unpack(v, ts.len(), line)?;
            for (t, x) in ts.iter().zip(items) {
                bind(vars, t, x, line)?;
            }
            Ok(())
        }
        Target::Subscript { .. } => Err(PyError::new(
            line,
            "unsupported syntax: subscript as comprehension target",
        )),
    }
}

/// `cur op= rhs`, in place where Python mutates (list `+=` extends).
fn inplace(cur: &mut Value, op: BinOp, rhs: Value) -> Result<(), String> {
    match (op, &mut *cur, rhs) {
        (BinOp::Add, Value::Str(s), Value::Str(r)) => {
            check_len(s.len() + r.len())?;
            s.push_str(&r);
            Ok(())
        }
        (BinOp::Add, Value::List(l), rhs) => {
            let more = ops::iter_values(rhs)?;
            check_len(l.len() + more.len())?;
            l.extend(more);
            Ok(())
        }
        (_, _, rhs) => {
            let old = std::mem::replace(cur, Value::None);
            *cur = ops::binop(old, op, &rhs)?;
            Ok(())
        }
    }
}

impl Interp<'_> {
    fn into_namespace(mut self) -> Namespace {
        let entries = self
            .order
            .iter()
            .map(|&id| {
                let id = id as usize;
                (
                    self.names[id].to_string(),
                    self.slots[id].take().unwrap_or(Value::None),
                )
            })
            .collect();
        Namespace::from_entries(entries)
    }

    /// Every 1024 expressions (and every loop pass), give up once the file has run
    /// longer than `MAX_EVAL_TIME`: each primitive step is bounded by the size caps,
    /// so this bounds what no size cap does (quadratic loops over big values).
    fn check_time(&self, line: u32) -> R<()> {
        if self.started.elapsed() > MAX_EVAL_TIME {
            return Err(PyError::new(
                line,
                format!(
                    "unsupported: evaluation takes longer than {} s",
                    MAX_EVAL_TIME.as_secs_f32()
                ),
            ));
        }
        Ok(())
    }

    fn step(&self, line: u32) -> R<()> {
        let n = self.steps.get().wrapping_add(1);
        self.steps.set(n);
        if n.is_multiple_of(1024) {
            self.check_time(line)?;
        }
        Ok(())
    }

    /// Refuse, before it is built, a value of `units` (see `charge`) the budget cannot
    /// pay for.
    fn afford(&self, units: u64, line: u32) -> R<()> {
        if units > self.budget.get() {
            return Err(budget_exhausted(line));
        }
        Ok(())
    }

    /// The size of `l op r` before it is computed: `seq * n` repeats `seq`'s values
    /// `n` times and `+` copies both sides, so a 90-byte file cannot make gigabytes.
    fn binop_units(&self, l: &Value, op: BinOp, r: &Value) -> u64 {
        let left = self.budget.get().saturating_add(1);
        let is_seq = |v: &Value| matches!(v, Value::List(_) | Value::Tuple(_));
        match (op, l, r) {
            (BinOp::Mul, seq, Value::Int(n)) | (BinOp::Mul, Value::Int(n), seq) if is_seq(seq) => {
                ops::size_units(seq, left).saturating_mul((*n).max(0) as u64)
            }
            (BinOp::Add, l, r) if is_seq(l) && is_seq(r) => {
                ops::size_units(l, left).saturating_add(ops::size_units(r, left))
            }
            _ => 0,
        }
    }

    fn tick(&self, n: usize, line: u32) -> R<()> {
        self.check_time(line)?;
        let t = self.iterations.get().saturating_add(n as u64);
        if t > MAX_ITERATIONS {
            return Err(PyError::new(
                line,
                format!("unsupported: more than {MAX_ITERATIONS} loop iterations"),
            ));
        }
        self.iterations.set(t);
        Ok(())
    }

    /// Account for copying (or creating) `v`.
    fn charge(&self, v: &Value, line: u32) -> R<()> {
        let left = self.budget.get();
        let n = match v {
            Value::List(_) | Value::Tuple(_) | Value::Set(_) | Value::Dict(_) => {
                ops::size_units(v, left)
            }
            Value::Str(s) => 1 + (s.len() / 32) as u64,
            _ => 1,
        };
        if n > left {
            return Err(budget_exhausted(line));
        }
        self.budget.set(left - n);
        Ok(())
    }

    fn set_name(&mut self, id: u32, v: Value) {
        let slot = &mut self.slots[id as usize];
        if slot.is_none() {
            self.order.push(id);
        }
        *slot = Some(v);
    }

    fn constant(&self, id: u32) -> Option<&Value> {
        self.consts[id as usize]
            .get_or_init(|| (self.globals)(&self.names[id as usize]))
            .as_ref()
    }

    fn name_error(&self, id: u32, line: u32) -> PyError {
        let name = &self.names[id as usize];
        let msg = match builtin_kind(name) {
            Some(Builtin::Function | Builtin::IterOnly) => {
                format!("unsupported: builtin function '{name}' used as a value")
            }
            Some(Builtin::Unsupported) => format!("unsupported: builtin '{name}'"),
            None => format!("name '{name}' is not defined"),
        };
        PyError::new(line, msg)
    }

    fn lookup<'s>(&'s self, id: u32, sc: Sc<'s>, line: u32) -> R<&'s Value> {
        let mut cur = sc;
        while let Some(s) = cur {
            if let Some((_, v)) = s.vars.iter().find(|(k, _)| *k == id) {
                return Ok(v);
            }
            cur = s.parent;
        }
        if let Some(v) = &self.slots[id as usize] {
            return Ok(v);
        }
        if let Some(v) = self.constant(id) {
            return Ok(v);
        }
        Err(self.name_error(id, line))
    }

    /// Whether `id` resolves to a builtin (not assigned, not a constant, not a
    /// comprehension variable).
    fn is_builtin_name(&self, id: u32, sc: Sc<'_>) -> bool {
        let mut cur = sc;
        while let Some(s) = cur {
            if s.vars.iter().any(|(k, _)| *k == id) {
                return false;
            }
            cur = s.parent;
        }
        self.slots[id as usize].is_none() && self.constant(id).is_none()
    }

    fn root_mut(&mut self, id: u32, line: u32) -> R<&mut Value> {
        let i = id as usize;
        if self.slots[i].is_some() {
            return Ok(self.slots[i].as_mut().expect("checked"));
        }
        if self.constant(id).is_none() {
            return Err(self.name_error(id, line));
        }
        match self.consts[i].get_mut() {
            Some(Some(v)) => Ok(v),
            _ => unreachable!("the constant was just looked up"),
        }
    }

    /// A mutable reference to the value an assignable expression (`name`, `name[k]...`)
    /// denotes, and the number of subscripts on the way.
    fn place(&mut self, e: &Expr, line: u32) -> R<(&mut Value, usize)> {
        let mut keys_exprs = Vec::new();
        let mut cur = e;
        let root = loop {
            match &cur.kind {
                ExprKind::Name(id) => break *id,
                ExprKind::Subscript(base, idx) => match &**idx {
                    Index::Expr(k) => {
                        keys_exprs.push(k);
                        cur = base;
                    }
                    Index::Slice(..) => {
                        return Err(PyError::new(line, "unsupported syntax: slice assignment"))
                    }
                },
                _ => {
                    return Err(PyError::new(
                        line,
                        "unsupported syntax: assignment to this expression",
                    ))
                }
            }
        };
        let mut keys = Vec::with_capacity(keys_exprs.len());
        for k in keys_exprs.iter().rev() {
            keys.push(self.eval(k, None)?);
        }
        let mut v = self.root_mut(root, line)?;
        for k in &keys {
            v = ops::index_mut(v, k).at(line)?;
        }
        Ok((v, keys.len()))
    }

    // ----- statements -----

    fn exec_block(&mut self, stmts: &mut [Stmt], once: bool) -> R<()> {
        for s in stmts {
            self.exec_stmt(s, once)?;
        }
        Ok(())
    }

    /// `once`: the statement runs at most once, so constant values can be moved out of
    /// the AST instead of cloned.
    fn exec_stmt(&mut self, stmt: &mut Stmt, once: bool) -> R<()> {
        match stmt {
            Stmt::Assign {
                targets,
                value,
                line,
            } => {
                let line = *line;
                let v = match &mut value.kind {
                    ExprKind::Const(c) if once => std::mem::replace(c, Value::None),
                    ExprKind::Const(c) => {
                        self.charge(c, line)?;
                        c.clone()
                    }
                    _ => {
                        let v = self.eval(value, None)?;
                        check_depth(&v, MAX_VALUE_DEPTH, line)?;
                        v
                    }
                };
                if let Some((last, rest)) = targets.split_last() {
                    for t in rest {
                        self.charge(&v, line)?;
                        self.assign(t, v.clone(), line)?;
                    }
                    self.assign(last, v, line)?;
                }
                Ok(())
            }
            Stmt::AugAssign {
                target,
                op,
                value,
                line,
            } => {
                let line = *line;
                let rhs = self.eval_iter_arg(value, None)?;
                match target {
                    Target::Name(id) => {
                        check_depth(&rhs, MAX_VALUE_DEPTH, line)?;
                        let id = *id;
                        if *op == BinOp::Mul {
                            let cur = self.lookup(id, None, line)?;
                            let units = self.binop_units(cur, BinOp::Mul, &rhs);
                            self.afford(units, line)?;
                            self.budget.set(self.budget.get() - units);
                        }
                        if let Some(cur) = self.slots[id as usize].as_mut() {
                            inplace(cur, *op, rhs).at(line)
                        } else {
                            let mut cur = match self.constant(id) {
                                Some(v) => v.clone(),
                                None => return Err(self.name_error(id, line)),
                            };
                            inplace(&mut cur, *op, rhs).at(line)?;
                            self.set_name(id, cur);
                            Ok(())
                        }
                    }
                    Target::Subscript { value, index } => {
                        let Index::Expr(k) = &**index else {
                            return Err(PyError::new(line, "unsupported syntax: slice assignment"));
                        };
                        let key = self.eval(k, None)?;
                        let budget = self.budget.get();
                        let (place, depth) = self.place(value, line)?;
                        check_depth(&rhs, MAX_VALUE_DEPTH.saturating_sub(depth + 1), line)?;
                        let slot = ops::index_mut(place, &key).at(line)?;
                        let mut units = 0;
                        if let (BinOp::Mul, Value::List(_) | Value::Tuple(_), Value::Int(n)) =
                            (*op, &*slot, &rhs)
                        {
                            units = ops::size_units(slot, budget.saturating_add(1))
                                .saturating_mul((*n).max(0) as u64);
                            if units > budget {
                                return Err(budget_exhausted(line));
                            }
                        }
                        inplace(slot, *op, rhs).at(line)?;
                        self.budget.set(budget - units);
                        Ok(())
                    }
                    Target::Unpack(_) => Err(PyError::new(
                        line,
                        "SyntaxError: illegal expression for augmented assignment",
                    )),
                }
            }
            Stmt::Expr { value, line } => {
                let line = *line;
                if let ExprKind::Method(m) = &value.kind {
                    if builtins::is_mutating(&m.name) {
                        return self.mutating_call(m, line);
                    }
                }
                if self.iter_only(value, None) {
                    self.iterate(value, None)?;
                } else {
                    self.eval(value, None)?;
                }
                Ok(())
            }
            Stmt::If { test, body, orelse } => {
                if self.truthy(test, None)? {
                    self.exec_block(body, once)
                } else {
                    self.exec_block(orelse, once)
                }
            }
            Stmt::For {
                target,
                iter,
                body,
                orelse,
                line,
            } => {
                let line = *line;
                let items = match self.iterate(iter, None)? {
                    Cow::Borrowed(items) => {
                        for it in items {
                            self.charge(it, line)?;
                        }
                        items.to_vec()
                    }
                    Cow::Owned(items) => items,
                };
                self.tick(items.len(), line)?;
                for item in items {
                    self.assign(target, item, line)?;
                    self.exec_block(body, false)?;
                }
                self.exec_block(orelse, once)
            }
            Stmt::Pass => Ok(()),
        }
    }

    fn assign(&mut self, target: &Target, v: Value, line: u32) -> R<()> {
        match target {
            Target::Name(id) => {
                self.set_name(*id, v);
                Ok(())
            }
            Target::Unpack(ts) => {
                let items = unpack(v, ts.len(), line)?;
                for (t, x) in ts.iter().zip(items) {
                    self.assign(t, x, line)?;
                }
                Ok(())
            }
            Target::Subscript { value, index } => {
                let Index::Expr(k) = &**index else {
                    return Err(PyError::new(line, "unsupported syntax: slice assignment"));
                };
                let key = self.eval(k, None)?;
                let (place, depth) = self.place(value, line)?;
                check_depth(&v, MAX_VALUE_DEPTH.saturating_sub(depth + 1), line)?;
                ops::set_item(place, key, v).at(line)
            }
        }
    }

    /// A statement-level call of a mutating method: mutate the named value in place.
    fn mutating_call(&mut self, m: &MethodCall, line: u32) -> R<()> {
        let (args, kwargs) = self.eval_args(
            &m.args,
            &m.kwargs,
            builtins::method_takes_iterable(&m.name),
            None,
        )?;
        if is_place(&m.recv) {
            let (place, depth) = self.place(&m.recv, line)?;
            for a in args.iter().chain(kwargs.iter().map(|(_, v)| v)) {
                check_depth(a, MAX_VALUE_DEPTH.saturating_sub(depth + 1), line)?;
            }
            builtins::call_mutating(place, &m.name, args, kwargs).at(line)?;
        } else {
            let mut recv = self.eval(&m.recv, None)?;
            builtins::call_mutating(&mut recv, &m.name, args, kwargs).at(line)?;
        }
        Ok(())
    }

    // ----- expressions -----

    fn truthy(&self, e: &Expr, sc: Sc<'_>) -> R<bool> {
        Ok(self.eval_ref(e, sc)?.truthy())
    }

    fn eval_all(&self, items: &[Expr], sc: Sc<'_>) -> R<Vec<Value>> {
        let mut out = Vec::with_capacity(items.len());
        for it in items {
            out.push(self.eval(it, sc)?);
        }
        Ok(out)
    }

    /// Evaluate `e` without copying names and constants where possible.
    fn eval_ref<'s>(&'s self, e: &'s Expr, sc: Sc<'s>) -> R<Cow<'s, Value>> {
        match &e.kind {
            ExprKind::Const(v) => Ok(Cow::Borrowed(v)),
            ExprKind::Name(id) => Ok(Cow::Borrowed(self.lookup(*id, sc, e.line)?)),
            ExprKind::Subscript(base, idx) => {
                let b = self.eval_ref(base, sc)?;
                match (b, &**idx) {
                    (
                        Cow::Borrowed(bv @ (Value::List(_) | Value::Tuple(_) | Value::Dict(_))),
                        Index::Expr(k),
                    ) => {
                        let key = self.eval_ref(k, sc)?;
                        Ok(Cow::Borrowed(ops::index_ref(bv, &key).at(e.line)?))
                    }
                    (b, idx) => Ok(Cow::Owned(self.subscript(&b, idx, sc, e.line)?)),
                }
            }
            _ => Ok(Cow::Owned(self.eval(e, sc)?)),
        }
    }

    fn eval(&self, e: &Expr, sc: Sc<'_>) -> R<Value> {
        self.step(e.line)?;
        let v = self.eval_inner(e, sc)?;
        // Displays and comprehensions are charged through their elements.
        if !matches!(
            e.kind,
            ExprKind::List(_)
                | ExprKind::Tuple(_)
                | ExprKind::Set(_)
                | ExprKind::Dict(_)
                | ExprKind::Comp(_)
                | ExprKind::Unary(..)
                | ExprKind::BoolOp(..)
                | ExprKind::Compare(..)
                | ExprKind::IfExp(_)
        ) {
            self.charge(&v, e.line)?;
        }
        Ok(v)
    }

    fn eval_inner(&self, e: &Expr, sc: Sc<'_>) -> R<Value> {
        let line = e.line;
        match &e.kind {
            ExprKind::Const(v) => Ok(v.clone()),
            ExprKind::Name(id) => Ok(self.lookup(*id, sc, line)?.clone()),
            ExprKind::List(items) => Ok(Value::List(self.eval_all(items, sc)?)),
            ExprKind::Tuple(items) => Ok(Value::Tuple(self.eval_all(items, sc)?)),
            ExprKind::Set(items) => {
                let vals = self.eval_all(items, sc)?;
                for v in &vals {
                    check_hashable(v).at(line)?;
                }
                Ok(Value::Set(unique_values(vals)))
            }
            ExprKind::Dict(items) => {
                let mut b = DictBuilder::with_capacity(items.len());
                for (k, v) in items {
                    let kv = self.eval(k, sc)?;
                    let vv = self.eval(v, sc)?;
                    check_hashable(&kv).at(k.line)?;
                    b.insert(kv, vv);
                }
                Ok(Value::Dict(b.finish()))
            }
            ExprKind::BinOp(l, op, r) => {
                if *op == BinOp::Mod {
                    let lv = self.eval_ref(l, sc)?;
                    let rv = self.eval_ref(r, sc)?;
                    if let Value::Str(fmt) = &*lv {
                        let s = super::format::percent_format(fmt, &rv).at(line)?;
                        check_len(s.len()).at(line)?;
                        return Ok(Value::Str(s));
                    }
                    return ops::binop(lv.into_owned(), *op, &rv).at(line);
                }
                let lv = self.eval(l, sc)?;
                let rv = self.eval_ref(r, sc)?;
                self.afford(self.binop_units(&lv, *op, &rv), line)?;
                ops::binop(lv, *op, &rv).at(line)
            }
            ExprKind::Unary(op, x) => {
                let v = self.eval(x, sc)?;
                ops::unary(*op, v).at(line)
            }
            ExprKind::BoolOp(is_and, items) => {
                let n = items.len();
                for (i, it) in items.iter().enumerate() {
                    let v = self.eval(it, sc)?;
                    if i + 1 == n || v.truthy() != *is_and {
                        return Ok(v);
                    }
                }
                Ok(Value::None)
            }
            ExprKind::Compare(first, rest) => {
                let mut left = self.eval_ref(first, sc)?;
                for (op, r) in rest {
                    let right = if matches!(op, CmpOp::In | CmpOp::NotIn) && self.iter_only(r, sc)
                    {
                        Cow::Owned(Value::List(self.iterate(r, sc)?.into_owned()))
                    } else {
                        self.eval_ref(r, sc)?
                    };
                    if !ops::compare(*op, &left, &right).at(line)? {
                        return Ok(Value::Bool(false));
                    }
                    left = right;
                }
                Ok(Value::Bool(true))
            }
            ExprKind::IfExp(parts) => {
                let [test, body, orelse] = &**parts;
                if self.truthy(test, sc)? {
                    self.eval(body, sc)
                } else {
                    self.eval(orelse, sc)
                }
            }
            ExprKind::Comp(c) => match c.kind {
                CompKind::List => Ok(Value::List(self.comp_values(c, sc, line)?)),
                CompKind::Set => {
                    let vals = self.comp_values(c, sc, line)?;
                    for v in &vals {
                        check_hashable(v).at(line)?;
                    }
                    Ok(Value::Set(unique_values(vals)))
                }
                CompKind::Dict => self.dict_comp(c, sc, line),
                CompKind::Gen => Err(PyError::new(
                    line,
                    "unsupported: generator expression used as a value (only iteration is supported)",
                )),
            },
            ExprKind::Subscript(base, idx) => {
                let b = self.eval_ref(base, sc)?;
                self.subscript(&b, idx, sc, line)
            }
            ExprKind::Call(c) => {
                let ExprKind::Name(id) = c.func.kind else {
                    let f = self.eval(&c.func, sc)?;
                    return Err(PyError::new(
                        line,
                        format!("TypeError: '{}' object is not callable", f.type_name()),
                    ));
                };
                if !self.is_builtin_name(id, sc) {
                    let f = self.lookup(id, sc, line)?;
                    return Err(PyError::new(
                        line,
                        format!("TypeError: '{}' object is not callable", f.type_name()),
                    ));
                }
                let name = &*self.names[id as usize];
                match builtin_kind(name) {
                    Some(Builtin::Function) => {
                        let (args, kwargs) =
                            self.eval_args(&c.args, &c.kwargs, builtins::takes_iterables(name), sc)?;
                        let v = builtins::call_function(name, args, kwargs).at(line)?;
                        Ok(v)
                    }
                    Some(Builtin::IterOnly) => Err(PyError::new(
                        line,
                        format!("unsupported: {name}() used as a value (only iteration is supported)"),
                    )),
                    _ => Err(self.name_error(id, line)),
                }
            }
            ExprKind::Method(m) => self.method(m, sc, line),
            ExprKind::FString(parts) => {
                let mut out = String::new();
                self.fstring(&mut out, parts, sc, line)?;
                Ok(Value::Str(out))
            }
        }
    }

    fn subscript(&self, b: &Value, idx: &Index, sc: Sc<'_>, line: u32) -> R<Value> {
        match idx {
            Index::Expr(k) => {
                let key = self.eval_ref(k, sc)?;
                ops::index(b, &key).at(line)
            }
            Index::Slice(lo, hi, st) => {
                let ev = |x: &Option<Expr>| -> R<Option<Value>> {
                    match x {
                        Some(x) => Ok(Some(self.eval(x, sc)?)),
                        None => Ok(None),
                    }
                };
                let (lo, hi, st) = (ev(lo)?, ev(hi)?, ev(st)?);
                ops::slice(b, lo.as_ref(), hi.as_ref(), st.as_ref()).at(line)
            }
        }
    }

    fn method(&self, m: &MethodCall, sc: Sc<'_>, line: u32) -> R<Value> {
        let name = &*m.name;
        if matches!(name, "items" | "keys" | "values") {
            let recv = self.eval_ref(&m.recv, sc)?;
            return Err(PyError::new(
                line,
                if matches!(*recv, Value::Dict(_)) {
                    format!("unsupported: dict.{name}() view used as a value (only iteration is supported)")
                } else {
                    format!(
                        "AttributeError: '{}' object has no attribute '{name}'",
                        recv.type_name()
                    )
                },
            ));
        }
        if builtins::is_mutating(name) {
            if is_place(&m.recv) {
                return Err(PyError::new(
                    line,
                    format!("unsupported: mutating method '.{name}()' inside an expression"),
                ));
            }
            let mut recv = self.eval(&m.recv, sc)?;
            let (args, kwargs) = self.eval_args(
                &m.args,
                &m.kwargs,
                builtins::method_takes_iterable(name),
                sc,
            )?;
            return builtins::call_mutating(&mut recv, name, args, kwargs).at(line);
        }
        let recv = self.eval_ref(&m.recv, sc)?;
        let (args, kwargs) = self.eval_args(
            &m.args,
            &m.kwargs,
            builtins::method_takes_iterable(name),
            sc,
        )?;
        builtins::call_method(&recv, name, &args, &kwargs).at(line)
    }

    fn eval_args<'e>(
        &self,
        args: &[Expr],
        kwargs: &'e [(Box<str>, Expr)],
        iterables: bool,
        sc: Sc<'_>,
    ) -> R<Args<'e>> {
        let mut a = Vec::with_capacity(args.len());
        for e in args {
            a.push(if iterables {
                self.eval_iter_arg(e, sc)?
            } else {
                self.eval(e, sc)?
            });
        }
        let mut k = Vec::with_capacity(kwargs.len());
        for (name, e) in kwargs {
            k.push((&**name, self.eval(e, sc)?));
        }
        Ok((a, k))
    }

    /// Evaluate an argument that is consumed as an iterable: generator expressions,
    /// `range()` and dict views are materialized as lists.
    fn eval_iter_arg(&self, e: &Expr, sc: Sc<'_>) -> R<Value> {
        if self.iter_only(e, sc) {
            // Materialized (`range`, `zip`, ...): paid for like any other list.
            let v = Value::List(self.iterate(e, sc)?.into_owned());
            self.charge(&v, e.line)?;
            Ok(v)
        } else {
            self.eval(e, sc)
        }
    }

    /// Whether `e` is only meaningful as an iterable (a generator expression, a call of
    /// `range`/`zip`/`enumerate`/`reversed`, or `.items()`/`.keys()`/`.values()`).
    fn iter_only(&self, e: &Expr, sc: Sc<'_>) -> bool {
        match &e.kind {
            ExprKind::Comp(c) => c.kind == CompKind::Gen,
            ExprKind::Call(c) => match c.func.kind {
                ExprKind::Name(id) => {
                    builtin_kind(&self.names[id as usize]) == Some(Builtin::IterOnly)
                        && self.is_builtin_name(id, sc)
                }
                _ => false,
            },
            ExprKind::Method(m) => matches!(&*m.name, "items" | "keys" | "values"),
            _ => false,
        }
    }

    /// The items `e` produces when iterated.
    fn iterate<'s>(&'s self, e: &'s Expr, sc: Sc<'s>) -> R<Cow<'s, [Value]>> {
        let line = e.line;
        match &e.kind {
            ExprKind::Comp(c) if c.kind == CompKind::Gen => {
                return Ok(Cow::Owned(self.comp_values(c, sc, line)?))
            }
            ExprKind::Call(c) if self.iter_only(e, sc) => {
                if let ExprKind::Name(id) = c.func.kind {
                    let name = &*self.names[id as usize];
                    let (args, kwargs) = self.eval_args(&c.args, &c.kwargs, true, sc)?;
                    return Ok(Cow::Owned(
                        builtins::iterate_function(name, args, kwargs).at(line)?,
                    ));
                }
            }
            ExprKind::Method(m) if matches!(&*m.name, "items" | "keys" | "values") => {
                let recv = self.eval_ref(&m.recv, sc)?;
                let Value::Dict(d) = &*recv else {
                    return Err(PyError::new(
                        line,
                        format!(
                            "AttributeError: '{}' object has no attribute '{}'",
                            recv.type_name(),
                            m.name
                        ),
                    ));
                };
                if !m.args.is_empty() || !m.kwargs.is_empty() {
                    return Err(PyError::new(
                        line,
                        format!("TypeError: dict.{}() takes no arguments", m.name),
                    ));
                }
                for (k, v) in d {
                    self.charge(k, line)?;
                    self.charge(v, line)?;
                }
                let out: Vec<Value> = match &*m.name {
                    "keys" => d.iter().map(|(k, _)| k.clone()).collect(),
                    "values" => d.iter().map(|(_, v)| v.clone()).collect(),
                    _ => d
                        .iter()
                        .map(|(k, v)| Value::Tuple(vec![k.clone(), v.clone()]))
                        .collect(),
                };
                return Ok(Cow::Owned(out));
            }
            _ => {}
        }
        match self.eval_ref(e, sc)? {
            Cow::Borrowed(Value::List(x) | Value::Tuple(x) | Value::Set(x)) => {
                Ok(Cow::Borrowed(x.as_slice()))
            }
            Cow::Owned(Value::List(x) | Value::Tuple(x) | Value::Set(x)) => Ok(Cow::Owned(x)),
            other => Ok(Cow::Owned(ops::iter_values(other.into_owned()).at(line)?)),
        }
    }

    // ----- comprehensions -----

    /// Run the `for`/`if` clauses from `level` on, calling `sink` with the innermost scope.
    fn comp_loop(
        &self,
        c: &Comp,
        level: usize,
        sc: Sc<'_>,
        line: u32,
        sink: &mut dyn FnMut(&Scope<'_>) -> R<()>,
    ) -> R<()> {
        let g = &c.gens[level];
        // The first iterable is evaluated in the enclosing scope, later ones in the
        // comprehension's scope (which `sc` is, past level 0).
        let items = self.iterate(&g.iter, sc)?;
        self.tick(items.len(), line)?;
        let mut frame = Scope {
            vars: Vec::with_capacity(2),
            parent: sc,
        };
        'items: for item in items.iter() {
            if matches!(items, Cow::Borrowed(_)) {
                self.charge(item, line)?;
            }
            bind(&mut frame.vars, &g.target, item.clone(), line)?;
            for cond in &g.ifs {
                if !self.truthy(cond, Some(&frame))? {
                    continue 'items;
                }
            }
            if level + 1 < c.gens.len() {
                self.comp_loop(c, level + 1, Some(&frame), line, sink)?;
            } else {
                sink(&frame)?;
            }
        }
        Ok(())
    }

    fn comp_values(&self, c: &Comp, sc: Sc<'_>, line: u32) -> R<Vec<Value>> {
        let mut out = Vec::new();
        self.comp_loop(c, 0, sc, line, &mut |frame| {
            out.push(self.eval(&c.elt, Some(frame))?);
            Ok(())
        })?;
        Ok(out)
    }

    fn dict_comp(&self, c: &Comp, sc: Sc<'_>, line: u32) -> R<Value> {
        let mut b = DictBuilder::with_capacity(4);
        let value = c
            .value
            .as_ref()
            .ok_or_else(|| PyError::new(line, "dict comprehension without value"))?;
        self.comp_loop(c, 0, sc, line, &mut |frame| {
            let k = self.eval(&c.elt, Some(frame))?;
            let v = self.eval(value, Some(frame))?;
            check_hashable(&k).at(line)?;
            b.insert(k, v);
            Ok(())
        })?;
        Ok(Value::Dict(b.finish()))
    }

    // ----- f-strings -----

    fn fstring(&self, out: &mut String, parts: &[FPart], sc: Sc<'_>, line: u32) -> R<()> {
        for p in parts {
            match p {
                FPart::Lit(s) => out.push_str(s),
                FPart::Field { expr, conv, spec } => {
                    let v = self.eval_ref(expr, sc)?;
                    let spec_s: Cow<str> = if spec.is_empty() {
                        Cow::Borrowed("")
                    } else {
                        let mut s = String::new();
                        self.fstring(&mut s, spec, sc, line)?;
                        Cow::Owned(s)
                    };
                    match conv {
                        None => format_value(out, &v, &spec_s).at(expr.line)?,
                        Some(c) => {
                            let mut s = String::new();
                            match c {
                                b's' => s = v.py_str(),
                                b'r' => write_repr(&mut s, &v, false),
                                _ => write_repr(&mut s, &v, true),
                            }
                            format_value(out, &Value::Str(s), &spec_s).at(expr.line)?;
                        }
                    }
                    check_len(out.len()).at(line)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::exec;
    use super::*;

    fn globals(name: &str) -> Option<Value> {
        match name {
            "SYSTEM" => Some(Value::Dict(vec![
                (s("name"), s("system")),
                (s("version"), s("system")),
            ])),
            "ARCH" => Some(s("x86_64")),
            "SHLIB_EXT" => Some(s("so")),
            "SOURCE_TAR_GZ" => Some(s("%(name)s-%(version)s.tar.gz")),
            _ => None,
        }
    }

    fn s(x: &str) -> Value {
        Value::Str(x.into())
    }
    fn i(x: i64) -> Value {
        Value::Int(x)
    }
    fn l(x: Vec<Value>) -> Value {
        Value::List(x)
    }
    fn t(x: Vec<Value>) -> Value {
        Value::Tuple(x)
    }
    fn strs(x: &[&str]) -> Value {
        l(x.iter().map(|p| s(p)).collect())
    }

    fn run(src: &str) -> Namespace {
        exec(src, &globals).unwrap_or_else(|e| panic!("{src:?}: {e}"))
    }

    /// The value of `x` after running `src`.
    fn x(src: &str) -> Value {
        run(src).get("x").cloned().expect("x is assigned")
    }

    fn err(src: &str) -> PyError {
        match exec(src, &globals) {
            Ok(ns) => panic!("{src:?} succeeded: {:?}", ns.iter().collect::<Vec<_>>()),
            Err(e) => e,
        }
    }

    #[test]
    fn easyconfig_shape() {
        let ns = run(r#"
easyblock = 'ConfigureMake'

name = 'zlib'
version = '1.3.1'
local_short = '.'.join(version.split('.')[:2])

homepage = 'https://www.zlib.net/'
description = """zlib is designed to be a free,
 general-purpose library."""

toolchain = {'name': 'GCCcore', 'version': '13.3.0'}
toolchainopts = {'pic': True}

source_urls = ['https://zlib.net/fossils']
sources = [SOURCELOWER_TAR_GZ if False else SOURCE_TAR_GZ]
checksums = ['9a93b2b7dfdac77ceba5a558a580e74667dd6ede4e2a1d4b3a0cb7c3ebd8a5e7']

builddependencies = [('binutils', '2.42')]
dependencies = [('Python', '3.12.3'), ('x', '1', '', SYSTEM)]

sanity_check_paths = {
    'files': ['include/zconf.h', 'lib/libz.a', 'lib/libz.%s' % SHLIB_EXT],
    'dirs': [],
}

moduleclass = 'lib'
"#);
        let names: Vec<&str> = ns.iter().map(|(k, _)| k).collect();
        assert_eq!(
            names,
            [
                "easyblock",
                "name",
                "version",
                "local_short",
                "homepage",
                "description",
                "toolchain",
                "toolchainopts",
                "source_urls",
                "sources",
                "checksums",
                "builddependencies",
                "dependencies",
                "sanity_check_paths",
                "moduleclass"
            ]
        );
        assert_eq!(ns.get("local_short"), Some(&s("1.3")));
        assert_eq!(
            ns.get("description"),
            Some(&s(
                "zlib is designed to be a free,\n general-purpose library."
            ))
        );
        assert_eq!(
            ns.get("sources"),
            Some(&strs(&["%(name)s-%(version)s.tar.gz"]))
        );
        assert_eq!(
            ns.get("sanity_check_paths")
                .and_then(|v| v.dict_get("files")),
            Some(&strs(&["include/zconf.h", "lib/libz.a", "lib/libz.so"]))
        );
        assert_eq!(
            ns.get("dependencies"),
            Some(&l(vec![
                t(vec![s("Python"), s("3.12.3")]),
                t(vec![
                    s("x"),
                    s("1"),
                    s(""),
                    Value::Dict(vec![(s("name"), s("system")), (s("version"), s("system"))])
                ])
            ]))
        );
    }

    #[test]
    fn templates_stay_literal() {
        assert_eq!(
            x("x = '%(version)s-%(versionsuffix)s'"),
            s("%(version)s-%(versionsuffix)s")
        );
        assert_eq!(x("x = '%%(version)s/%s' % 'a'"), s("%(version)s/a"));
        assert_eq!(x("x = '%(name)s-%(v)s' % {'name': 'n', 'v': 1}"), s("n-1"));
        assert!(err("x = '%(name)s' % 'a'\n")
            .message
            .contains("format requires a mapping"));
    }

    #[test]
    fn assignments() {
        let ns = run("a = b = [1]\nc, (d, e) = 'x', [2, 3]\nf, g = 'hi'\n[h, k] = (1, 2)\n");
        assert_eq!(ns.get("a"), Some(&l(vec![i(1)])));
        assert_eq!(ns.get("b"), Some(&l(vec![i(1)])));
        assert_eq!(ns.get("c"), Some(&s("x")));
        assert_eq!(ns.get("e"), Some(&i(3)));
        assert_eq!(ns.get("g"), Some(&s("i")));
        assert_eq!(ns.get("k"), Some(&i(2)));
        let names: Vec<&str> = ns.iter().map(|(k, _)| k).collect();
        assert_eq!(names, ["a", "b", "c", "d", "e", "f", "g", "h", "k"]);
        assert!(err("a, b = 1, 2, 3\n")
            .message
            .contains("too many values to unpack (expected 2)"));
        assert!(err("a, b, c = 1, 2\n")
            .message
            .contains("not enough values to unpack (expected 3, got 2)"));
        assert!(err("a, b = 1\n")
            .message
            .contains("cannot unpack non-iterable int"));
        // subscript assignment
        let ns = run("d = {'a': 1}\nd['b'] = 2\nd['a'] = 3\nl = [[0, 1]]\nl[0][-1] = 'x'\n");
        assert_eq!(
            ns.get("d"),
            Some(&Value::Dict(vec![(s("a"), i(3)), (s("b"), i(2))]))
        );
        assert_eq!(ns.get("l"), Some(&l(vec![l(vec![i(0), s("x")])])));
        assert!(err("l = [1]\nl[1] = 2\n").message.contains("IndexError"));
        assert!(err("t = (1,)\nt[0] = 2\n")
            .message
            .contains("does not support item assignment"));
        assert!(err("s = 'ab'\ns[0] = 'x'\n")
            .message
            .contains("does not support item assignment"));
        assert!(err("l = [1]\nl[0:1] = [2]\n")
            .message
            .contains("slice assignment"));
        assert!(err("nope[0] = 1\n")
            .message
            .contains("name 'nope' is not defined"));
    }

    #[test]
    fn augmented_assignment() {
        let ns = run(
            "a = 'x'\na += 'y'\nb = [1]\nb += (2, 3)\nb += 'z'\nc = 1\nc += 2.5\nd = (1,)\nd += (2,)\ne = {'k': [1]}\ne['k'] += [2]\nf = 10\nf -= 3\nf *= 2\nf //= 3\nf %= 3\n",
        );
        assert_eq!(ns.get("a"), Some(&s("xy")));
        assert_eq!(ns.get("b"), Some(&l(vec![i(1), i(2), i(3), s("z")])));
        assert_eq!(ns.get("c"), Some(&Value::Float(3.5)));
        assert_eq!(ns.get("d"), Some(&t(vec![i(1), i(2)])));
        assert_eq!(
            ns.get("e"),
            Some(&Value::Dict(vec![(s("k"), l(vec![i(1), i(2)]))]))
        );
        assert_eq!(ns.get("f"), Some(&i(1)));
        // augmented assignment of a constant assigns the name
        let ns = run("SHLIB_EXT += '.1'\n");
        assert_eq!(ns.get("SHLIB_EXT"), Some(&s("so.1")));
        assert!(err("a = 'x'\na += 1\n")
            .message
            .contains("can only concatenate str"));
        assert!(err("zz += 1\n")
            .message
            .contains("name 'zz' is not defined"));
        assert!(err("t = (1,)\nt += [2]\n")
            .message
            .contains("can only concatenate tuple"));
    }

    #[test]
    fn if_elif_else() {
        let src = |arch: &str| {
            format!(
                "a = '{arch}'\nif a == 'aarch64':\n    x = 1\nelif a in ('riscv64', 'ppc64le'):\n    x = 2\nelse:\n    x = 3\n    if a != 'x86_64':\n        x = 4\n"
            )
        };
        assert_eq!(x(&src("aarch64")), i(1));
        assert_eq!(x(&src("riscv64")), i(2));
        assert_eq!(x(&src("x86_64")), i(3));
        assert_eq!(x(&src("s390x")), i(4));
        assert_eq!(x("x = 0\nif ARCH == 'x86_64': x = 1\n"), i(1));
        assert_eq!(x("y = ['gpu']\nx = 0\nif 'gpu' in y:\n  x = 1\n"), i(1));
        assert_eq!(x("x = 0\nif not []:\n  x = 1\n"), i(1));
        // untaken branches are not executed
        assert_eq!(x("x = 1\nif False:\n  x = undefined_name\n"), i(1));
    }

    #[test]
    fn for_loops() {
        let ns = run(
            "_repos = [('o1', 'r1', 'abcdef123456'), ('o2', 'r2', '0123456789ab')]\nsources = []\nurls = ''\nfor _owner, _repo, _commit in _repos:\n    sources.append({'filename': '%s-%s.tar.gz' % (_repo, _commit[:8])})\n    urls += f\"{_owner}/{_repo} \"\nelse:\n    done = True\n",
        );
        assert_eq!(
            ns.get("sources"),
            Some(&l(vec![
                Value::Dict(vec![(s("filename"), s("r1-abcdef12.tar.gz"))]),
                Value::Dict(vec![(s("filename"), s("r2-01234567.tar.gz"))]),
            ]))
        );
        assert_eq!(ns.get("urls"), Some(&s("o1/r1 o2/r2 ")));
        // for-loop variables leak, as in Python
        assert_eq!(ns.get("_commit"), Some(&s("0123456789ab")));
        assert_eq!(ns.get("done"), Some(&Value::Bool(true)));
        let ns = run("n = 0\nfor i in range(4):\n    n += i\nfor k, v in {'a': 1}.items():\n    m = k + str(v)\nfor c in 'ab':\n    last = c\n");
        assert_eq!(ns.get("n"), Some(&i(6)));
        assert_eq!(ns.get("m"), Some(&s("a1")));
        assert_eq!(ns.get("last"), Some(&s("b")));
        // constants are cloned on each iteration, not moved
        let ns = run("out = []\nfor _ in [1, 2]:\n    y = ['c']\n    out += y\n");
        assert_eq!(ns.get("out"), Some(&strs(&["c", "c"])));
        assert!(err("for x in 5:\n  pass\n")
            .message
            .contains("'int' object is not iterable"));
    }

    #[test]
    fn comprehensions() {
        assert_eq!(
            x("x = [a * 2 for a in [1, 2, 3] if a != 2]"),
            l(vec![i(2), i(6)])
        );
        assert_eq!(
            x("x = [(a, b) for a in 'ab' for b in range(2) if b]"),
            l(vec![t(vec![s("a"), i(1)]), t(vec![s("b"), i(1)])])
        );
        assert_eq!(
            x("x = [n + '-' + v for n, v in [('a', '1'), ('b', '2')]]"),
            strs(&["a-1", "b-2"])
        );
        assert_eq!(
            x("x = [y for l in [[1], [2, 3]] for y in l]"),
            l(vec![i(1), i(2), i(3)])
        );
        assert_eq!(
            x("x = {k: v.upper() for k, v in {'a': 'x'}.items()}"),
            Value::Dict(vec![(s("a"), s("X"))])
        );
        assert_eq!(
            x("x = {c for c in 'abca'}"),
            Value::Set(vec![s("a"), s("b"), s("c")])
        );
        assert_eq!(
            x("x = ' '.join(f'-l{c}' for c in ['a', 'b'])"),
            s("-la -lb")
        );
        assert_eq!(x("x = ','.join(sorted(c for c in 'cab'))"), s("a,b,c"));
        assert_eq!(
            x("x = [[c for c in w] for w in ['ab', 'c']]"),
            l(vec![strs(&["a", "b"]), strs(&["c"])])
        );
        // comprehension variables do not leak
        let ns = run("y = 5\nx = [y for y in [1, 2]]\n");
        assert_eq!(ns.get("y"), Some(&i(5)));
        assert!(ns.iter().all(|(k, _)| k == "x" || k == "y"));
        // names inside the comprehension see module-level names
        assert_eq!(
            x("p = 'lib'\nx = [p + c for c in 'ab']"),
            strs(&["liba", "libb"])
        );
        assert!(err("x = [a for a in 3]\n").message.contains("not iterable"));
        assert!(err("x = {[1]: a for a in 'a'}\n")
            .message
            .contains("unhashable"));
        assert!(err("x = (a for a in 'ab')\n")
            .message
            .contains("generator expression"));
    }

    #[test]
    fn expressions() {
        assert_eq!(x("x = 'a' if False else 'b' if True else 'c'"), s("b"));
        assert_eq!(x("x = 'sbsa' if ARCH == 'aarch64' else ARCH"), s("x86_64"));
        assert_eq!(x("x = [] or 'd'"), s("d"));
        assert_eq!(x("x = 0 and 1"), i(0));
        assert_eq!(x("x = 1 and 2 and 3"), i(3));
        assert_eq!(x("x = not 'a'"), Value::Bool(false));
        assert_eq!(x("x = 1 < 2 < 3"), Value::Bool(true));
        assert_eq!(x("x = 1 < 3 < 2"), Value::Bool(false));
        assert_eq!(x("x = 'a' not in 'bc'"), Value::Bool(true));
        assert_eq!(x("x = 'a' in {'a': 1}.keys()"), Value::Bool(true));
        assert_eq!(x("x = 3 in range(5)"), Value::Bool(true));
        assert_eq!(x("x = None is None"), Value::Bool(true));
        assert_eq!(x("x = 5 * 60"), i(300));
        assert_eq!(x("v = 7\nx = v - 1"), i(6));
        assert_eq!(x("x = -(2 + 3)"), i(-5));
        assert_eq!(x("x = [1] * 2 + [3]"), l(vec![i(1), i(1), i(3)]));
        assert_eq!(x("x = '-' * 3"), s("---"));
        assert_eq!(x("x = (1, 2) + (3,)"), t(vec![i(1), i(2), i(3)]));
        assert_eq!(x("x = 1 == 1.0"), Value::Bool(true));
        assert_eq!(x("x = [1] == (1,)"), Value::Bool(false));
        assert_eq!(x("x = {'a', 'b', 'a'}"), Value::Set(vec![s("a"), s("b")]));
        assert_eq!(
            x("x = {'a': 1, 'a': 2, 'b': 3}"),
            Value::Dict(vec![(s("a"), i(2)), (s("b"), i(3))])
        );
        assert_eq!(
            x("k = 'a'\nx = {k: 1, 'a': 2}"),
            Value::Dict(vec![(s("a"), i(2))])
        );
        assert_eq!(x("x = 7 / 2"), Value::Float(3.5));
        assert_eq!(x("x = str(0.98)"), s("0.98"));
        assert_eq!(x("x = SYSTEM['name']"), s("system"));
        assert!(err("x = SYSTEM['nope']\n")
            .message
            .contains("KeyError: 'nope'"));
        assert!(err("x = [1][5]\n").message.contains("IndexError"));
        assert!(err("x = 1 + 'a'\n").message.contains("TypeError"));
        assert!(err("x = 1 / 0\n").message.contains("ZeroDivisionError"));
        assert!(err("x = 1 < 'a'\n")
            .message
            .contains("not supported between"));
        assert!(err("x = {[1], 2}\n").message.contains("unhashable"));
        assert!(err("x = 'a' is 'a'\n").message.contains("unsupported"));
        assert!(err("x = 9223372036854775807 + 1\n")
            .message
            .contains("overflow"));
    }

    #[test]
    fn subscripts_and_slices() {
        let ns = run("c = '0123456789abcdef'\na = c[:8]\nb = c[-2:]\nd = c[::2][:3]\ne = c[4:6]\nv = '1.2.3'.split('.')\nf = v[0]\ng = v[-1]\nh = (1, 2, 3)[1:]\n");
        assert_eq!(ns.get("a"), Some(&s("01234567")));
        assert_eq!(ns.get("b"), Some(&s("ef")));
        assert_eq!(ns.get("d"), Some(&s("024")));
        assert_eq!(ns.get("e"), Some(&s("45")));
        assert_eq!(ns.get("f"), Some(&s("1")));
        assert_eq!(ns.get("g"), Some(&s("3")));
        assert_eq!(ns.get("h"), Some(&t(vec![i(2), i(3)])));
        assert_eq!(x("d = {('a', 1): 'x'}\nx = d['a', 1]"), s("x"));
        assert_eq!(x("d = {'x86_64': 'amd64'}\nx = d[ARCH]"), s("amd64"));
        assert!(err("x = 5[0]\n").message.contains("not subscriptable"));
    }

    #[test]
    fn calls_and_methods() {
        assert_eq!(x("x = chr(10).join(['a', 'b'])"), s("a\nb"));
        assert_eq!(
            x("version = '3.10.4'\nx = int(version.split('.')[1]) + 1"),
            i(11)
        );
        assert_eq!(x("x = '{}-{}'.format('a', 1)"), s("a-1"));
        assert_eq!(x("x = '{0}/{name}'.format('a', name='b')"), s("a/b"));
        assert_eq!(x("x = {'a': 1}.get('b', 'dflt')"), s("dflt"));
        assert_eq!(x("x = 'A-B'.lower().replace('-', '_')"), s("a_b"));
        assert_eq!(x("x = len([1, 2]) + len('abc') + len({'a': 1})"), i(6));
        assert_eq!(x("x = sorted({'b': 1, 'a': 2})"), strs(&["a", "b"]));
        assert_eq!(x("x = list(range(2, 7, 2))"), l(vec![i(2), i(4), i(6)]));
        assert_eq!(
            x("x = dict(zip(['a'], [1]))"),
            Value::Dict(vec![(s("a"), i(1))])
        );
        assert_eq!(
            x("x = [k for k, v in enumerate('ab')]"),
            l(vec![i(0), i(1)])
        );
        assert_eq!(x("x = max([3, 1]) + min(4, 2)"), i(5));
        assert_eq!(x("x = tuple(reversed([1, 2]))"), t(vec![i(2), i(1)]));
        assert_eq!(x("x = str(['a', 1, None])"), s("['a', 1, None]"));
        assert_eq!(
            x("x = [1]\nx.extend(range(2))\nx.insert(0, 9)"),
            l(vec![i(9), i(1), i(0), i(1)])
        );
        assert_eq!(
            x("x = {'a': [1]}\nx['a'].append(2)\nx.update({'b': 3})"),
            Value::Dict(vec![(s("a"), l(vec![i(1), i(2)])), (s("b"), i(3))])
        );
        // mutating a constant does not put it into the namespace
        let ns = run("SYSTEM['extra'] = 1\ny = SYSTEM['extra']\n");
        assert_eq!(ns.get("SYSTEM"), None);
        assert_eq!(ns.get("y"), Some(&i(1)));
        assert!(err("x = foo(1)\n")
            .message
            .contains("name 'foo' is not defined"));
        assert!(err("x = print(1)\n").message.contains("unsupported"));
        assert!(err("x = range(3)\n").message.contains("only iteration"));
        assert!(err("x = {'a': 1}.items()\n")
            .message
            .contains("only iteration"));
        assert!(err("x = len\n").message.contains("used as a value"));
        assert!(err("s = 'a'\nx = s()\n")
            .message
            .contains("'str' object is not callable"));
        assert!(err("l = [1]\nx = l.pop()\n")
            .message
            .contains("mutating method"));
        assert!(err("x = 'a'.nope()\n").message.contains("AttributeError"));
        assert!(err("x = 'a'\nx.append(1)\n")
            .message
            .contains("AttributeError"));
        assert!(err("x = int('abc')\n").message.contains("invalid literal"));
        assert!(err("x = sorted([1], key=len)\n")
            .message
            .contains("unsupported"));
        assert_eq!(x("x = [].append(1)"), Value::None);
    }

    #[test]
    fn fstrings() {
        assert_eq!(x("v = '1.2'\nx = f'v{v}-{v!r}'"), s("v1.2-'1.2'"));
        assert_eq!(
            x("x = f\"{'a'}|{1+1:>3}|{'b':<2}|{3.14159:.2f}|{{}}\""),
            s("a|  2|b |3.14|{}")
        );
        assert_eq!(x("w = 4\nx = f'{7:0{w}d}'"), s("0007"));
        assert_eq!(x("c = 'abcdefghij'\nx = f'{c[:8]}'"), s("abcdefgh"));
        assert_eq!(x("x = f'{ \"x\".upper() }'"), s("X"));
        assert_eq!(x("v = 1\nx = f'{v=}'"), s("v=1"));
        assert_eq!(x("x = f'a' 'b' f'{1}'"), s("ab1"));
        assert_eq!(x("x = f'{None!s}{[1]}'"), s("None[1]"));
        assert_eq!(x("x = rf'\\d{1}'"), s("\\d1"));
        assert_eq!(x("x = f'''\n{1}\n'''"), s("\n1\n"));
        assert!(err("x = f'{nope}'\n")
            .message
            .contains("name 'nope' is not defined"));
        assert!(err("x = f'{[1]:>3}'\n").message.contains("__format__"));
    }

    #[test]
    fn docstring() {
        let ns = run("\"\"\"An easyconfig.\"\"\"\nname = 'x'\n");
        let names: Vec<&str> = ns.iter().map(|(k, _)| k).collect();
        assert_eq!(names, ["__doc__", "name"]);
        assert_eq!(ns.get("__doc__"), Some(&s("An easyconfig.")));
        assert_eq!(run("name = 'x'\n'not a docstring'\n").get("__doc__"), None);
        assert_eq!(run("f'no {1}'\n").get("__doc__"), None);
    }

    #[test]
    fn errors_carry_lines() {
        let e = err("a = 1\nb = [\n  1,\n  2 + 'x',\n]\n");
        assert_eq!(e.line, 4);
        let e = err("a = 1\n\nif a:\n    b = c\n");
        assert_eq!(e.line, 4);
        assert_eq!(e.message, "name 'c' is not defined");
        let e = err("x = f'''\n\n{nope}'''\n");
        assert_eq!(e.line, 3);
    }

    #[test]
    fn resource_caps() {
        assert!(err("x = 'ab' * 10000000000\n")
            .message
            .contains("too large"));
        assert!(
            err("x = 'a' * 1000000\nfor i in range(200):\n    x = x + x\n")
                .message
                .contains("too large")
        );
        assert!(err("x = 1\nfor i in range(200):\n    x = [x]\n")
            .message
            .contains("nested"));
        let e = err("x = [1]\nfor i in range(200):\n    x.append(x)\n");
        assert!(
            e.message.contains("nested") || e.message.contains("copies too much"),
            "{e}"
        );
        assert!(err("x = {}\nfor i in range(200):\n    x['k'] = x\n")
            .message
            .contains("nested"));
        assert!(err("x = [a for a in range(2000) for b in range(2000)]\n")
            .message
            .contains("iterations"));
        // value semantics must not let shared references blow up
        assert!(err("x = [1]\nfor i in range(60):\n    x = [x, x]\n")
            .message
            .contains("copies too much"));
        assert!(err("x = ['a' * 1000000]\ny = [x for i in range(100000)]\n")
            .message
            .contains("copies too much"));
        assert!(
            err("x = 'a' * 1000000\ny = []\nfor i in range(100000):\n    y.append(f'{x}')\n")
                .message
                .contains("copies too much")
        );
        // charged before it is built: without the check this builds 16 GB first
        assert!(err("x = 'a' * 16000000\ny = [x] * 1000\n")
            .message
            .contains("copies too much"));
        assert!(err("x = ['a' * 1000000]\nx *= 100000\n")
            .message
            .contains("copies too much"));
        assert!(err("x = dict(zip(range(1000000), range(1000000)))\n")
            .message
            .contains("copies too much"));
        assert!(err("x = (' ' * 16000000).split(' ')\n")
            .message
            .contains("parts"));
        assert!(err("x = list('a' * 16000000)\n")
            .message
            .contains("iterating a string"));
        // what no size cap bounds stops at the time budget
        assert!(
            err("x = list(range(1000000))\ny = [i in x for i in range(1000000)]\n")
                .message
                .contains("longer than")
        );
        assert!(err("x = 'a'.replace('a', 'b' * 100000000)\n")
            .message
            .contains("too large"));
        assert!(err("x = '%99999999999d' % 1\n")
            .message
            .contains("too large"));
        assert!(err("x = 99999999999999999999\n")
            .message
            .contains("too large"));
        assert!(err("x = int('99999999999999999999')\n")
            .message
            .contains("too large"));
    }

    #[test]
    fn nesting_just_below_the_caps_fits_a_small_stack() {
        // rayon's worker threads have 2 MiB stacks; stay well within that even unoptimized
        let h = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(|| {
                let n = 95;
                let parens = format!("x = {}1{}\n", "(".repeat(n), ")".repeat(n));
                assert_eq!(exec(&parens, &globals).unwrap().get("x"), Some(&i(1)));
                let lists = format!("x = {}y{}\ny = 1\n", "[".repeat(n), "]".repeat(n));
                assert!(exec(&lists, &globals).is_err());
                let lists = format!("y = 1\nx = {}y{}\nz = str(x)\n", "[".repeat(n), "]".repeat(n));
                let ns = exec(&lists, &globals).unwrap();
                assert_eq!(ns.get("z"), Some(&s(&format!("{}1{}", "[".repeat(n), "]".repeat(n)))));
                let mixed = format!(
                    "y = 1\nx = {}-y{}\n",
                    "[{'k': (".repeat(n / 3),
                    ",)}]".repeat(n / 3)
                );
                assert!(exec(&mixed, &globals).is_ok());
                let deep_value =
                    "x = 0\nfor i in range(99):\n    x = [x]\ny = repr(x)\nz = x == x\nw = sorted([x, x])\n";
                let ns = exec(deep_value, &globals).unwrap();
                assert_eq!(ns.get("z"), Some(&Value::Bool(true)));
                assert_eq!(ns.get("y").and_then(Value::as_str).map(str::len), Some(199));
            })
            .unwrap();
        h.join().unwrap();
    }

    #[test]
    fn adversarial_inputs_never_panic() {
        let inputs = [
            "x = '",
            "x = \"\"\"",
            "x = (",
            "x = [1, 2",
            "if x:\n",
            "if x:\n  a = 1\n b = 2\n",
            "\tif x:\n",
            "x = )",
            "x = f'{",
            "x = f'{x!}'",
            "x = f'{x:{y:{z}}}'",
            "x = '\\",
            "x = 1 if 2",
            "x = [for]",
            "x = {1: }",
            "x = a[",
            "x = a[1:2:3:4]",
            "x = 0x",
            "x = 1e",
            "x = 1_",
            "x = \u{feff}",
            "x = '\\U00110000'",
            "x = '\\ud800'",
            "x = chr(0xd800)",
            "x = '%(a' % {}",
            "x = '%' % ()",
            "x = '{' .format()",
            "x = '{:{}}'.format(1)",
            "x = '{0[}'.format([1])",
            "x = [1][1:2:0]",
            "x = -9223372036854775807 - 1\ny = -x",
            "x = abs(-9223372036854775807 - 1)",
            "x = 9223372036854775807 * 2",
            "x = (-9223372036854775807 - 1) // -1",
            "x = (-9223372036854775807 - 1) % -1",
            "x = int(1e300)",
            "x = '%d' % 1e300",
            "x = '%c' % -1",
            "x = '{:c}'.format(-1)",
            "x = range(-9223372036854775807 - 1, 9223372036854775807)",
            "x = [a for a in range(9223372036854775807)]",
            "x = 'a'.center(9223372036854775807)",
            "x = 'a'.zfill(-5)",
            "x = [1].pop(-9223372036854775807 - 1)",
            "x = [1]\nx.insert(-9223372036854775807 - 1, 0)",
            "x = 'abc'[-9223372036854775807 - 1:]",
            "x = 'abc'[::-9223372036854775807 - 1]",
            "x = list(enumerate('a', 9223372036854775807))",
            "x = ''.join(['a'] * 100)[::-3]",
            "x = 'é'.split('')",
            "x = ('é' * 5)[1:-1:2]",
            "x = 'x'.startswith('x', 99)",
            "x = 'abc'.find('b', -100, 100)",
        ];
        for src in inputs {
            // Only the absence of a panic matters here.
            let _ = exec(src, &globals);
        }
        let deep = "[".repeat(5000);
        assert!(exec(&deep, &globals).is_err());
        let deep = format!("x = {}1", "(".repeat(5000));
        assert!(exec(&deep, &globals).is_err());
        let deep = format!("x = {}", "f'{".repeat(50));
        assert!(exec(&deep, &globals).is_err());
        let long = format!("x = 1{}", " + 1".repeat(90));
        assert_eq!(exec(&long, &globals).unwrap().get("x"), Some(&i(91)));
        for chain in [" + 1", " % 1", ".lower()", "[0]", "(1)"] {
            let deep = format!("x = a{}", chain.repeat(100_000));
            let e = exec(&deep, &globals).unwrap_err();
            assert!(e.message.contains("too deeply nested"), "{chain}: {e}");
        }
    }
}
