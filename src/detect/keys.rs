//! The keys of an event that every rule shares: the user (sub, else name) and the grouped address, with
//! the hashes rules find their state by.

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::net::IpAddr;
use std::ops::Deref;

use super::window;
use crate::event::SignInEvent;

/// The keys of one event, computed once and shared by every detector: the texts for evidence and their
/// hashes ([`window::key_hash`]), which every rule looks its state up by. A missing key hashes to
/// [`window::NO_COUNTERPART`].
#[derive(Debug, Clone)]
pub struct Keys<'a> {
    /// The user's identity: the sub, else the name (see [`UserAliases`]).
    pub user: Option<&'a str>,
    /// The user's name as shown, when the event has one.
    pub user_name: Option<&'a str>,
    /// The address as grouped ([`IpKey`]): IPv4 as is, IPv6 as its prefix (`2001:db8:1:2::/64`). Text the
    /// caller formatted once: every rule reads it, and reading an `IpKey` as text checks it each time.
    pub ip: Option<&'a str>,
    /// `key_hash` of `user`.
    pub user_hash: u64,
    /// `key_hash` of `ip`.
    pub ip_hash: u64,
    /// [`super::shard::split_hash`] of `user`: which shard keeps the user's state. Set ([`Keys::with_splits`]) only
    /// on the keys handed to sharded instances; an unsharded rule owns every key and never reads it.
    pub user_split: u64,
    /// [`super::shard::split_hash`] of `ip`, likewise.
    pub ip_split: u64,
    /// The user pool as pool-wide rules key it ([`SignInEvent::pool_key`] as text), with its `key_hash`.
    pub pool: Option<(&'a str, u64)>,
}

