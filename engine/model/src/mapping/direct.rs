//! The shapes most expressions take (a path into the message or `$trigger`, literals,
//! arithmetic, comparisons, `and`, `or`, `not`, `//` and `|`) evaluated on the message as it
//! is. jaq first converts the whole message into values of its own, a deep copy on every
//! evaluation that costs more than the expression itself: `{{ .metadata.name }}` over a Pod
//! copies the Pod.
//!
//! Every value given here is the one jaq gives. Wherever jaq would fail, or a number leaves what
//! is handled here (an integer overflowing, a big integer), evaluation gives up with `None` and
//! jaq evaluates the expression, so jaq's errors stay the only ones.

use std::{borrow::Cow, cmp::Ordering};

use jaq_core::{
    load::{
        lex::StrPart,
        parse::{BinaryOp, Term as Parsed},
    },
    ops::{Cmp, Math},
    path::{Opt, Part},
};
use serde_json::Value;

use super::{MAX_VALUE_DEPTH, TRIGGER_VARIABLE, json_float};

/// How deeply terms may nest to be evaluated here; recursion over them stays shallow.
const MAX_TERM_DEPTH: usize = 32;

/// An expression in one of the shapes evaluated here.
#[derive(Debug)]
pub(super) enum Term {
    /// `.`
    Input,
    /// `$trigger`
    Trigger,
    Null,
    Bool(bool),
    Int(i64),
    Str(String),
    /// `.a.b[0]` after a term
    Path(Box<Term>, Vec<Step>),
    Neg(Box<Term>),
    /// `not`, of the input
    Not,
    Math(Box<Term>, Math, Box<Term>),
    Cmp(Box<Term>, Cmp, Box<Term>),
    /// `and` (stopping at false) and `or` (stopping at true)
    Logic(Box<Term>, bool, Box<Term>),
    /// `//`
    Alt(Box<Term>, Box<Term>),
    /// `|`
    Pipe(Box<Term>, Box<Term>),
}

#[derive(Debug)]
pub(super) enum Step {
    Key(String),
    Index(usize),
}

impl Term {
    /// The expression parsed by jaq, when it has a shape evaluated here.
    pub(super) fn compile(parsed: &Parsed<&str>) -> Option<Self> {
        compile_at(parsed, 0)
    }

    /// The expression's value over `input` with `$trigger` bound, or `None` where jaq must
    /// answer.
    pub(super) fn evaluate(&self, input: &Value, trigger: &Value) -> Option<Value> {
        into_value(evaluate(self, &read(input), trigger)?)
    }
}

fn compile_at(parsed: &Parsed<&str>, depth: usize) -> Option<Term> {
    if depth > MAX_TERM_DEPTH {
        return None;
    }
    let inner = |parsed: &Parsed<&str>| compile_at(parsed, depth + 1).map(Box::new);
    Some(match parsed {
        Parsed::Id => Term::Input,
        Parsed::Var(name) if *name == TRIGGER_VARIABLE => Term::Trigger,
        // jaq reads a literal that fits a machine integer as one, anything else otherwise.
        Parsed::Num(digits) => Term::Int(digits.parse().ok()?),
        Parsed::Str(None, parts) => Term::Str(text(parts)?),
        // A definition of the same name would be a `Parsed::Def`, never compiled here.
        Parsed::Call(name, args) if args.is_empty() => match *name {
            "null" => Term::Null,
            "true" => Term::Bool(true),
            "false" => Term::Bool(false),
            "not" => Term::Not,
            _ => return None,
        },
        Parsed::Neg(term) => Term::Neg(inner(term)?),
        Parsed::BinOp(left, op, right) => {
            let (left, right) = (inner(left)?, inner(right)?);
            match op {
                BinaryOp::Pipe(None) => Term::Pipe(left, right),
                BinaryOp::Alt => Term::Alt(left, right),
                BinaryOp::And => Term::Logic(left, false, right),
                BinaryOp::Or => Term::Logic(left, true, right),
                BinaryOp::Math(op) => Term::Math(left, *op, right),
                BinaryOp::Cmp(op) => Term::Cmp(left, *op, right),
                _ => return None,
            }
        }
        Parsed::Path(term, path) => {
            Term::Path(inner(term)?, path.0.iter().map(step).collect::<Option<_>>()?)
        }
        _ => return None,
    })
}

/// A path's step: a key or an index that is not negative, and not optional (`?`).
fn step((part, opt): &(Part<Parsed<&str>>, Opt)) -> Option<Step> {
    match (part, opt) {
        (Part::Index(Parsed::Num(digits)), Opt::Essential) => {
            let index: i64 = digits.parse().ok()?;
            Some(Step::Index(usize::try_from(index).ok()?))
        }
        (Part::Index(Parsed::Str(None, parts)), Opt::Essential) => Some(Step::Key(text(parts)?)),
        _ => None,
    }
}

