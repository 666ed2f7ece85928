//! What a jq expression may cost. Flows are written by users and sent by anyone the editor
//! serves, and an expression runs inside the engine and every module, so neither compiling nor
//! running one may take the process down:
//!
//! - before anything else, an expression's length and bracket nesting are bounded, since jaq
//!   lexes, parses and compiles by recursion;
//! - an expression may not define a function that calls itself (jq offers `recurse`, `while`,
//!   `until`, `limit` and `reduce` for loops), since jaq recurses on the stack for every call
//!   that is not a tail call;
//! - every call of a function of jq's library and every value `range` gives is a step, and each
//!   step checks a budget of steps, time and stack, so the library's own loops and recursions
//!   end with an error instead of running forever or overflowing the stack;
//! - compiling and running happen where at least [`EVALUATION_STACK`] of stack is left, so the
//!   parts that recurse between steps (over a deep expression, or a deep value being dropped)
//!   have room: in place on a thread with a big stack (the `weir` binary gives its workers
//!   [`THREAD_STACK`]), else on a fresh stack, which costs some 30 µs to make.
//!
//! Loops over the input's own values (`.[]`) take no steps: they are bounded by the input,
//! whose size and depth are bounded where messages enter Weir. What jaq recurses over without
//! a step, a value that such a loop made deeper than the stack allows (`reduce .[] as $x (0;
//! [.])` over an array of millions), is not bounded yet: jaq offers no hook where values are
//! built.

#[cfg(not(target_arch = "wasm32"))]
use std::time::Instant;
use std::{cell::Cell, time::Duration};

use jaq_core::{
    Bind, DataT, Error, Lut, Native, RunPtr,
    data::HasLut,
    load::{
        self,
        lex::StrPart,
        parse::{BinaryOp, Def, Pattern, Term},
    },
    native::{self, bome},
    path::Part,
};
use jaq_json::Val;

/// The longest expression, in bytes.
pub const MAX_EXPRESSION_LENGTH: usize = 4_000;

/// How deep brackets (`(`, `[`, `{` and string interpolations) may nest in an expression.
pub const MAX_NESTING: usize = 64;

/// How many steps (calls of jq's library, values of `range`) one evaluation may take.
pub const MAX_STEPS: u32 = 200_000;

/// How long one evaluation may run.
#[cfg(not(target_arch = "wasm32"))]
pub const MAX_TIME: Duration = Duration::from_secs(1);

/// How many steps pass between two looks at the clock: reading it costs more than a step.
#[cfg(not(target_arch = "wasm32"))]
const TIME_CHECK_STEPS: u32 = 256;

/// How much stack the library's recursion may take, measured at each step. The browser's wasm
/// stack is small; elsewhere evaluation has [`EVALUATION_STACK`].
const STACK_BUDGET: usize = if cfg!(target_arch = "wasm32") { 256 << 10 } else { 4 << 20 };

/// The stack compiling and evaluating need: the step budget plus room for what recurses between
/// steps, such as a value [`MAX_STEPS`] deep being dropped.
pub const EVALUATION_STACK: usize = 64 << 20;

/// The stack to give the threads that evaluate mappings, so they evaluate in place: what an
/// evaluation needs and what the thread itself uses around it. Only the pages used are memory.
pub const THREAD_STACK: usize = EVALUATION_STACK + (8 << 20);

/// The native step that every function of the library takes first.
const STEP: &str = "__step";

/// The data an evaluation carries: the program and its budget.
pub struct Budgeted;

impl DataT for Budgeted {
    type V<'a> = Val;
    type Data<'a> = Run<'a>;
}

/// One evaluation's program and budget.
#[derive(Clone)]
pub struct Run<'a> {
    lut: &'a Lut<Budgeted>,
    budget: &'a Budget,
}

impl<'a> Run<'a> {
    pub fn new(lut: &'a Lut<Budgeted>, budget: &'a Budget) -> Self {
        Self { lut, budget }
    }
}

impl<'a> HasLut<'a, Budgeted> for Run<'a> {
    fn lut(&self) -> &'a Lut<Budgeted> {
        self.lut
    }
}

/// A budget ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exceeded {
    Stack,
    Steps,
    #[cfg(not(target_arch = "wasm32"))]
    Time(Duration),
}

