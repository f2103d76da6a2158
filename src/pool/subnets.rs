//! The pool's own address range (`[pool] subnets`) and its arithmetic: a
//! block per slot, a small subnet per network of the slot, the text of the
//! slot's networks file, and what in the engine or the host's routing table
//! overlaps the blocks in use. It asks nothing of the engine and reads no
//! file itself.
//!
//! Docker's default address pools hold about 30 bridge networks; a pool of
//! many slots, each with a network or two, runs out long before. Subnets of
//! the pool's own, given to compose in an extra file, do not.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;

/// The default range. 10.213.0.0/16 is in none of Docker's default address
/// pools (172.17.0.0/12 and 192.168.0.0/16), nor among the ranges home and
/// office networks, VPNs and Kubernetes commonly take (10.0.x, 10.1.x, 10.8.x,
/// 10.10.x, 10.42-43.x, 10.88.x, 10.96.x, 10.100.x, 10.244.x).
pub(crate) const DEFAULT_RANGE: &str = "10.213.0.0/16";
/// The opt-out: the engine chooses each network's subnet from its own pools.
pub(crate) const ENGINE: &str = "engine";
/// Each slot's block: a /23 (a /16 holds 128 slots, more than `MAX_SLOT`).
pub(crate) const SLOT_PREFIX: u8 = 23;
/// Each network's subnet in its slot's block: a /26 (62 addresses), so a
/// slot holds 8 networks.
pub(crate) const NETWORK_PREFIX: u8 = 26;
pub(crate) const NETWORKS_PER_SLOT: usize = 1 << (NETWORK_PREFIX - SLOT_PREFIX);

/// An IPv4 network: an address whose host bits are zero, and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Net {
    pub(crate) addr: u32,
    pub(crate) prefix: u8,
}

impl Net {
    /// `a.b.c.d/n`, with no host bits set.
    pub(crate) fn parse(text: &str) -> Result<Net, String> {
        let (addr, prefix) = text
            .split_once('/')
            .ok_or_else(|| format!("`{text}` is not a range like `{DEFAULT_RANGE}`"))?;
        let addr: Ipv4Addr = addr
            .parse()
            .map_err(|_| format!("`{addr}` in `{text}` is not an IPv4 address"))?;
        let prefix: u8 =
            prefix.parse().ok().filter(|p| *p <= 32).ok_or_else(|| {
                format!("`/{prefix}` in `{text}` is not a prefix length of 0 to 32")
            })?;
        let net = Net {
            addr: u32::from(addr) & mask(prefix),
            prefix,
        };
        if net.addr != u32::from(addr) {
            return Err(format!(
                "`{text}` has host bits set: the range starting there is `{net}`"
            ));
        }
        Ok(net)
    }

    fn last(self) -> u32 {
        self.addr | !mask(self.prefix)
    }

    pub(crate) fn overlaps(self, other: Net) -> bool {
        self.addr <= other.last() && other.addr <= self.last()
    }

    /// The `index`th network of prefix `prefix` inside this one.
    fn nth(self, prefix: u8, index: u32) -> Option<Net> {
        let count = 1u64 << (prefix.checked_sub(self.prefix)?);
        if u64::from(index) >= count {
            return None;
        }
        let size = 1u64 << (32 - prefix);
        Some(Net {
            addr: self.addr + (u64::from(index) * size) as u32,
            prefix,
        })
    }

    /// How many networks of prefix `prefix` it holds.
    fn count(self, prefix: u8) -> u64 {
        prefix.checked_sub(self.prefix).map_or(0, |d| 1u64 << d)
    }
}

impl fmt::Display for Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.addr), self.prefix)
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    }
}

/// `[pool] subnets`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Subnets {
    /// The pool's own range: slot N's networks get subnets of its Nth block.
    Range(Net),
    /// The engine chooses, as compose does on its own.
    Engine,
}

impl Subnets {
    /// `[pool] subnets` as written: a range, or `engine`.
    pub(crate) fn parse(text: &str) -> Result<Subnets, String> {
        if text == ENGINE {
            return Ok(Subnets::Engine);
        }
        let net = Net::parse(text)?;
        if net.prefix > SLOT_PREFIX {
            return Err(format!(
                "`{net}` is smaller than one slot's block (a /{SLOT_PREFIX}): use a /{SLOT_PREFIX} or larger, such as `{DEFAULT_RANGE}`"
            ));
        }
        Ok(Subnets::Range(net))
    }