/// A string literal's text, when nothing is interpolated into it.
fn text(parts: &[StrPart<&str, Parsed<&str>>]) -> Option<String> {
    let mut text = String::new();
    for part in parts {
        match part {
            StrPart::Str(literal) => text.push_str(literal),
            StrPart::Char(c) => text.push(*c),
            StrPart::Term(_) => return None,
        }
    }
    Some(text)
}

/// A value during evaluation: the message's own where it is read, computed ones beside them.
#[derive(Clone)]
enum Quick<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Cow<'a, str>),
    /// An array, an object, or an integer beyond `i64` (a big integer to jaq)
    Other(&'a Value),
}

fn read(value: &Value) -> Quick<'_> {
    match value {
        Value::Null => Quick::Null,
        Value::Bool(b) => Quick::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Quick::Int(i),
            (None, Some(f)) if n.is_f64() => Quick::Float(f),
            _ => Quick::Other(value),
        },
        Value::String(s) => Quick::Str(Cow::Borrowed(s)),
        Value::Array(_) | Value::Object(_) => Quick::Other(value),
    }
}

fn into_value(quick: Quick<'_>) -> Option<Value> {
    Some(match quick {
        Quick::Null => Value::Null,
        Quick::Bool(b) => Value::Bool(b),
        Quick::Int(i) => Value::from(i),
        Quick::Float(f) => json_float(f),
        Quick::Str(s) => Value::String(s.into_owned()),
        Quick::Other(value) => {
            if super::json_depth(value) > MAX_VALUE_DEPTH {
                return None;
            }
            value.clone()
        }
    })
}

fn evaluate<'a>(term: &'a Term, input: &Quick<'a>, trigger: &'a Value) -> Option<Quick<'a>> {
    let at = |term: &'a Term| evaluate(term, input, trigger);
    Some(match term {
        Term::Input => input.clone(),
        Term::Trigger => read(trigger),
        Term::Null => Quick::Null,
        Term::Bool(b) => Quick::Bool(*b),
        Term::Int(i) => Quick::Int(*i),
        Term::Str(s) => Quick::Str(Cow::Borrowed(s)),
        Term::Path(term, steps) => {
            let mut value = at(term)?;
            for step in steps {
                value = index(value, step)?;
            }
            value
        }
        Term::Neg(term) => match at(term)? {
            Quick::Int(i) => Quick::Int(i.checked_neg()?),
            Quick::Float(f) => Quick::Float(-f),
            _ => return None,
        },
        Term::Not => Quick::Bool(!truthy(input)),
        Term::Math(left, op, right) => math(at(left)?, *op, at(right)?)?,
        Term::Cmp(left, op, right) => Quick::Bool(compare(&at(left)?, *op, &at(right)?)?),
        Term::Logic(left, stop, right) => {
            if truthy(&at(left)?) == *stop {
                Quick::Bool(*stop)
            } else {
                Quick::Bool(truthy(&at(right)?))
            }
        }
        Term::Alt(left, right) => match at(left)? {
            value if truthy(&value) => value,
            _ => at(right)?,
        },
        Term::Pipe(left, right) => evaluate(right, &at(left)?, trigger)?,
    })
}

/// `null` indexes to `null`, a missing key or index too; anything else (mostly failures in jaq)
/// is left to jaq.
fn index<'a>(value: Quick<'a>, step: &Step) -> Option<Quick<'a>> {
    let found = match (value, step) {
        (Quick::Null, _) => None,
        (Quick::Other(Value::Object(fields)), Step::Key(key)) => fields.get(key),
        (Quick::Other(Value::Array(items)), Step::Index(i)) => items.get(*i),
        _ => return None,
    };
    Some(found.map_or(Quick::Null, read))
}

fn truthy(value: &Quick<'_>) -> bool {
    !matches!(value, Quick::Null | Quick::Bool(false))
}

fn math<'a>(left: Quick<'a>, op: Math, right: Quick<'a>) -> Option<Quick<'a>> {
    Some(match (left, op, right) {
        (Quick::Null, Math::Add, other) | (other, Math::Add, Quick::Null) => other,
        (Quick::Str(left), Math::Add, Quick::Str(right)) => {
            Quick::Str(Cow::Owned(left.into_owned() + &right))
        }
        (Quick::Int(x), op, Quick::Int(y)) => match op {
            // Where the result leaves i64 jaq goes on with a big integer.
            Math::Add => Quick::Int(x.checked_add(y)?),
            Math::Sub => Quick::Int(x.checked_sub(y)?),
            Math::Mul => Quick::Int(x.checked_mul(y)?),
            Math::Div => Quick::Float(x as f64 / y as f64),
            // Remainder by zero fails; the one overflow, `i64::MIN % -1`, is 0.
            Math::Rem if y == 0 => return None,
            Math::Rem => Quick::Int(x.checked_rem(y).unwrap_or(0)),
        },
        (left, op, right) => {
            let (x, y) = (float(&left)?, float(&right)?);
            Quick::Float(match op {
                Math::Add => x + y,
                Math::Sub => x - y,
                Math::Mul => x * y,
                Math::Div => x / y,
                Math::Rem => x % y,
            })
        }
    })
}

