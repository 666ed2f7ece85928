//! Names that resources and edges use to refer to each other, each a newtype that can only hold
//! a valid value. The same rule gives the CRD schema its `pattern` and checks values in Rust, so
//! `weir validate`, the editor and the apiserver agree on what a valid name is.

use std::{borrow::Cow, fmt};

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// The longest name any rule accepts (a DNS label's limit, kept for every rule).
pub const MAX_NAME_LEN: usize = 63;

/// The CRD validation rule that makes `metadata.name` a DNS label. Kubernetes accepts longer
/// names with dots for custom resources, but Weir's resources refer to each other by name in
/// places that need the stricter label (edge targets, flow references, Service names).
pub fn metadata_name_rule() -> kube::core::Rule {
    kube::core::Rule::new(
        "self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$') && size(self.metadata.name) <= 63",
    )
    .message(
        "metadata.name must use lowercase letters, digits and '-', start and end with a letter \
         or digit, and have at most 63 characters",
    )
}

/// A rule a name must follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// Lowercase letters, digits and `-`, starting and ending with a letter or digit (RFC 1123
    /// label): resource names, which Kubernetes also uses in DNS.
    DnsLabel,
    /// Lowercase letters, digits and `_`, starting with a letter: identifiers used in code and
    /// jq expressions, such as component and port names.
    SnakeCase,
}

impl NameRule {
    /// The rule as an ECMA-262 regular expression, for JSON Schema `pattern`.
    pub const fn pattern(self) -> &'static str {
        match self {
            Self::DnsLabel => "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
            Self::SnakeCase => "^[a-z][a-z0-9_]*$",
        }
    }

    /// The rule in words, for error messages and editor help.
    pub const fn describe(self) -> &'static str {
        match self {
            Self::DnsLabel => {
                "lowercase letters, digits and '-', starting and ending with a letter or digit, \
                 at most 63 characters"
            }
            Self::SnakeCase => {
                "lowercase letters, digits and '_', starting with a letter, at most 63 characters"
            }
        }
    }

    /// Whether `name` follows the rule.
    pub fn accepts(self, name: &str) -> bool {
        let bytes = name.as_bytes();
        let (Some(&first), Some(&last)) = (bytes.first(), bytes.last()) else {
            return false;
        };
        if bytes.len() > MAX_NAME_LEN {
            return false;
        }
        let lower_or_digit = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        match self {
            Self::DnsLabel => {
                lower_or_digit(first)
                    && lower_or_digit(last)
                    && bytes.iter().all(|&b| lower_or_digit(b) || b == b'-')
            }
            Self::SnakeCase => {
                first.is_ascii_lowercase() && bytes.iter().all(|&b| lower_or_digit(b) || b == b'_')
            }
        }
    }
}

/// A name that broke its rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a valid {what}: use {}", rule.describe())]
pub struct InvalidName {
    /// What the name names, such as `node name`.
    pub what: &'static str,
    /// The rejected value.
    pub value: String,
    /// The rule it broke.
    pub rule: NameRule,
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $rule:expr, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The rule values of this type follow.
            pub const RULE: NameRule = $rule;

            /// Checks `value` against the rule.
            pub fn new(value: impl Into<String>) -> Result<Self, InvalidName> {
                let value = value.into();
                if Self::RULE.accepts(&value) {
                    Ok(Self(value))
                } else {
                    Err(InvalidName { what: $what, value, rule: Self::RULE })
                }
            }

            /// The name as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidName;
            fn try_from(value: String) -> Result<Self, InvalidName> {
                Self::new(value)
            }
        }

        impl std::str::FromStr for $name {
            type Err = InvalidName;
            fn from_str(value: &str) -> Result<Self, InvalidName> {
                Self::new(value)
            }
        }

        impl From<$name> for String {
            fn from(name: $name) -> String {
                name.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        // Ordering and equality are the text's, so maps keyed by names can be searched by text.
        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl JsonSchema for $name {
            fn schema_name() -> Cow<'static, str> {
                stringify!($name).into()
            }

            fn inline_schema() -> bool {
                true
            }

            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!({
                    "type": "string",
                    "minLength": 1,
                    "maxLength": MAX_NAME_LEN,
                    "pattern": Self::RULE.pattern(),
                })
            }
        }
    };
}

name_type!(
    /// The name of a FlowNode, which edges use to point at it.
    NodeName,
    NameRule::DnsLabel,
    "node name"
);
name_type!(
    /// The name of a Flow.
    FlowName,
    NameRule::DnsLabel,
    "flow name"
);
name_type!(
    /// The name of the ServiceAccount a flow acts as, in the flow's namespace.
    AccountName,
    NameRule::DnsLabel,
    "ServiceAccount name"
);
name_type!(
    /// The name of a module, such as `common` or `kubernetes`.
    ModuleName,
    NameRule::DnsLabel,
    "module name"
);
name_type!(
    /// The name of a component inside its module, such as `ticker`.
    ComponentName,
    NameRule::SnakeCase,
    "component name"
);
name_type!(
    /// The name of a node's input or output port, such as `in`, `out` or `error`.
    PortName,
    NameRule::SnakeCase,
    "port name"
);

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLES: &[&str] = &[
        "",
        "a",
        "a1",
        "1a",
        "-a",
        "a-",
        "a-b",
        "a_b",
        "A",
        "aB",
        "ticker",
        "deployment_list",
        "image-mirror",
        "x.y",
        "a b",
        "é",
        "_a",
        "a__b",
        "a--b",
        "0",
    ];

    #[test]
    fn rules_agree_with_their_patterns() {
        for rule in [NameRule::DnsLabel, NameRule::SnakeCase] {
            let pattern = regex::Regex::new(rule.pattern()).unwrap();
            for sample in SAMPLES {
                assert_eq!(
                    rule.accepts(sample),
                    pattern.is_match(sample),
                    "{rule:?} on {sample:?}"
                );
            }
        }
    }

    #[test]
    fn length_is_bounded() {
        assert!(NameRule::DnsLabel.accepts(&"a".repeat(63)));
        assert!(!NameRule::DnsLabel.accepts(&"a".repeat(64)));
        assert!(!NameRule::SnakeCase.accepts(&"a".repeat(64)));
    }

    #[test]
    fn invalid_name_says_what_and_why() {
        let err = NodeName::new("Bad_Name").unwrap_err();
        assert_eq!(
            err.to_string(),
            "\"Bad_Name\" is not a valid node name: use lowercase letters, digits and '-', \
             starting and ending with a letter or digit, at most 63 characters"
        );
    }

    #[test]
    fn deserializing_checks_the_rule() {
        let err = serde_json::from_str::<PortName>("\"Out\"").unwrap_err();
        assert!(err.to_string().contains("not a valid port name"), "{err}");
        let ok: PortName = serde_json::from_str("\"out\"").unwrap();
        assert_eq!(ok.as_str(), "out");
    }
}