impl Exceeded {
    fn message(self) -> String {
        match self {
            Self::Stack => {
                format!("recursed deeper than a mapping may ({} KiB of stack)", STACK_BUDGET >> 10)
            }
            Self::Steps => format!("took more than {MAX_STEPS} steps"),
            #[cfg(not(target_arch = "wasm32"))]
            Self::Time(limit) => format!("ran longer than {} ms", limit.as_millis()),
        }
    }
}

/// What one evaluation has left. Once a budget runs out every further step fails too, and the
/// evaluation fails even when the expression catches the error with `try`.
#[derive(Debug)]
pub struct Budget {
    /// Where the stack stood when the evaluation began.
    base: usize,
    steps_left: Cell<u32>,
    #[cfg(not(target_arch = "wasm32"))]
    deadline: Instant,
    #[cfg(not(target_arch = "wasm32"))]
    time: Duration,
    exceeded: Cell<Option<Exceeded>>,
}

impl Budget {
    #[cfg_attr(target_arch = "wasm32", allow(unused_variables))]
    fn new(time: Duration) -> Self {
        Self {
            base: stack_position(),
            steps_left: Cell::new(MAX_STEPS),
            #[cfg(not(target_arch = "wasm32"))]
            deadline: Instant::now() + time,
            #[cfg(not(target_arch = "wasm32"))]
            time,
            exceeded: Cell::new(None),
        }
    }

    /// Whether the evaluation ran out of time (rather than of steps or stack).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn ran_out_of_time(&self) -> bool {
        matches!(self.exceeded.get(), Some(Exceeded::Time(_)))
    }

    fn step(&self) -> Result<(), Exceeded> {
        if let Some(exceeded) = self.exceeded.get() {
            return Err(exceeded);
        }
        let left = self.steps_left.get();
        let exceeded = if stack_position().abs_diff(self.base) > STACK_BUDGET {
            Some(Exceeded::Stack)
        } else if left == 0 {
            Some(Exceeded::Steps)
        } else {
            self.steps_left.set(left - 1);
            self.out_of_time(left)
        };
        match exceeded {
            Some(exceeded) => {
                self.exceeded.set(Some(exceeded));
                Err(exceeded)
            }
            None => Ok(()),
        }
    }

    /// Reads the clock every thousand steps or so, which costs less than the steps.
    #[cfg(not(target_arch = "wasm32"))]
    fn out_of_time(&self, left: u32) -> Option<Exceeded> {
        (left.is_multiple_of(TIME_CHECK_STEPS) && Instant::now() > self.deadline)
            .then_some(Exceeded::Time(self.time))
    }

    /// The browser has no clock for wasm; the step budget bounds the time there.
    #[cfg(target_arch = "wasm32")]
    fn out_of_time(&self, _left: u32) -> Option<Exceeded> {
        None
    }

    /// Why the evaluation must fail, when a budget ran out.
    pub fn exceeded(&self) -> Option<String> {
        self.exceeded.get().map(Exceeded::message)
    }
}

/// Roughly where the stack stands: the address of a local of this call.
#[inline(never)]
fn stack_position() -> usize {
    let marker = 0_u8;
    std::ptr::from_ref(std::hint::black_box(&marker)) as usize
}

/// Runs `work` with a fresh budget where [`EVALUATION_STACK`] is left.
pub fn within_budget<R>(work: impl FnOnce(&Budget) -> R) -> R {
    #[cfg(not(target_arch = "wasm32"))]
    let time = MAX_TIME;
    #[cfg(target_arch = "wasm32")]
    let time = Duration::ZERO;
    on_big_stack(|| work(&Budget::new(time)))
}

/// Runs `work` with a fresh budget whose time is `time` instead of [`MAX_TIME`].
#[cfg(not(target_arch = "wasm32"))]
pub fn within_time<R>(time: Duration, work: impl FnOnce(&Budget) -> R) -> R {
    on_big_stack(|| work(&Budget::new(time.min(MAX_TIME))))
}

/// Runs `work` where [`EVALUATION_STACK`] is left: in place when the caller's stack has that
/// much, else on a fresh stack.
#[cfg(not(target_arch = "wasm32"))]
pub fn on_big_stack<R>(work: impl FnOnce() -> R) -> R {
    stacker::maybe_grow(EVALUATION_STACK, EVALUATION_STACK, work)
}