fn float(value: &Quick<'_>) -> Option<f64> {
    match value {
        Quick::Int(i) => Some(*i as f64),
        Quick::Float(f) => Some(*f),
        _ => None,
    }
}

/// jq's order over the scalars: null, then booleans, numbers and strings; arrays and objects
/// are left to jaq.
fn compare(left: &Quick<'_>, op: Cmp, right: &Quick<'_>) -> Option<bool> {
    let order = match (left, right) {
        (Quick::Bool(x), Quick::Bool(y)) => x.cmp(y),
        (Quick::Int(x), Quick::Int(y)) => x.cmp(y),
        (Quick::Str(x), Quick::Str(y)) => x.as_bytes().cmp(y.as_bytes()),
        (x, y) => match (float(x), float(y)) {
            (Some(x), Some(y)) => float_order(x, y),
            _ => rank(left)?.cmp(&rank(right)?),
        },
    };
    Some(match op {
        Cmp::Lt => order.is_lt(),
        Cmp::Le => order.is_le(),
        Cmp::Gt => order.is_gt(),
        Cmp::Ge => order.is_ge(),
        Cmp::Eq => order.is_eq(),
        Cmp::Ne => order.is_ne(),
    })
}

fn rank(value: &Quick<'_>) -> Option<u8> {
    match value {
        Quick::Null => Some(0),
        Quick::Bool(_) => Some(1),
        Quick::Int(_) | Quick::Float(_) => Some(2),
        Quick::Str(_) => Some(3),
        Quick::Other(_) => None,
    }
}

