//! The network addresses an instrument's messages may come from. A lab that lists them closes
//! the door to a device that only claims to be the analyzer, and keeps connection slots for
//! its analyzers that no one else can take.

use std::fmt;
use std::net::IpAddr;

/// The addresses an instrument may send from, in the order of their numbers. Empty when the
/// lab has not restricted it: its messages are then taken from any address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedPeers(Vec<IpAddr>);

/// The most addresses one instrument may list (an analyzer has one or two network cards).
pub const ALLOWED_PEERS_MAX: usize = 16;

/// Why a list of addresses was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerListError {
    /// A word that is no IP address (a host name, a network, a typo).
    #[error(
        "{0:?} is not an IP address: list addresses such as 10.20.1.31 or fd00::31, separated by spaces or commas (no host names or networks), or leave it empty to take this instrument's messages from any address"
    )]
    NotAnAddress(String),
    /// More addresses than one instrument has.
    #[error("at most {limit} addresses may be listed for one instrument")]
    TooMany {
        /// [`ALLOWED_PEERS_MAX`].
        limit: usize,
    },
}

impl AllowedPeers {
    /// Reads addresses separated by spaces, commas or line breaks, as typed or as stored.
    /// IPv4 addresses written as IPv6 (`::ffff:10.20.1.31`) are kept as IPv4; a repeated
    /// address is kept once.
    pub fn parse(text: &str) -> Result<AllowedPeers, PeerListError> {
        let mut addresses = Vec::new();
        for word in text.split(|c: char| c == ',' || c.is_whitespace()).filter(|w| !w.is_empty()) {
            let address: IpAddr =
                word.parse().map_err(|_| PeerListError::NotAnAddress(word.to_owned()))?;
            addresses.push(address.to_canonical());
        }
        addresses.sort();
        addresses.dedup();
        if addresses.len() > ALLOWED_PEERS_MAX {
            return Err(PeerListError::TooMany { limit: ALLOWED_PEERS_MAX });
        }
        Ok(AllowedPeers(addresses))
    }

    /// Whether the lab has restricted the instrument to some addresses.
    pub fn is_restricted(&self) -> bool {
        !self.0.is_empty()
    }

    /// Whether a message from `address` may be taken: always when the list is empty.
    pub fn admits(&self, address: IpAddr) -> bool {
        self.0.is_empty() || self.0.contains(&address.to_canonical())
    }

    /// The listed addresses.
    pub fn addresses(&self) -> &[IpAddr] {
        &self.0
    }

    /// The stored form: the addresses separated by one space, empty when unrestricted.
    pub fn code(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for AllowedPeers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, address) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{address}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_read_as_typed_and_kept_once_in_order() {
        let peers =
            AllowedPeers::parse(" 10.20.1.32,10.20.1.31\n::ffff:10.20.1.31  fd00::31 ").unwrap();
        assert_eq!(peers.code(), "10.20.1.31 10.20.1.32 fd00::31");
        assert_eq!(AllowedPeers::parse(&peers.code()).unwrap(), peers);
    }

    #[test]
    fn an_empty_list_takes_any_address_and_a_list_only_its_own() {
        let open = AllowedPeers::parse("  ").unwrap();
        assert!(!open.is_restricted());
        assert!(open.admits("192.0.2.7".parse().unwrap()));
        let listed = AllowedPeers::parse("10.20.1.31").unwrap();
        assert!(listed.admits("10.20.1.31".parse().unwrap()));
        assert!(listed.admits("::ffff:10.20.1.31".parse().unwrap()), "as an IPv6 listener sees it");
        assert!(!listed.admits("10.20.1.32".parse().unwrap()));
    }

    #[test]
    fn a_host_name_a_network_or_too_many_addresses_are_refused_naming_what_to_type() {
        for typed in ["analyzer-1.lab", "10.20.1.0/24", "10.20.1.31:5100"] {
            let e = AllowedPeers::parse(typed).unwrap_err();
            assert_eq!(e, PeerListError::NotAnAddress(typed.into()));
            assert!(e.to_string().contains("such as 10.20.1.31"), "{e}");
        }
        let many: Vec<String> =
            (1..=ALLOWED_PEERS_MAX + 1).map(|i| format!("10.0.0.{i}")).collect();
        assert_eq!(
            AllowedPeers::parse(&many.join(" ")),
            Err(PeerListError::TooMany { limit: ALLOWED_PEERS_MAX })
        );
    }
}
