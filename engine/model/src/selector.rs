//! Label selectors in the syntax `kubectl -l` takes: `app=web,tier!=db,env in (a,b),!legacy`.

use std::{collections::BTreeMap, fmt, str::FromStr};

/// A set of requirements on labels; an object matches when it meets all of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    Absent(String),
    /// A label whose value is an integer greater than this one, as the apiserver's `>`.
    GreaterThan(String, i64),
    /// A label whose value is an integer less than this one, as the apiserver's `<`.
    LessThan(String, i64),
}

/// A selector that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid label selector {selector:?}: {reason}")]
pub struct InvalidSelector {
    /// The selector as given.
    pub selector: String,
    /// What is wrong with it.
    pub reason: String,
}

impl Selector {
    /// The selector that matches everything.
    pub fn everything() -> Self {
        Self::default()
    }

    /// Whether it matches everything.
    pub fn is_everything(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether `labels` meet every requirement.
    pub fn matches(&self, labels: Option<&BTreeMap<String, String>>) -> bool {
        let get = |key: &str| labels.and_then(|l| l.get(key));
        self.requirements.iter().all(|req| match req {
            Requirement::Equals(k, v) => get(k) == Some(v),
            Requirement::NotEquals(k, v) => get(k) != Some(v),
            Requirement::In(k, vs) => get(k).is_some_and(|v| vs.contains(v)),
            Requirement::NotIn(k, vs) => get(k).is_none_or(|v| !vs.contains(v)),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::Absent(k) => get(k).is_none(),
            Requirement::GreaterThan(k, bound) => {
                get(k).and_then(|v| v.parse::<i64>().ok()).is_some_and(|v| v > *bound)
            }
            Requirement::LessThan(k, bound) => {
                get(k).and_then(|v| v.parse::<i64>().ok()).is_some_and(|v| v < *bound)
            }
        })
    }
}

impl FromStr for Selector {
    type Err = InvalidSelector;

    fn from_str(text: &str) -> Result<Self, InvalidSelector> {
        let invalid =
            |reason: &str| InvalidSelector { selector: text.to_owned(), reason: reason.to_owned() };
        let mut requirements = Vec::new();
        for part in split_top_level(text) {
            let part = part.trim();
            if part.is_empty() {
                if text.trim().is_empty() {
                    continue;
                }
                return Err(invalid("empty requirement between commas"));
            }
            let requirement = if let Some(key) = part.strip_prefix('!') {
                Requirement::Absent(
                    label_key(key.trim()).ok_or_else(|| invalid("bad key after '!'"))?,
                )
            } else if let Some((key, values)) = split_set(part, "notin") {
                Requirement::NotIn(
                    label_key(key).ok_or_else(|| invalid("bad key before notin"))?,
                    set(values).ok_or_else(|| invalid("write a set as (a,b)"))?,
                )
            } else if let Some((key, values)) = split_set(part, "in") {
                Requirement::In(
                    label_key(key).ok_or_else(|| invalid("bad key before in"))?,
                    set(values).ok_or_else(|| invalid("write a set as (a,b)"))?,
                )
            } else if let Some((key, bound)) = part.split_once('>') {
                Requirement::GreaterThan(
                    label_key(key).ok_or_else(|| invalid("bad key before >"))?,
                    bound.trim().parse().map_err(|_| invalid("> takes a whole number"))?,
                )
            } else if let Some((key, bound)) = part.split_once('<') {
                Requirement::LessThan(
                    label_key(key).ok_or_else(|| invalid("bad key before <"))?,
                    bound.trim().parse().map_err(|_| invalid("< takes a whole number"))?,
                )
            } else if let Some((key, value)) = part.split_once("!=") {
                Requirement::NotEquals(
                    label_key(key).ok_or_else(|| invalid("bad key before !="))?,
                    value.trim().to_owned(),
                )
            } else if let Some((key, value)) =
                part.split_once("==").or_else(|| part.split_once('='))
            {
                Requirement::Equals(
                    label_key(key).ok_or_else(|| invalid("bad key before ="))?,
                    value.trim().to_owned(),
                )
            } else {
                Requirement::Exists(label_key(part).ok_or_else(|| invalid("bad label key"))?)
            };
            requirements.push(requirement);
        }
        Ok(Self { requirements })
    }
}

/// Splits on commas that are not inside a `(…)` set.
fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

/// `key OPERATOR (set)`, the operator a word (`in`, `notin`) after white space, with or
/// without white space before the set.
fn split_set<'a>(part: &'a str, operator: &str) -> Option<(&'a str, &'a str)> {
    let (key, rest) = part.split_once(char::is_whitespace)?;
    let values = rest.trim_start().strip_prefix(operator)?;
    values.trim_start().starts_with('(').then(|| (key.trim(), values.trim()))
}

fn set(text: &str) -> Option<Vec<String>> {
    let inner = text.strip_prefix('(')?.strip_suffix(')')?;
    Some(inner.split(',').map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()).collect())
}

fn label_key(key: &str) -> Option<String> {
    let key = key.trim();
    let valid =
        !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c));
    valid.then(|| key.to_owned())
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .requirements
            .iter()
            .map(|req| match req {
                Requirement::Equals(k, v) => format!("{k}={v}"),
                Requirement::NotEquals(k, v) => format!("{k}!={v}"),
                Requirement::In(k, vs) => format!("{k} in ({})", vs.join(",")),
                Requirement::NotIn(k, vs) => format!("{k} notin ({})", vs.join(",")),
                Requirement::Exists(k) => k.clone(),
                Requirement::Absent(k) => format!("!{k}"),
                Requirement::GreaterThan(k, bound) => format!("{k}>{bound}"),
                Requirement::LessThan(k, bound) => format!("{k}<{bound}"),
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn every_operator_matches_like_kubectl() {
        let web = labels(&[("app", "web"), ("env", "prod"), ("replicas", "3")]);
        let cases = [
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app=db", false),
            ("app!=db", true),
            ("env in (prod, staging)", true),
            ("env notin (prod)", false),
            ("missing notin (x)", true),
            ("app", true),
            ("!app", false),
            ("!legacy", true),
            ("app=web,env in (dev)", false),
            ("app=web, env in (prod,dev), !legacy", true),
            // As the apiserver reads them: a set right after its operator, and integer bounds.
            ("env in(prod)", true),
            ("env notin(prod)", false),
            ("replicas>2", true),
            ("replicas > 3", false),
            ("replicas<4", true),
            ("app>1", false),
        ];
        for (text, expected) in cases {
            let selector: Selector = text.parse().unwrap();
            assert_eq!(selector.matches(Some(&web)), expected, "{text}");
        }
        assert!(!"app".parse::<Selector>().unwrap().matches(None));
    }

    #[test]
    fn display_round_trips() {
        let text = "app=web,tier!=db,env in (a,b),env notin (c),x,!y,n>1,n<5";
        assert_eq!(text.parse::<Selector>().unwrap().to_string(), text);
    }

    #[test]
    fn malformed_selectors_say_why() {
        for text in ["a=b,,c=d", "env in prod", "=x", "!", "a b=c", "n>many", "<3"] {
            let err = text.parse::<Selector>().unwrap_err();
            assert!(err.to_string().starts_with("invalid label selector"), "{text}: {err}");
        }
    }
}