impl<'a> Keys<'a> {
    /// The keys of one event on its own: the sub, else the name, with no name learned from earlier
    /// events ([`UserAliases`], which the engine applies), and its address as grouped (`ip`, from
    /// [`IpKey::group`]). For benches and tests that drive one detector.
    pub fn of(ev: &'a SignInEvent, ip: Option<&'a IpKey>) -> Keys<'a> {
        let user_name = ev.user_name.as_deref().filter(|n| !n.is_empty());
        let user = ev.user_sub.as_deref().filter(|s| !s.is_empty()).or(user_name);
        let pool = ev.pool_key().filter(|p| p.region.is_none()).map(|p| (p.pool, window::key_hash(p.pool)));
        Keys::new(user, user_name, ip.map(IpKey::as_str)).with_pool(pool)
    }

    /// These keys with the event's pool key ([`PoolKeys`] makes it).
    pub fn with_pool(self, pool: Option<(&'a str, u64)>) -> Keys<'a> {
        Keys { pool, ..self }
    }

    pub fn new(user: Option<&'a str>, user_name: Option<&'a str>, ip: Option<&'a str>) -> Keys<'a> {
        Keys::hashed(user.map(|u| (u, window::key_hash(u))), user_name, ip)
    }

    /// As [`Keys::new`], with the user's hash already known.
    pub fn hashed(user: Option<(&'a str, u64)>, user_name: Option<&'a str>, ip: Option<&'a str>) -> Keys<'a> {
        Keys::prehashed(user, user_name, ip.map(|ip| (ip, window::key_hash(ip))))
    }

    /// As [`Keys::new`], with both hashes already known.
    pub fn prehashed(user: Option<(&'a str, u64)>, user_name: Option<&'a str>, ip: Option<(&'a str, u64)>) -> Keys<'a> {
        let (user, user_hash) = user.map_or((None, window::NO_COUNTERPART), |(u, h)| (Some(u), h));
        let (ip, ip_hash) = ip.map_or((None, window::NO_COUNTERPART), |(i, h)| (Some(i), h));
        let (user_split, ip_split) = (window::NO_COUNTERPART, window::NO_COUNTERPART);
        Keys { user, user_name, ip, user_hash, ip_hash, user_split, ip_split, pool: None }
    }

    /// These keys with their [`super::shard::split_hash`]es, which say which shard keeps each.
    pub fn with_splits(self, user_split: u64, ip_split: u64) -> Keys<'a> {
        Keys { user_split, ip_split, ..self }
    }
}

/// App clients remembered with their pool: a pool has a handful of clients, a trail a handful of pools.
const MAX_CLIENTS: usize = 10_000;

/// The pool key of the events, as text with its hash, made once per change of pool: a log holds one
/// pool's events, so formatting and hashing it for every event would be waste.
///
/// CloudTrail leaves the pool out of many records (a failed `InitiateAuth` names only the app client), so
/// an event without a pool id takes the pool its app client was seen with; one whose client was never
/// seen with a pool is keyed by the client (`app client <id>`), which belongs to exactly one pool.
#[derive(Default)]
pub struct PoolKeys {
    pool: String,
    region: Option<String>,
    text: String,
    hash: u64,
    /// App client id → its pool id.
    pools_by_client: HashMap<String, String>,
}

impl PoolKeys {
    /// The pool key of `ev` (see [`SignInEvent::pool_key`]) and its [`window::key_hash`].
    pub fn key(&mut self, ev: &SignInEvent) -> Option<(&str, u64)> {
        let client = ev.client_id.as_deref().filter(|c| !c.is_empty());
        let named = ev.user_pool_id.as_deref().filter(|p| !p.is_empty());
        if let (Some(pool), Some(client)) = (named, client) {
            if self.pools_by_client.len() < MAX_CLIENTS && self.pools_by_client.get(client).is_none_or(|p| p != pool) {
                self.pools_by_client.insert(client.to_owned(), pool.to_owned());
            }
        }
        let (pool, is_client) = match named {
            Some(pool) => (pool, false),
            None => match self.pools_by_client.get(client?) {
                Some(pool) => (pool.as_str(), false),
                None => (client?, true),
            },
        };
        let home = pool.split_once('_').map(|(region, _)| region);
        let region = ev.region.as_deref().filter(|r| !r.is_empty() && Some(*r) != home && !is_client);
        if pool != self.pool || region != self.region.as_deref() {
            let key = crate::event::PoolKey { pool, region };
            self.text.clear();
            if is_client {
                let _ = write!(self.text, "app client {pool}");
            } else {
                let _ = write!(self.text, "{key}");
            }
            pool.clone_into(&mut self.pool);
            self.region = region.map(str::to_owned);
            self.hash = window::key_hash(&self.text);
        }
        Some((&self.text, self.hash))
    }
}

/// Most user-name → sub pairs remembered (about 80 bytes each); past it the map starts over.
pub const MAX_USER_ALIASES: usize = 200_000;

/// Decides which key stands for a user. The sub is the identity: it never changes and is unique, while
/// names can be case-insensitive aliases, and CloudTrail logs only the sub. An event with a name but no
/// sub (a name that does not exist, or a record that left the sub out) is keyed by the sub learned from
/// earlier events that carried both, else by the name.
///
/// Names and subs are known by their [`window::key_hash`] (a 64-bit keyed hash: two names meeting by
/// chance is as likely as two keys of a rule doing so), which keeps the common case, a pair already
/// known, to two hashes and one comparison of them, without reading the remembered sub's text.
pub struct UserAliases {
    /// Name hash → the sub's hash and text (a UUID packed: one is kept for every user who signs in).
    sub_by_name: HashMap<u64, (u64, PackedId), window::PreHashed>,
    /// A packed sub's text, written out for the event at hand.
    text: [u8; 36],
}

impl Default for UserAliases {
    fn default() -> UserAliases {
        UserAliases { sub_by_name: HashMap::default(), text: [0; 36] }
    }
}

impl UserAliases {
    /// The key for the user of `ev`, with its [`window::key_hash`].
    pub fn key<'a>(&'a mut self, ev: &'a SignInEvent) -> Option<(&'a str, u64)> {
        let name = ev.user_name.as_deref().filter(|n| !n.is_empty());
        let sub = ev.user_sub.as_deref().filter(|s| !s.is_empty());
        match (name, sub) {
            (Some(name), Some(sub)) => {
                let (nh, sh) = (window::key_hash(name), window::key_hash(sub));
                if self.sub_by_name.get(&nh).is_none_or(|(known, _)| *known != sh) {
                    if self.sub_by_name.len() >= MAX_USER_ALIASES {
                        self.sub_by_name.clear();
                    }
                    self.sub_by_name.insert(nh, (sh, PackedId::new(sub)));
                }
                Some((sub, sh))
            }
            (None, Some(sub)) => Some((sub, window::key_hash(sub))),
            (Some(name), None) => {
                let nh = window::key_hash(name);
                let UserAliases { sub_by_name, text } = self;
                Some(sub_by_name.get(&nh).map_or((name, nh), |(sh, sub)| (sub.as_str(text), *sh)))
            }
            (None, None) => None,
        }
    }
}

/// An identifier kept for hours: Cognito's subs and event ids are lowercase UUIDs, packed into 16 bytes
/// instead of 36 bytes of text on the heap (impossible travel keeps a few event ids for every user who
/// signs in, [`UserAliases`] a sub); anything else as is.
#[derive(Debug, Clone)]
pub enum PackedId {
    Uuid([u8; 16]),
    Text(Box<str>),
}

/// Byte offsets of the hyphens in a UUID's text.
const UUID_HYPHENS: [usize; 4] = [8, 13, 18, 23];

impl PackedId {
    pub fn new(s: &str) -> PackedId {
        Self::pack(s).map_or_else(|| PackedId::Text(Box::from(s)), PackedId::Uuid)
    }

    /// Only the canonical lowercase form, so the text written back is byte for byte the one read.
    fn pack(s: &str) -> Option<[u8; 16]> {
        let b = s.as_bytes();
        if b.len() != 36 || UUID_HYPHENS.iter().any(|&i| b[i] != b'-') {
            return None;
        }
        let nibble = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        };
        let mut out = [0u8; 16];
        let mut at = 0;
        for byte in &mut out {
            if UUID_HYPHENS.contains(&at) {
                at += 1;
            }
            *byte = nibble(b[at])? << 4 | nibble(b[at + 1])?;
            at += 2;
        }
        Some(out)
    }

    /// The id's text, written into `buf` when packed.
    pub fn as_str<'a>(&'a self, buf: &'a mut [u8; 36]) -> &'a str {
        match self {
            PackedId::Text(s) => s,
            PackedId::Uuid(bytes) => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                let mut at = 0;
                for (i, byte) in bytes.iter().enumerate() {
                    if matches!(i, 4 | 6 | 8 | 10) {
                        buf[at] = b'-';
                        at += 1;
                    }
                    buf[at] = HEX[usize::from(byte >> 4)];
                    buf[at + 1] = HEX[usize::from(byte & 15)];
                    at += 2;
                }
                // Only ASCII hex digits and hyphens were written.
                std::str::from_utf8(&buf[..]).unwrap_or_default()
            }
        }
    }
}

/// Longest grouped address text: a full IPv6 address with an embedded IPv4 part (45) and "/128".
const IP_KEY_BYTES: usize = 50;

/// A grouped address as text, formatted in place: every event has one, and allocating a `String` for it
/// was a measurable share of the engine's time.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct IpKey {
    len: u8,
    bytes: [u8; IP_KEY_BYTES],
}

impl IpKey {
    /// The address as detectors group it: IPv6 by prefix (128 keeps single addresses).
    pub fn group(ip: IpAddr, ipv6_prefix: u8) -> IpKey {
        let mut key = IpKey { len: 0, bytes: [0; IP_KEY_BYTES] };
        // Cannot fail: the longest address text fits (IP_KEY_BYTES).
        let _ = match ip {
            IpAddr::V4(v4) => {
                key.push_v4(v4);
                Ok(())
            }
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => {
                    key.push_v4(v4);
                    Ok(())
                }
                None if ipv6_prefix >= 128 => write!(key, "{v6}"),
                None => match ipnet::Ipv6Net::new(v6, ipv6_prefix) {
                    Ok(net) => write!(key, "{}", net.trunc()),
                    Err(_) => write!(key, "{v6}"),
                },
            },
        };
        key
    }

    /// Dotted-decimal text of `v4`, written directly: every event has an address, and `fmt` machinery
    /// was a measurable share of the engine's time. Fits: the key is empty and 15 bytes at most.
    fn push_v4(&mut self, v4: std::net::Ipv4Addr) {
        let mut at = self.len as usize;
        for (i, octet) in v4.octets().into_iter().enumerate() {
            if i > 0 {
                self.bytes[at] = b'.';
                at += 1;
            }
            if octet >= 100 {
                self.bytes[at] = b'0' + octet / 100;
                at += 1;
            }
            if octet >= 10 {
                self.bytes[at] = b'0' + octet / 10 % 10;
                at += 1;
            }
            self.bytes[at] = b'0' + octet % 10;
            at += 1;
        }
        self.len = at as u8;
    }

    pub fn as_str(&self) -> &str {
        // Only `write_str` and `push_v4` fill the bytes, with whole `&str`s, so they are valid UTF-8.
        std::str::from_utf8(&self.bytes[..self.len as usize]).unwrap_or_default()
    }
}

impl fmt::Write for IpKey {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let start = self.len as usize;
        let end = start + s.len();
        if end > IP_KEY_BYTES {
            return Err(fmt::Error);
        }
        self.bytes[start..end].copy_from_slice(s.as_bytes());
        self.len = end as u8;
        Ok(())
    }
}

