//! Which addresses a request may reach. Link-local addresses (169.254.0.0/16, fe80::/10) and
//! the cloud metadata service's (fd00:ec2::254) hand out the credentials of the machine a
//! module runs on, which a flow must never get, so they are refused unless a node's
//! `allowAddresses` lists them. Names are checked where they resolve (a resolver reqwest
//! calls), so a name pointed at the metadata service is refused like the address itself.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    str::FromStr,
    sync::Arc,
};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// A block of addresses, such as `169.254.169.254/32` or `fd00:ec2::/64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

/// Why a CIDR does not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a CIDR such as 169.254.169.254/32 or fd00:ec2::/64: {why}")]
pub struct CidrError {
    text: String,
    why: &'static str,
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(text: &str) -> Result<Self, CidrError> {
        let fail = |why| CidrError { text: text.to_owned(), why };
        let (address, prefix) = text.split_once('/').ok_or_else(|| fail("no /prefix"))?;
        let network: IpAddr = address.parse().map_err(|_| fail("the address does not read"))?;
        let prefix: u8 = prefix.parse().map_err(|_| fail("the prefix is not a number"))?;
        let bits = if network.is_ipv4() { 32 } else { 128 };
        if prefix > bits {
            return Err(fail("the prefix is longer than the address"));
        }
        Ok(Self { network, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl Cidr {
    const fn v4(a: u8, b: u8, prefix: u8) -> Self {
        Self { network: IpAddr::V4(Ipv4Addr::new(a, b, 0, 0)), prefix }
    }

    const fn v6(segments: [u16; 8], prefix: u8) -> Self {
        let [a, b, c, d, e, f, g, h] = segments;
        Self { network: IpAddr::V6(Ipv6Addr::new(a, b, c, d, e, f, g, h)), prefix }
    }

    /// Whether `address` is in the block.
    pub fn contains(&self, address: IpAddr) -> bool {
        match (self.network, address) {
            (IpAddr::V4(network), IpAddr::V4(address)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(network) & mask == u32::from(address) & mask
            }
            (IpAddr::V6(network), IpAddr::V6(address)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(network) & mask == u128::from(address) & mask
            }
            _ => false,
        }
    }
}

/// The blocks refused unless allowed: IPv4 and IPv6 link-local (the metadata services of
/// AWS, GCP, Azure and others at 169.254.169.254) and AWS's IPv6 metadata address.
const REFUSED: [Cidr; 3] = [
    Cidr::v4(169, 254, 16),
    Cidr::v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10),
    Cidr::v6([0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254], 128),
];

/// The addresses a node may not reach, and the blocks its settings allow after all.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    allowed: Arc<[Cidr]>,
}

/// An address a request was about to reach and may not.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{host} is {address}, a link-local or cloud metadata address, which requests may not \
     reach unless settings.allowAddresses lists it"
)]
pub struct Refused {
    /// The host as the URL named it.
    pub host: String,
    /// The address it is, or resolved to.
    pub address: IpAddr,
}

impl Guard {
    /// A guard that also lets through the blocks in `allowed`.
    pub fn new(allowed: Vec<Cidr>) -> Self {
        Self { allowed: allowed.into() }
    }

    /// Whether `address` may be reached; an IPv4 address written as IPv6 (`::ffff:a.b.c.d`)
    /// is judged as the IPv4 address it is.
    pub fn permits(&self, address: IpAddr) -> bool {
        let address = match address {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
            v4 @ IpAddr::V4(_) => v4,
        };
        !REFUSED.iter().any(|block| block.contains(address))
            || self.allowed.iter().any(|block| block.contains(address))
    }

    /// Checks the host of `url`: an address literal is judged at once; a name is judged
    /// where it resolves (see the [`Resolve`] implementation).
    pub fn check_url(&self, url: &reqwest::Url) -> Result<(), Refused> {
        let host = url.host_str().unwrap_or_default();
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        match literal.parse::<IpAddr>() {
            Ok(address) if !self.permits(address) => {
                Err(Refused { host: host.to_owned(), address })
            }
            _ => Ok(()),
        }
    }
}

impl Resolve for Guard {
    fn resolve(&self, name: Name) -> Resolving {
        let guard = self.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            // Port 0: reqwest puts the URL's port on what a resolver gives.
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refused = None;
            let permitted: Vec<SocketAddr> = found
                .into_iter()
                .filter(|socket| {
                    let ok = guard.permits(socket.ip());
                    if !ok {
                        refused.get_or_insert(socket.ip());
                    }
                    ok
                })
                .collect();
            match (permitted.is_empty(), refused) {
                (true, Some(address)) => Err(Box::new(Refused { host, address }) as _),
                _ => Ok(Box::new(permitted.into_iter()) as Addrs),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_and_link_local_addresses_are_refused_unless_allowed() {
        let guard = Guard::default();
        for refused in
            ["169.254.169.254", "169.254.0.1", "fe80::1", "fd00:ec2::254", "::ffff:169.254.169.254"]
        {
            assert!(!guard.permits(refused.parse().unwrap()), "{refused}");
        }
        for permitted in ["127.0.0.1", "10.0.0.1", "169.255.0.1", "::1", "fd00:ec2::253", "8.8.8.8"]
        {
            assert!(guard.permits(permitted.parse().unwrap()), "{permitted}");
        }
        let allowing = Guard::new(vec!["169.254.169.254/32".parse().unwrap()]);
        assert!(allowing.permits("169.254.169.254".parse().unwrap()));
        assert!(!allowing.permits("169.254.169.253".parse().unwrap()), "only the block allowed");
        let literal = |url: &str| guard.check_url(&url.parse().unwrap());
        assert!(literal("http://[fd00:ec2::254]/latest").is_err());
        assert_eq!(
            literal("http://169.254.169.254/latest/meta-data").unwrap_err().to_string(),
            "169.254.169.254 is 169.254.169.254, a link-local or cloud metadata address, which \
             requests may not reach unless settings.allowAddresses lists it"
        );
        assert!(literal("http://example.com/").is_ok(), "names are judged where they resolve");
    }

    #[test]
    fn cidrs_read_and_bad_ones_say_why() {
        let block: Cidr = "fd00:ec2::/64".parse().unwrap();
        assert!(block.contains("fd00:ec2::254".parse().unwrap()));
        assert!(!block.contains("169.254.0.1".parse().unwrap()), "families never mix");
        let everything: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(everything.contains("169.254.169.254".parse().unwrap()));
        let err = "169.254.0.0/33".parse::<Cidr>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "\"169.254.0.0/33\" is not a CIDR such as 169.254.169.254/32 or fd00:ec2::/64: the prefix is longer than the address"
        );
        assert!("169.254.0.0".parse::<Cidr>().unwrap_err().to_string().ends_with("no /prefix"));
        assert!("metadata/8".parse::<Cidr>().is_err());
    }

    #[tokio::test]
    async fn a_name_that_resolves_only_to_refused_addresses_is_refused() {
        let guard = Guard::default();
        // A literal resolves to itself without DNS, as a name pointed at it would.
        let Err(err) = guard.resolve("169.254.169.254".parse().unwrap()).await else {
            panic!("a metadata address resolved")
        };
        assert!(err.to_string().contains("settings.allowAddresses"), "{err}");
        let found: Vec<SocketAddr> =
            guard.resolve("localhost".parse().unwrap()).await.unwrap().collect();
        assert!(!found.is_empty());
    }
}