    /// Whether the range holds a block for every slot up to `max_slot`.
    pub(crate) fn check_slots(self, max_slot: u32) -> Result<(), String> {
        let Subnets::Range(net) = self else {
            return Ok(());
        };
        let held = net.count(SLOT_PREFIX);
        if u64::from(max_slot) > held {
            let needed = 32
                - (u64::from(max_slot).next_power_of_two().trailing_zeros() as u8)
                - (32 - SLOT_PREFIX);
            return Err(format!(
                "`{net}` holds {held} slot block(s) of a /{SLOT_PREFIX}, but the pool has slot {max_slot}: use a /{needed} or larger"
            ));
        }
        Ok(())
    }

    /// The block of `slot` (slot 1 has the first).
    pub(crate) fn block(self, slot: u32) -> Option<Net> {
        match self {
            Subnets::Range(net) => net.nth(SLOT_PREFIX, slot.checked_sub(1)?),
            Subnets::Engine => None,
        }
    }

    /// The blocks of `slots`, for the overlap checks.
    pub(crate) fn blocks(self, slots: impl IntoIterator<Item = u32>) -> Vec<Net> {
        slots.into_iter().filter_map(|s| self.block(s)).collect()
    }
}

impl fmt::Display for Subnets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subnets::Range(net) => net.fmt(f),
            Subnets::Engine => f.write_str(ENGINE),
        }
    }
}

/// Gives each network of slot `slot` a subnet of its block. A network that
/// `earlier` (the slot's networks file as it is) gave a subnet of this block
/// keeps it, so that a network added or removed moves no other; the rest
/// take the first free ones, by key.
pub(crate) fn assign(
    block: Net,
    slot: u32,
    keys: &[String],
    earlier: &BTreeMap<String, Net>,
) -> Result<Vec<(String, Net)>, String> {
    let mut keys = keys.to_vec();
    keys.sort();
    keys.dedup();
    if keys.len() > NETWORKS_PER_SLOT {
        return Err(format!(
            "slot {slot} has {} networks ({}), but its block `{block}` of `[pool] subnets` holds {NETWORKS_PER_SLOT} (a /{NETWORK_PREFIX} each)",
            keys.len(),
            keys.join(", ")
        ));
    }
    let subnets: Vec<Net> = (0..NETWORKS_PER_SLOT as u32)
        .filter_map(|i| block.nth(NETWORK_PREFIX, i))
        .collect();
    let mut given: BTreeMap<String, Net> = BTreeMap::new();
    for key in &keys {
        if let Some(net) = earlier.get(key)
            && subnets.contains(net)
            && !given.values().any(|g| g == net)
        {
            given.insert(key.clone(), *net);
        }
    }
    for key in &keys {
        if given.contains_key(key) {
            continue;
        }
        let free = subnets.iter().find(|n| !given.values().any(|g| g == *n));
        if let Some(net) = free {
            given.insert(key.clone(), *net);
        }
    }
    Ok(given.into_iter().collect())
}

/// The subnet each network has in a networks file as `networks_file` writes
/// it; nothing for what it cannot read.
pub(crate) fn given_in(text: &str) -> BTreeMap<String, Net> {
    let Ok(value) = crate::model::yaml_to_json(text) else {
        return BTreeMap::new();
    };
    value["networks"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(key, def)| {
            let subnet = def["ipam"]["config"][0]["subnet"].as_str()?;
            Some((key.clone(), Net::parse(subnet).ok()?))
        })
        .collect()
}

/// The slot's networks file, merged after the slot's file: each network's
/// definition as `definitions` has it (compose 1.29 replaces a top-level
/// network an extra file names, where v2 merges), with its subnet. Written as
/// JSON, which is YAML to both composes.
pub(crate) fn networks_file(
    header: &str,
    subnets: &[(String, Net)],
    definitions: &serde_json::Map<String, serde_json::Value>,
    registry_id: &str,
) -> String {
    use serde_json::Value;
    let mut text = header.to_owned();
    text.push_str("networks:\n");
    for (key, net) in subnets {
        let mut def = match definitions.get(key) {
            Some(Value::Object(map)) => map.clone(),
            _ => serde_json::Map::new(),
        };
        let v6 =
            (def.get("enable_ipv6") == Some(&Value::Bool(true))).then(|| ula(registry_id, *net));
        def.insert("ipam".to_owned(), with_subnet(def.get("ipam"), *net, v6));
        text.push_str(&format!(
            "  {}: {}\n",
            Value::from(key.as_str()),
            Value::Object(def)
        ));
    }
    text
}