/// jaq's order of floats: the two zeros are equal, NaN is below everything, else IEEE's total
/// order.
fn float_order(x: f64, y: f64) -> Ordering {
    if x == 0.0 && y == 0.0 {
        Ordering::Equal
    } else if x.is_nan() {
        Ordering::Less
    } else if y.is_nan() {
        Ordering::Greater
    } else {
        x.total_cmp(&y)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::{Expression, Mapping, budget, one_value, to_val, trigger_val};
    use super::*;

    /// What jaq gives, for the answers here to be checked against.
    fn by_jaq(expression: &Expression, input: &Value, trigger: &Value) -> Option<Value> {
        budget::within_budget(|budget| {
            let trigger = trigger_val(expression.reads_trigger, trigger);
            one_value(expression, &to_val(input), &trigger, budget).ok()
        })
    }

    fn inputs() -> Vec<Value> {
        vec![
            json!({
                "n": 7, "f": 2.5, "s": "abc", "b": true, "x": 1, "y": -2, "zero": 0, "whole": 7.0,
                "a": { "b": { "c": [1, 2] } }, "arr": [10, { "b": "x" }],
                "big": 18_446_744_073_709_551_615_u64, "most": i64::MAX, "least": i64::MIN,
            }),
            json!({ "n": -8, "f": -0.0, "s": "", "b": false, "x": 1.5, "y": 0, "a": null }),
            json!({}),
            json!(null),
            json!("text"),
            json!([1, 2, 3]),
            json!(12),
        ]
    }

    /// Expressions of the shapes evaluated here, each to be answered without jaq for the first
    /// input at least.
    const DIRECT: &[&str] = &[
        ".",
        ".n",
        ".a.b",
        ".a.b.c",
        ".a.b.c[1]",
        ".arr[0]",
        ".arr[5]",
        ".[\"a\"].b",
        ".arr[1].b",
        ".missing.deeper",
        "$trigger",
        "$trigger.n",
        ".n * 2",
        ".n + 1",
        ".n - 3",
        ".n / 2",
        ".n % 2",
        ".n % 2 == 0",
        ".n % -3",
        ".least % -1",
        "-.n",
        ".x + .y",
        ".s + \"-x\"",
        "null + .n",
        ".n + null",
        ".a + null",
        ".f * 2",
        ".f / 0",
        ".n / .zero",
        ".f % 2",
        ".n == .whole",
        ".n < .f",
        ".s == \"abc\"",
        ".s < \"b\"",
        ".b and .n",
        ".missing or false",
        ".missing // \"default\"",
        ".n // 3",
        ".b | not",
        ".a | .b",
        "true",
        "false",
        "null",
        "1 < null",
        "\"a\" > 1",
        "null < false",
        ".s != .n",
        ".n >= 7 and .s <= \"abc\"",
        "(.n + 1) * (.x - 3)",
        ".most + 0",
        ".s + \"\\u00e9\\n\"",
    ];

    /// Expressions outside the shapes, and ones whose value jaq must give: evaluated here they
    /// must give up, not answer differently.
    const OTHERS: &[&str] = &[
        ".big + 1",
        ".most + 1",
        ".least - 1",
        ".most * 2",
        "-.least",
        ".n % .zero",
        ".s * 2",
        ".s - \"a\"",
        ".a.b.c.d",
        ".s.t",
        ".n[0]",
        ".arr.b",
        "-.s",
        ".a < .arr",
        ".n + .a",
        "[.n]",
        "{n}",
        ".arr[]",
        ".a?",
        ".arr[-1]",
        "\"\\(.n)\"",
        ".n | tostring",
        "1.5 + .n",
        "def f: .n; f",
        ".n as $x | $x",
        "if .b then 1 else 2 end",
        "length",
    ];

    #[test]
    fn every_value_given_is_the_one_jaq_gives() {
        let trigger = json!({ "n": 5 });
        for source in DIRECT.iter().chain(OTHERS) {
            let expression = Expression::compile(source, "e").unwrap();
            for input in inputs() {
                if let Some(direct) = expression.evaluate_directly(&input, &trigger) {
                    assert_eq!(
                        Some(&direct),
                        by_jaq(&expression, &input, &trigger).as_ref(),
                        "{source} over {input}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_common_shapes_are_evaluated_without_jaq() {
        let input = &inputs()[0];
        for source in DIRECT {
            let expression = Expression::compile(source, "e").unwrap();
            assert!(expression.evaluate_directly(input, &json!({ "n": 5 })).is_some(), "{source}");
        }
    }

    #[test]
    fn where_jaq_fails_or_leaves_i64_it_answers() {
        let input = &inputs()[0];
        for source in OTHERS {
            let expression = Expression::compile(source, "e").unwrap();
            assert_eq!(expression.evaluate_directly(input, &Value::Null), None, "{source}");
        }
        let overflowing = Expression::compile(".most + 1", "e").unwrap();
        assert_eq!(
            overflowing.evaluate(input, &Value::Null).unwrap(),
            json!(9_223_372_036_854_775_808_u64)
        );
        let failing = Expression::compile(".s.t", "settings.key").unwrap();
        let error = failing.evaluate(input, &Value::Null).unwrap_err();
        assert_eq!(error.path, "settings.key");
        assert!(error.message.contains("cannot index"), "{error}");
    }

    #[test]
    fn a_value_deeper_than_allowed_is_left_to_jaqs_refusal() {
        let mut deep = json!(1);
        for _ in 0..MAX_VALUE_DEPTH {
            deep = json!([deep]);
        }
        let expression = Expression::compile(".", "e").unwrap();
        assert_eq!(expression.evaluate_directly(&deep, &Value::Null), None);
        let error = expression.evaluate(&deep, &Value::Null).unwrap_err();
        assert!(error.message.contains("deeper than"), "{error}");
    }

    #[test]
    fn a_mapping_any_of_whose_expressions_gives_up_is_evaluated_whole_by_jaq() {
        let input = &inputs()[0];
        let mapping =
            Mapping::compile(&json!({ "twice": "{{ .n * 2 }}", "repeated": ["{{ .s * 2 }}"] }))
                .unwrap();
        assert!(mapping.direct);
        assert_eq!(mapping.evaluate_directly(input, &Value::Null), None);
        assert_eq!(
            mapping.evaluate(input, &Value::Null).unwrap(),
            json!({ "twice": 14, "repeated": ["abcabc"] })
        );
        let failing = Mapping::compile(&json!({ "x": { "y": "at {{ .s.t }}" } })).unwrap();
        assert_eq!(failing.evaluate(input, &Value::Null).unwrap_err().path, "x.y");
        let text =
            Mapping::compile(&json!({ "line": "{{ .s }}: {{ .n * 2 }} {{ .a.b }}" })).unwrap();
        assert_eq!(
            mapping_directly(&text, input),
            Some(json!({ "line": "abc: 14 {\"c\":[1,2]}" }))
        );
    }

    fn mapping_directly(mapping: &Mapping, input: &Value) -> Option<Value> {
        let direct = mapping.evaluate_directly(input, &Value::Null);
        let by_jaq = budget::within_budget(|budget| {
            mapping.evaluate_with_jaq(input, &Value::Null, budget).ok()
        });
        assert_eq!(direct.as_ref(), by_jaq.as_ref().filter(|_| direct.is_some()));
        direct
    }
}