/// wasm has one stack; the browser stops a script that overflows it.
#[cfg(target_arch = "wasm32")]
pub fn on_big_stack<R>(work: impl FnOnce() -> R) -> R {
    work()
}

/// The definitions an expression can call, each taking a step first, and `range` taking a step
/// for every value it gives.
pub fn definitions() -> impl Iterator<Item = Def<&'static str>> {
    let range =
        load::parse("def range($from; $upto; $by): __range($from; $upto; $by) | __step;", |p| {
            p.defs()
        })
        .expect("the definition of range parses");
    range
        .into_iter()
        .chain(jaq_core::defs())
        .chain(jaq_std::defs())
        .chain(jaq_json::defs())
        .map(with_steps)
}

/// The native filters an expression can call, without those in `forbidden`, with `range`
/// renamed for [`definitions`] to wrap, and the step.
pub fn natives(forbidden: &'static [&'static str]) -> impl Iterator<Item = native::Fun<Budgeted>> {
    let step: RunPtr<Budgeted> = |cv| {
        let result = cv.0.data().budget.step().map_err(|exceeded| Error::str(exceeded.message()));
        bome(result.map(|()| cv.1))
    };
    jaq_core::funs::<Budgeted>()
        .chain(jaq_std::funs())
        .chain(jaq_json::funs())
        .filter(move |(name, _, _)| !forbidden.contains(name))
        .map(|(name, args, native)| (if name == "range" { "__range" } else { name }, args, native))
        .chain([(STEP, Box::<[Bind]>::default(), Native::<Budgeted>::new(step))])
}

/// `def f: body` becomes `def f: __step | body`, and so do the definitions inside `body`. The
/// body stays in tail position, so the library's loops still run in constant stack.
fn with_steps(mut def: Def<&'static str>) -> Def<&'static str> {
    step_nested_definitions(&mut def.body);
    let body = std::mem::take(&mut def.body);
    def.body =
        Term::BinOp(Box::new(Term::Call(STEP, Vec::new())), BinaryOp::Pipe(None), Box::new(body));
    def
}

fn step_nested_definitions(term: &mut Term<&'static str>) {
    if let Term::Def(defs, rest) = term {
        for def in defs.iter_mut() {
            *def = with_steps(def.clone());
        }
        step_nested_definitions(rest);
    } else {
        for child in children(term) {
            step_nested_definitions(child);
        }
    }
}

/// Refuses what could exhaust the compiler or the evaluator before jaq reads it.
pub fn check_size(source: &str) -> Result<(), String> {
    if source.len() > MAX_EXPRESSION_LENGTH {
        return Err(format!(
            "the expression is {} bytes long; at most {MAX_EXPRESSION_LENGTH} are allowed",
            source.len()
        ));
    }
    let nesting = nesting(source);
    if nesting > MAX_NESTING {
        return Err(format!(
            "brackets nest {nesting} deep; at most {MAX_NESTING} levels are allowed"
        ));
    }
    Ok(())
}

/// How deep brackets and string interpolations nest, strings and comments skipped.
fn nesting(source: &str) -> usize {
    // Each open bracket: whether it is a string's `\(`, which closes back into the string.
    let mut open: Vec<bool> = Vec::new();
    let mut in_string = false;
    let mut deepest = 0;
    let mut chars = source.chars();
    while let Some(c) = chars.next() {
        if in_string {
            match c {
                '"' => in_string = false,
                // The guard takes the escaped character in any case.
                '\\' if chars.next() == Some('(') => {
                    open.push(true);
                    in_string = false;
                }
                _ => {}
            }
        } else {
            match c {
                '"' => in_string = true,
                '#' => {
                    chars.by_ref().find(|&c| c == '\n');
                }
                '(' | '[' | '{' => open.push(false),
                ')' | ']' | '}' => in_string = open.pop().unwrap_or(false),
                _ => {}
            }
        }
        deepest = deepest.max(open.len());
    }
    deepest
}

/// A call of a definition from inside itself, directly or from a definition inside it, which a
/// mapping refuses: where the call is, for the message.
pub fn find_recursion<'s>(term: &mut Term<&'s str>) -> Option<&'s str> {
    recursive_call(term, &mut Vec::new())
}