/// A network's `ipam` with `net` as its IPv4 subnet, and `v6` (given to a
/// network with `enable_ipv6`) in place of its IPv6 subnets, or as its IPv6
/// subnet where it names none (a fixed one would be every slot's, and the
/// engine may have no pool to choose from): its driver and options stay.
/// Where a network has IPv6 subnets but no `v6`, its own stay.
fn with_subnet(
    ipam: Option<&serde_json::Value>,
    net: Net,
    v6: Option<String>,
) -> serde_json::Value {
    use serde_json::{Value, json};
    let mut ipam = match ipam {
        Some(Value::Object(map)) => map.clone(),
        _ => serde_json::Map::new(),
    };
    let own_v6: Vec<Value> = ipam
        .get("config")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|c| c["subnet"].as_str().is_some_and(|s| s.contains(':')))
        .cloned()
        .collect();
    let mut config = vec![json!({"subnet": net.to_string()})];
    match v6 {
        Some(v6) => config.push(json!({"subnet": v6})),
        None => config.extend(own_v6),
    }
    ipam.insert("config".to_owned(), Value::Array(config));
    Value::Object(ipam)
}

/// The IPv6 subnet of the network whose IPv4 subnet is `net`: a unique
/// local /64 (RFC 4193) whose global ID comes from the registry's id and
/// whose subnet ID is `net`'s place in the pool's range, so that each slot
/// and network of a registry has its own, like its IPv4 one.
fn ula(registry_id: &str, net: Net) -> String {
    use sha2::Digest;
    let id = sha2::Sha256::digest(registry_id.as_bytes());
    // The network bits of a /26, the lowest 16 of them: distinct for every
    // /26 of a range up to a /10.
    let place = (net.addr >> (32 - NETWORK_PREFIX)) & 0xffff;
    format!(
        "fd{:02x}:{:02x}{:02x}:{:02x}{:02x}:{place:04x}::/64",
        id[0], id[1], id[2], id[3], id[4]
    )
}

/// A network the engine has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EngineNetwork {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) subnets: Vec<String>,
    /// `org.docker-sandbox.registry`, when it has one.
    pub(crate) registry: Option<String>,
}

/// A route of the host's routing table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Route {
    pub(crate) iface: String,
    pub(crate) net: Net,
}

/// `/proc/net/route`: each line's interface, destination and mask (hex, in
/// the host's byte order, which is little-endian on every Linux docker runs).
pub(crate) fn parse_routes(text: &str) -> Vec<Route> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            // The kernel prints the address's bytes as a little-endian number.
            let hex = |s: &str| {
                u32::from_str_radix(s, 16)
                    .ok()
                    .map(|v| u32::from_be_bytes(v.to_le_bytes()))
            };
            let (iface, dest, mask) = (f.first()?, hex(f.get(1)?)?, hex(f.get(7)?)?);
            Some(Route {
                iface: (*iface).to_owned(),
                net: Net {
                    addr: dest & mask,
                    prefix: mask.leading_ones() as u8,
                },
            })
        })
        .collect()
}

/// What overlaps the pool's blocks in use: another network of the engine (not
/// this registry's own), or a route of the host (not the default route, nor a
/// bridge of this registry's own networks).
pub(crate) fn conflicts(
    blocks: &[Net],
    networks: &[EngineNetwork],
    routes: &[Route],
    registry_id: &str,
) -> Vec<String> {
    let hits = |net: Net| blocks.iter().any(|b| b.overlaps(net));
    let ours: Vec<&EngineNetwork> = networks
        .iter()
        .filter(|n| n.registry.as_deref() == Some(registry_id) && !registry_id.is_empty())
        .collect();
    let mut found = Vec::new();
    for n in networks {
        if ours.iter().any(|o| o.id == n.id) {
            continue;
        }
        for s in &n.subnets {
            if let Ok(net) = Net::parse_lenient(s)
                && hits(net)
            {
                found.push(format!("network `{}` ({s})", n.name));
            }
        }
    }
    let our_bridge = |iface: &str| {
        ours.iter()
            .any(|o| o.id.len() >= 12 && iface == format!("br-{}", &o.id[..12]))
    };
    for r in routes {
        if r.net.prefix == 0 || our_bridge(&r.iface) || !hits(r.net) {
            continue;
        }
        // An engine network's own bridge: its network is named above.
        if networks
            .iter()
            .any(|n| n.id.len() >= 12 && r.iface == format!("br-{}", &n.id[..12]))
        {
            continue;
        }
        found.push(format!("route {} on `{}`", r.net, r.iface));
    }
    found
}

