//! Platforms as image indexes name them (`linux/amd64`, `linux/arm64/v8`), and the choice of
//! which to copy. A platform asked for without a variant takes every variant of its
//! architecture; `arm64` without one is `v8`, as containerd normalises it.

use std::fmt;

use serde::Deserialize;

/// One operating system and architecture, with the CPU variant when it matters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Platform {
    /// Such as `linux`.
    pub os: String,
    /// Such as `amd64` or `arm`.
    pub architecture: String,
    /// Such as `v7`; none when any variant will do.
    pub variant: Option<String>,
}

/// Why a platform could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a platform: write os/architecture[/variant], such as linux/arm64")]
pub struct BadPlatform(pub String);

impl std::str::FromStr for Platform {
    type Err = BadPlatform;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = text.split('/').collect();
        let well_formed = |part: &&str| {
            !part.is_empty()
                && part.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        };
        match parts.as_slice() {
            [os, architecture, variant @ ..]
                if variant.len() <= 1 && parts.iter().all(well_formed) =>
            {
                Ok(Self {
                    os: (*os).to_owned(),
                    architecture: (*architecture).to_owned(),
                    variant: variant.first().map(|v| (*v).to_owned()),
                })
            }
            _ => Err(BadPlatform(text.to_owned())),
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        match &self.variant {
            Some(variant) => write!(f, "/{variant}"),
            None => Ok(()),
        }
    }
}

/// A platform as an index entry or an image config describes it.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Described {
    #[serde(default)]
    os: String,
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    variant: Option<String>,
}

impl Described {
    /// As a platform.
    pub fn platform(&self) -> Platform {
        Platform {
            os: self.os.clone(),
            architecture: self.architecture.clone(),
            variant: self.variant.clone().filter(|v| !v.is_empty()),
        }
    }
}

impl Platform {
    /// Whether an image of `found` serves this platform.
    pub fn takes(&self, found: &Platform) -> bool {
        let variant = |p: &Platform| match (p.architecture.as_str(), p.variant.as_deref()) {
            ("arm64", None) => Some("v8".to_owned()),
            (_, variant) => variant.map(str::to_owned),
        };
        self.os == found.os
            && self.architecture == found.architecture
            && (self.variant.is_none() || variant(self) == variant(found))
    }
}

/// Which platforms of an index to copy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Platforms {
    /// Every one: the index is copied whole and keeps its digest.
    #[default]
    All,
    /// These, as far as the image has them; an index cut down to them gets a new digest.
    Only(Vec<Platform>),
}

impl Platforms {
    /// Whether an image of `found` is to be copied.
    pub fn takes(&self, found: &Platform) -> bool {
        match self {
            Self::All => true,
            Self::Only(wanted) => wanted.iter().any(|w| w.takes(found)),
        }
    }
}

impl fmt::Display for Platforms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::All => f.write_str("all platforms"),
            Self::Only(wanted) => {
                let names: Vec<String> = wanted.iter().map(Platform::to_string).collect();
                f.write_str(&names.join(", "))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn platform(text: &str) -> Platform {
        text.parse().unwrap()
    }

    #[test]
    fn platforms_read_and_print_back() {
        for text in ["linux/amd64", "linux/arm/v7", "windows/amd64", "linux/ppc64le"] {
            assert_eq!(platform(text).to_string(), text);
        }
        for bad in ["linux", "", "linux/", "/amd64", "linux/arm/v7/x", "Linux/AMD64", "linux amd64"]
        {
            assert_eq!(bad.parse::<Platform>(), Err(BadPlatform(bad.to_owned())), "{bad}");
        }
    }

    #[test]
    fn a_platform_without_variant_takes_every_variant() {
        let cases = [
            ("linux/amd64", "linux/amd64", true),
            ("linux/amd64", "linux/arm64", false),
            ("linux/amd64", "windows/amd64", false),
            ("linux/arm", "linux/arm/v7", true),
            ("linux/arm", "linux/arm/v6", true),
            ("linux/arm/v7", "linux/arm/v6", false),
            ("linux/arm/v7", "linux/arm", false),
            ("linux/arm64/v8", "linux/arm64", true),
            ("linux/arm64", "linux/arm64/v8", true),
        ];
        for (wanted, found, takes) in cases {
            assert_eq!(platform(wanted).takes(&platform(found)), takes, "{wanted} takes {found}");
        }
        let only = Platforms::Only(vec![platform("linux/amd64"), platform("linux/arm64")]);
        assert!(only.takes(&platform("linux/arm64/v8")));
        assert!(!only.takes(&platform("linux/s390x")));
        assert!(Platforms::All.takes(&platform("linux/s390x")));
        assert_eq!(only.to_string(), "linux/amd64, linux/arm64");
    }
}