fn recursive_call<'s>(
    term: &mut Term<&'s str>,
    enclosing: &mut Vec<(&'s str, usize)>,
) -> Option<&'s str> {
    match term {
        Term::Call(name, args) if enclosing.contains(&(*name, args.len())) => Some(*name),
        Term::Def(defs, rest) => {
            for def in defs.iter_mut() {
                enclosing.push((def.name, def.args.len()));
                let found = recursive_call(&mut def.body, enclosing);
                enclosing.pop();
                if found.is_some() {
                    return found;
                }
            }
            recursive_call(rest, enclosing)
        }
        _ => children(term).into_iter().find_map(|child| recursive_call(child, enclosing)),
    }
}

/// The terms directly inside `term`.
fn children<S>(term: &mut Term<S>) -> Vec<&mut Term<S>> {
    let mut inside = Vec::new();
    match term {
        Term::Id | Term::Recurse | Term::Num(_) | Term::Break(_) | Term::Var(_) => {}
        Term::Str(_, parts) => inside.extend(parts.iter_mut().filter_map(|part| match part {
            StrPart::Term(term) => Some(term),
            StrPart::Str(_) | StrPart::Char(_) => None,
        })),
        Term::Arr(items) => inside.extend(items.as_deref_mut()),
        Term::Obj(fields) => {
            for (key, value) in fields {
                inside.push(key);
                inside.extend(value.as_mut());
            }
        }
        Term::Neg(term) | Term::Label(_, term) => inside.push(term),
        Term::BinOp(left, op, right) => {
            inside.push(left);
            if let BinaryOp::Pipe(Some(pattern)) = op {
                pattern_terms(pattern, &mut inside);
            }
            inside.push(right);
        }
        Term::Fold(_, over, pattern, args) => {
            inside.push(over);
            pattern_terms(pattern, &mut inside);
            inside.extend(args.iter_mut());
        }
        Term::TryCatch(body, catch) => {
            inside.push(body);
            inside.extend(catch.as_deref_mut());
        }
        Term::IfThenElse(branches, otherwise) => {
            for (condition, then) in branches {
                inside.push(condition);
                inside.push(then);
            }
            inside.extend(otherwise.as_deref_mut());
        }
        Term::Def(defs, rest) => {
            inside.extend(defs.iter_mut().map(|def| &mut def.body));
            inside.push(rest);
        }
        Term::Call(_, args) => inside.extend(args.iter_mut()),
        Term::Path(term, path) => {
            inside.push(term);
            for (part, _) in &mut path.0 {
                match part {
                    Part::Index(index) => inside.push(index),
                    Part::Range(from, upto) => {
                        inside.extend(from.as_mut());
                        inside.extend(upto.as_mut());
                    }
                }
            }
        }
    }
    inside
}

fn pattern_terms<'t, S>(pattern: &'t mut Pattern<S>, inside: &mut Vec<&'t mut Term<S>>) {
    match pattern {
        Pattern::Var(_) => {}
        Pattern::Arr(patterns) => {
            for pattern in patterns {
                pattern_terms(pattern, inside);
            }
        }
        Pattern::Obj(fields) => {
            for (key, pattern) in fields {
                inside.push(key);
                pattern_terms(pattern, inside);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_counts_brackets_outside_strings_and_comments() {
        assert_eq!(nesting(".a"), 0);
        assert_eq!(nesting("[.a, {b: (.c)}]"), 3);
        assert_eq!(nesting("\"(((\" # (((\n| [.]"), 1);
        assert_eq!(nesting("\"x \\(.a | [\"\\(.b)\"]) y\" | [.]"), 3);
        assert_eq!(nesting("\"\\\"(\""), 0);
    }

    #[test]
    fn recursion_is_found_through_nested_definitions() {
        let found = |source| find_recursion(&mut load::parse(source, |p| p.term()).unwrap());
        assert_eq!(found("def f: [f]; f"), Some("f"));
        assert_eq!(found("def f: def g: f; g; f"), Some("f"));
        assert_eq!(found("def f(x): x | f(x); f(.)"), Some("f"));
        assert_eq!(found("def f: 1; def g: f; g | f"), None);
        assert_eq!(found("def f(x): x; f(1) | f(2)"), None, "another arity is another function");
        assert_eq!(found("[recurse(.[]?)] | length"), None);
    }
}