impl Net {
    /// A subnet as the engine reports it; IPv6 ones are not ours to meet.
    fn parse_lenient(text: &str) -> Result<Net, String> {
        let (addr, prefix) = text.split_once('/').ok_or_else(String::new)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| String::new())?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= 32)
            .ok_or_else(String::new)?;
        Ok(Net {
            addr: u32::from(addr) & mask(prefix),
            prefix,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Net {
        Net::parse(s).unwrap()
    }

    #[test]
    fn ranges_parse_and_bad_ones_say_why() {
        assert_eq!(net("10.213.0.0/16").to_string(), "10.213.0.0/16");
        assert_eq!(
            Subnets::parse("engine").unwrap(),
            Subnets::Engine,
            "the opt-out"
        );
        let err = |s: &str| Subnets::parse(s).unwrap_err();
        assert!(
            err("10.213.0.0").contains("not a range like"),
            "{}",
            err("10.213.0.0")
        );
        assert!(err("10.213.0/16").contains("not an IPv4 address"));
        assert!(err("10.213.0.0/33").contains("not a prefix length"));
        assert!(
            err("10.213.1.0/16")
                .contains("host bits set: the range starting there is `10.213.0.0/16`"),
            "{}",
            err("10.213.1.0/16")
        );
        assert!(err("10.213.0.0/24").contains("smaller than one slot's block (a /23)"));
    }

    #[test]
    fn each_slot_gets_a_block_and_each_network_a_subnet_of_it() {
        let s = Subnets::parse(DEFAULT_RANGE).unwrap();
        assert_eq!(s.block(1).unwrap().to_string(), "10.213.0.0/23");
        assert_eq!(s.block(2).unwrap().to_string(), "10.213.2.0/23");
        assert_eq!(s.block(99).unwrap().to_string(), "10.213.196.0/23");
        assert_eq!(s.block(128).unwrap().to_string(), "10.213.254.0/23");
        assert_eq!(s.block(129), None);
        assert_eq!(s.block(0), None);
        assert_eq!(Subnets::Engine.block(1), None);
        let keys = ["front".to_owned(), "back".to_owned(), "default".to_owned()];
        let got: Vec<String> = assign(s.block(2).unwrap(), 2, &keys, &BTreeMap::new())
            .unwrap()
            .into_iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        assert_eq!(
            got,
            [
                "back 10.213.2.0/26",
                "default 10.213.2.64/26",
                "front 10.213.2.128/26"
            ]
        );
        let nine: Vec<String> = (0..9).map(|i| format!("n{i}")).collect();
        let e = assign(s.block(3).unwrap(), 3, &nine, &BTreeMap::new()).unwrap_err();
        assert!(
            e.contains("slot 3 has 9 networks (n0, n1, n2, n3, n4, n5, n6, n7, n8), but its block `10.213.4.0/23` of `[pool] subnets` holds 8 (a /26 each)"),
            "{e}"
        );
    }

    #[test]
    fn a_range_must_hold_every_slot() {
        let s = Subnets::parse("10.213.0.0/20").unwrap();
        assert_eq!(s.check_slots(8), Ok(()));
        let e = s.check_slots(9).unwrap_err();
        assert_eq!(
            e,
            "`10.213.0.0/20` holds 8 slot block(s) of a /23, but the pool has slot 9: use a /19 or larger"
        );
        let e = Subnets::parse("10.0.0.0/23")
            .unwrap()
            .check_slots(99)
            .unwrap_err();
        assert!(e.ends_with("use a /16 or larger"), "{e}");
        assert_eq!(Subnets::Engine.check_slots(99), Ok(()));
    }

    #[test]
    fn a_networks_ipam_keeps_its_driver_and_gets_an_ipv6_subnet_of_its_own() {
        let definitions = serde_json::json!({
            "v6": {
                "enable_ipv6": true,
                "ipam": {
                    "driver": "default",
                    "config": [
                        {"subnet": "172.30.0.0/24", "gateway": "172.30.0.1"},
                        {"subnet": "fd00:1::/64"}
                    ]
                }
            },
            "v4": {"ipam": {"config": [{"subnet": "172.31.0.0/24"}]}}
        });
        let file = |registry: &str, v6: &str, v4: &str| {
            let text = networks_file(
                "# h\n",
                &[("v4".to_owned(), net(v4)), ("v6".to_owned(), net(v6))],
                definitions.as_object().unwrap(),
                registry,
            );
            networks_json(&text)
        };
        let one = file("r1", "10.213.2.0/26", "10.213.2.64/26");
        let v6 = one["v6"]["ipam"]["config"][1]["subnet"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(
            one["v6"],
            serde_json::json!({
                "enable_ipv6": true,
                "ipam": {
                    "driver": "default",
                    "config": [{"subnet": "10.213.2.0/26"}, {"subnet": v6}]
                }
            })
        );
        // A unique local /64, its subnet ID the network's place in the range.
        assert!(v6.starts_with("fd") && v6.ends_with(":5408::/64"), "{v6}");
        assert_eq!(
            one["v4"]["ipam"]["config"],
            serde_json::json!([{"subnet": "10.213.2.64/26"}]),
            "no IPv6 where the network had none"
        );
        // `enable_ipv6` with no IPv6 subnet of its own gets one too.
        let bare = serde_json::json!({"b": {"enable_ipv6": true}});
        let text = networks_file(
            "# h\n",
            &[("b".to_owned(), net("10.213.2.0/26"))],
            bare.as_object().unwrap(),
            "r1",
        );
        assert_eq!(
            networks_json(&text)["b"]["ipam"]["config"][1]["subnet"].as_str(),
            Some(v6.as_str())
        );
        // Another slot's network, another registry's: other subnets.
        let other_slot = file("r1", "10.213.4.0/26", "10.213.4.64/26");
        let other_registry = file("r2", "10.213.2.0/26", "10.213.2.64/26");
        let v6_of = |v: &serde_json::Value| v["v6"]["ipam"]["config"][1]["subnet"].clone();
        assert_ne!(v6_of(&other_slot), v6_of(&one));
        assert_ne!(v6_of(&other_registry), v6_of(&one));
        assert_eq!(
            v6_of(&file("r1", "10.213.2.0/26", "10.213.2.64/26")),
            v6_of(&one)
        );
    }

    /// The networks of a networks file as `networks_file` writes it.
    fn networks_json(text: &str) -> serde_json::Value {
        crate::model::yaml_to_json(text).unwrap()["networks"].clone()
    }

    #[test]
    fn a_network_added_or_removed_moves_no_other() {
        let block = net("10.213.2.0/23");
        let keys = |k: &[&str]| k.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let shown = |a: &[(String, Net)]| {
            a.iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect::<Vec<_>>()
        };
        let first = assign(block, 2, &keys(&["back", "front"]), &BTreeMap::new()).unwrap();
        assert_eq!(
            shown(&first),
            ["back 10.213.2.0/26", "front 10.213.2.64/26"]
        );
        // The networks file as written, read back.
        let text = networks_file("# header\n", &first, &serde_json::Map::new(), "r1");
        let earlier = given_in(&text);
        assert_eq!(earlier.len(), 2, "{text}");
        // `api` sorts first: it takes a free subnet, the others stay.
        let added = assign(block, 2, &keys(&["api", "back", "front"]), &earlier).unwrap();
        assert_eq!(
            shown(&added),
            [
                "api 10.213.2.128/26",
                "back 10.213.2.0/26",
                "front 10.213.2.64/26"
            ]
        );
        // `back` goes: `front` stays, and a new one takes the freed subnet.
        let earlier: BTreeMap<String, Net> = added.into_iter().collect();
        let next = assign(block, 2, &keys(&["api", "cache", "front"]), &earlier).unwrap();
        assert_eq!(
            shown(&next),
            [
                "api 10.213.2.128/26",
                "cache 10.213.2.0/26",
                "front 10.213.2.64/26"
            ]
        );
        // A subnet outside the block (the range changed), or given twice, is
        // given again.
        let odd = BTreeMap::from([
            ("back".to_owned(), net("10.99.0.0/26")),
            ("front".to_owned(), net("10.213.2.64/26")),
            ("mid".to_owned(), net("10.213.2.64/26")),
        ]);
        let again = assign(block, 2, &keys(&["back", "front", "mid"]), &odd).unwrap();
        assert_eq!(
            shown(&again),
            [
                "back 10.213.2.0/26",
                "front 10.213.2.64/26",
                "mid 10.213.2.128/26"
            ]
        );
        assert!(given_in("not: [valid").is_empty());
    }

    #[test]
    fn overlaps_are_found_both_ways() {
        assert!(net("10.213.0.0/16").overlaps(net("10.213.4.0/24")));
        assert!(net("10.213.4.0/24").overlaps(net("10.0.0.0/8")));
        assert!(!net("10.213.0.0/23").overlaps(net("10.213.2.0/23")));
    }

    #[test]
    fn routes_parse_from_proc() {
        let text = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n\
wg0\t0000D50A\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n";
        let routes = parse_routes(text);
        let shown: Vec<String> = routes
            .iter()
            .map(|r| format!("{} {}", r.iface, r.net))
            .collect();
        assert_eq!(
            shown,
            [
                "eth0 0.0.0.0/0",
                "docker0 172.17.0.0/16",
                "wg0 10.213.0.0/16"
            ]
        );
    }

    #[test]
    fn conflicts_leave_out_our_own_networks_their_bridges_and_the_default_route() {
        let blocks = Subnets::parse(DEFAULT_RANGE).unwrap().blocks(1..=3);
        let network = |id: &str, name: &str, subnet: &str, registry: Option<&str>| EngineNetwork {
            id: id.to_owned(),
            name: name.to_owned(),
            subnets: vec![subnet.to_owned()],
            registry: registry.map(str::to_owned),
        };
        let networks = [
            network(
                "aaaaaaaaaaaa11",
                "demo-slot-1_default",
                "10.213.0.0/26",
                Some("reg"),
            ),
            network("bbbbbbbbbbbb22", "vpn", "10.213.2.0/24", None),
            network("cccccccccccc33", "other", "10.213.4.0/26", Some("another")),
            network("dddddddddddd44", "far", "10.214.0.0/24", None),
            network("eeeeeeeeeeee55", "v6", "fd00::/64", None),
        ];
        let route = |iface: &str, n: &str| Route {
            iface: iface.to_owned(),
            net: net(n),
        };
        let routes = [
            route("eth0", "0.0.0.0/0"),
            route("br-aaaaaaaaaaaa", "10.213.0.0/26"),
            route("br-bbbbbbbbbbbb", "10.213.2.0/24"),
            route("wg0", "10.213.5.0/24"),
            route("eth1", "10.213.6.0/24"),
        ];
        assert_eq!(
            conflicts(&blocks, &networks, &routes, "reg"),
            [
                "network `vpn` (10.213.2.0/24)",
                "network `other` (10.213.4.0/26)",
                "route 10.213.5.0/24 on `wg0`",
            ]
        );
    }

    #[test]
    fn the_networks_file_keeps_each_definition_and_gives_it_its_subnet() {
        let s = assign(
            net("10.213.2.0/23"),
            2,
            &["back".into(), "front".into()],
            &BTreeMap::new(),
        )
        .unwrap();
        let defs = serde_json::json!({
            "back": {"labels": {"a": "1"}, "ipam": {"config": [{"subnet": "172.30.0.0/16"}]}},
            "front": null,
        });
        assert_eq!(
            networks_file("# h\n", &s, defs.as_object().unwrap(), "r1"),
            "# h\nnetworks:\n  \"back\": {\"ipam\":{\"config\":[{\"subnet\":\"10.213.2.0/26\"}]},\"labels\":{\"a\":\"1\"}}\n  \"front\": {\"ipam\":{\"config\":[{\"subnet\":\"10.213.2.64/26\"}]}}\n"
        );
    }
}