impl Deref for IpKey {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for IpKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for IpKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether two addresses fall in one group ([`IpKey::group`]) without formatting either: the same IPv4
/// address (an IPv4-mapped IPv6 address counts as its IPv4 one), or IPv6 addresses in the same prefix.
pub fn same_group(a: IpAddr, b: IpAddr, ipv6_prefix: u8) -> bool {
    let v4 = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    match (v4(a), v4(b)) {
        (IpAddr::V4(x), IpAddr::V4(y)) => x == y,
        (IpAddr::V6(x), IpAddr::V6(y)) if ipv6_prefix < 128 => {
            let mask = u128::MAX.checked_shl(128 - u32::from(ipv6_prefix)).unwrap_or(0);
            u128::from(x) & mask == u128::from(y) & mask
        }
        (IpAddr::V6(x), IpAddr::V6(y)) => x == y,
        _ => false,
    }
}

/// An address as detectors group it: IPv6 by prefix (128 keeps single addresses).
pub fn group_ip(ip: IpAddr, ipv6_prefix: u8) -> String {
    IpKey::group(ip, ipv6_prefix).as_str().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_pack_only_canonical_uuids_and_read_back_the_same() {
        let mut buf = [0u8; 36];
        for id in ["9e48f598-c837-4e43-8dfd-6e1dd5048957", "00000000-0000-0000-0000-000000000000"] {
            let e = PackedId::new(id);
            assert!(matches!(e, PackedId::Uuid(_)), "{id}");
            assert_eq!(e.as_str(&mut buf), id);
        }
        for id in [
            "9E48F598-C837-4E43-8DFD-6E1DD5048957",
            "9e48f598c8374e438dfd6e1dd5048957",
            "ev-login_POST",
            "9e48f598-c837-4e43-8dfd-6e1dd504895g",
        ] {
            let e = PackedId::new(id);
            assert!(matches!(e, PackedId::Text(_)), "{id}");
            assert_eq!(e.as_str(&mut buf), id);
        }
    }

    #[test]
    fn ipv4_keys_read_as_std_formats_them() {
        for text in ["0.0.0.0", "255.255.255.255", "10.0.9.100", "203.0.113.7", "1.20.199.5", "::ffff:192.0.2.10"] {
            let ip: IpAddr = text.parse().expect("address");
            let v4 = match ip {
                IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
                v4 => v4,
            };
            assert_eq!(IpKey::group(ip, 64).as_str(), v4.to_string());
        }
    }

    #[test]
    fn same_group_agrees_with_the_grouped_text() {
        let ips: Vec<IpAddr> = [
            "203.0.113.7",
            "203.0.113.8",
            "::ffff:203.0.113.7",
            "2001:db8:1:2::1",
            "2001:db8:1:2:ffff::9",
            "2001:db8:1:3::1",
            "2001:db8::",
            "::",
        ]
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect();
        for prefix in [0, 1, 48, 64, 127, 128] {
            for &a in &ips {
                for &b in &ips {
                    let by_text = IpKey::group(a, prefix) == IpKey::group(b, prefix);
                    assert_eq!(same_group(a, b, prefix), by_text, "{a} {b} /{prefix}");
                }
            }
        }
    }
}
