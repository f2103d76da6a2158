//! Port formulas (`base + stride * slot`, plus the index for workers), the check
//! that no two ports of a pool are equal, and probing whether a port is free.

use std::collections::HashMap;
use std::fmt;

use crate::pool::Pool;

/// `port = base + stride * slot`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PortRule {
    pub(crate) base: u32,
    pub(crate) stride: u32,
}

impl PortRule {
    /// The port of `slot` (plus `offset`, a worker's index), if it is a valid port.
    pub(crate) fn port(self, slot: u32, offset: u32) -> Option<u16> {
        let p = self.base + offset + self.stride * slot;
        u16::try_from(p).ok().filter(|p| *p > 0)
    }
}

/// One worker of a slot: `backtest-worker-2` and its port.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Worker {
    pub(crate) kind: String,
    /// Position among all the slot's workers, from 0: decides the port.
    pub(crate) index: u32,
    /// Position among workers of its kind, from 1: names the service.
    pub(crate) number: u32,
    pub(crate) port: u16,
    pub(crate) service: String,
    /// The env variable holding its port: `KTRDR_WORKER_PORT_1`.
    pub(crate) env: String,
}

/// Every host port of one slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SlotPorts {
    pub(crate) named: Vec<(String, u16)>,
    pub(crate) workers: Vec<Worker>,
}

impl SlotPorts {
    #[cfg(test)]
    pub(crate) fn get(&self, name: &str) -> Option<u16> {
        self.named.iter().find(|(n, _)| n == name).map(|(_, p)| *p)
    }

    /// Every port with an owner name (`api`, `worker_1`), in env-file order.
    pub(crate) fn all(&self) -> impl Iterator<Item = (String, u16)> + '_ {
        self.named.iter().cloned().chain(
            self.workers
                .iter()
                .map(|w| (format!("worker_{}", w.index + 1), w.port)),
        )
    }
}

/// A port that is not a valid port number, or equal to another.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PortError {
    OutOfRange {
        slot: u32,
        name: String,
    },
    Collision {
        port: u16,
        first: (u32, String),
        second: (u32, String),
    },
}

impl fmt::Display for PortError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortError::OutOfRange { slot, name } => {
                write!(
                    f,
                    "slot {slot} `{name}`: its port is above 65535; lower the base or the stride"
                )
            }
            PortError::Collision {
                port,
                first,
                second,
            } => write!(
                f,
                "port {port} is given twice: to slot {} `{}` and to slot {} `{}`; \
                 give these ports bases or strides that keep them apart",
                first.0, first.1, second.0, second.1
            ),
        }
    }
}

impl std::error::Error for PortError {}

/// The host ports of `slot` under `pool`'s rules.
pub(crate) fn slot_ports(pool: &Pool, slot: u32) -> Result<SlotPorts, PortError> {
    let out_of_range = |name: &str| PortError::OutOfRange {
        slot,
        name: name.to_owned(),
    };
    let mut named = Vec::with_capacity(pool.ports.len());
    for (name, rule) in &pool.ports {
        named.push((
            name.clone(),
            rule.port(slot, 0).ok_or_else(|| out_of_range(name))?,
        ));
    }
    let prefix = pool.prefix();
    let mut workers = Vec::new();
    for (kind, &count) in pool.workers(slot) {
        for number in 1..=count {
            let index = workers.len() as u32;
            let port = pool
                .worker_ports
                .port(slot, index)
                .ok_or_else(|| out_of_range(&format!("worker_{}", index + 1)))?;
            workers.push(Worker {
                kind: kind.clone(),
                index,
                number,
                port,
                service: format!("{kind}-worker-{number}"),
                env: format!("{prefix}_WORKER_PORT_{}", index + 1),
            });
        }
    }
    Ok(SlotPorts { named, workers })
}

/// Refuses a pool in which any two ports, of any slots and services, are equal.
/// Every command loads the pool, so the usual case (all distinct) only marks
/// port numbers; owners are named only to report a collision.
pub(crate) fn check_pool(pool: &Pool) -> Result<(), PortError> {
    let mut seen = vec![0u64; PROTOCOLS.len() << 10];
    let mut mark = |(port, protocol): (Option<u16>, usize)| match port {
        Some(p) => {
            let (word, bit) = ((protocol << 10) + usize::from(p >> 6), 1u64 << (p & 63));
            let taken = seen[word] & bit != 0;
            seen[word] |= bit;
            !taken
        }
        None => false,
    };
    let distinct = pool
        .slots
        .keys()
        .all(|&slot| port_numbers(pool, slot).all(&mut mark));
    if distinct {
        Ok(())
    } else {
        name_collision(pool)
    }
}

/// The ports of `slot` as `slot_ports` lists them, numbers only (`None` for
/// one out of range), without building names.
fn port_numbers(pool: &Pool, slot: u32) -> impl Iterator<Item = (Option<u16>, usize)> + '_ {
    let workers: u32 = pool.workers(slot).values().sum();
    pool.ports
        .iter()
        .map(move |(name, rule)| (rule.port(slot, 0), protocol(name)))
        .chain((0..workers).map(move |i| (pool.worker_ports.port(slot, i), 0)))
}

/// The protocols whose port numbers are apart: TCP, then what a port's name
/// ends with (`dns_53_udp`, as an adopted pool names them).
const PROTOCOLS: [&str; 3] = ["tcp", "udp", "sctp"];

/// The index in `PROTOCOLS` of the port named `name`: TCP unless it ends
/// with `_udp` or `_sctp`.
fn protocol(name: &str) -> usize {
    PROTOCOLS
        .iter()
        .position(|p| *p != "tcp" && name.ends_with(&format!("_{p}")))
        .unwrap_or(0)
}

/// The first port out of range or given twice, with both owners named.
fn name_collision(pool: &Pool) -> Result<(), PortError> {
    let mut owners: HashMap<(u16, usize), (u32, String)> = HashMap::new();
    for &slot in pool.slots.keys() {
        for (name, port) in slot_ports(pool, slot)?.all() {
            let key = (port, protocol(&name));
            if let Some(first) = owners.get(&key) {
                return Err(PortError::Collision {
                    port,
                    first: first.clone(),
                    second: (slot, name),
                });
            }
            owners.insert(key, (slot, name));
        }
    }
    Ok(())
}

/// Whether nothing listens on `port` of the loopback interface: a bind succeeds.
pub(crate) fn is_free(port: u16) -> bool {
    probe(port).is_ok()
}

/// Whether nothing holds the port named `name` in its own protocol: a UDP
/// port (`dns_udp`) is checked with a UDP bind, as no TCP check sees it;
/// SCTP is not checked here.
pub(crate) fn is_free_as(name: &str, port: u16) -> bool {
    match PROTOCOLS[protocol(name)] {
        "udp" => std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok(),
        "sctp" => true,
        _ => is_free(port),
    }
}

/// A socket bound to `port` of the loopback interface and never listening.
/// With `SO_REUSEADDR` the kernel refuses the bind only while a socket
/// listens there (or one without the option holds it), so two checks of one
/// port at the same moment both see it free, and a server that starts while
/// a check holds the port still gets it.
fn probe(port: u16) -> std::io::Result<rustix::fd::OwnedFd> {
    use rustix::net::{AddressFamily, SocketType};
    let fd = rustix::net::socket(AddressFamily::INET, SocketType::STREAM, None)?;
    rustix::net::sockopt::set_socket_reuseaddr(&fd, true)?;
    let addr = std::net::SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, port);
    rustix::net::bind(&fd, &addr)?;
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::{Environment, from_toml};

    fn pool(text: &str) -> Pool {
        let env = Environment {
            home: Some("/h".into()),
            cwd: "/".into(),
            ..Environment::default()
        };
        from_toml(text, None, &env).unwrap()
    }

    #[test]
    fn default_ports_match_the_seeds() {
        let p = pool("");
        let s1 = slot_ports(&p, 1).unwrap();
        assert_eq!(s1.get("api"), Some(8001));
        assert_eq!(s1.get("db"), Some(5433));
        assert_eq!(s1.get("grafana"), Some(3001));
        assert_eq!(s1.get("jaeger_ui"), Some(16687));
        assert_eq!(s1.get("prometheus"), Some(9091));
        assert_eq!(s1.get("jaeger_otlp_grpc"), Some(4327));
        assert_eq!(s1.get("jaeger_otlp_http"), Some(4328));
        let ports: Vec<u16> = s1.workers.iter().map(|w| w.port).collect();
        assert_eq!(ports, [5010, 5011]);
        let s6 = slot_ports(&p, 6).unwrap();
        assert_eq!(s6.get("api"), Some(8006));
        assert_eq!(s6.get("db"), Some(5438));
        assert_eq!(s6.get("jaeger_otlp_grpc"), Some(4377));
        assert_eq!(s6.get("jaeger_otlp_http"), Some(4378));
        let ports: Vec<u16> = s6.workers.iter().map(|w| w.port).collect();
        assert_eq!(ports, (5060..5068).collect::<Vec<u16>>());
    }

    #[test]
    fn workers_are_named_per_kind_and_numbered_across_kinds() {
        let p = pool("");
        let w = slot_ports(&p, 5).unwrap().workers;
        let names: Vec<_> = w
            .iter()
            .map(|w| (w.service.as_str(), w.env.as_str(), w.port))
            .collect();
        assert_eq!(
            names,
            [
                ("backtest-worker-1", "KTRDR_WORKER_PORT_1", 5050),
                ("backtest-worker-2", "KTRDR_WORKER_PORT_2", 5051),
                ("training-worker-1", "KTRDR_WORKER_PORT_3", 5052),
                ("training-worker-2", "KTRDR_WORKER_PORT_4", 5053),
            ]
        );
    }

    #[test]
    fn the_quick_check_sees_the_ports_slot_ports_lists() {
        for p in [
            pool(""),
            pool("[profiles.light]\nbacktest = 3\n[profiles.heavy]\ntraining = 5\n"),
        ] {
            for &slot in p.slots.keys() {
                let listed: Vec<(Option<u16>, usize)> = slot_ports(&p, slot)
                    .unwrap()
                    .all()
                    .map(|(name, port)| (Some(port), protocol(&name)))
                    .collect();
                let numbers: Vec<(Option<u16>, usize)> = port_numbers(&p, slot).collect();
                assert_eq!(numbers, listed, "slot {slot}");
            }
        }
    }

    #[test]
    fn a_udp_port_may_have_the_number_of_a_tcp_one() {
        let p = pool("[ports]\ndns = [5053, 1]\ndns_udp = [5053, 1]\n");
        assert_eq!(check_pool(&p), Ok(()));
        let env = Environment {
            home: Some("/h".into()),
            cwd: "/".into(),
            ..Environment::default()
        };
        let twice = "[ports]\ndns_udp = [5053, 1]\nntp_udp = [5053, 1]\n";
        let m = format!("{:#}", from_toml(twice, None, &env).unwrap_err());
        assert!(m.contains("port 5054 is given twice"), "{m}");
    }

    #[test]
    fn the_default_pool_has_no_two_equal_ports() {
        assert_eq!(check_pool(&pool("")), Ok(()));
    }

    #[test]
    fn collisions_and_overflow_are_found() {
        let env = Environment {
            home: Some("/h".into()),
            cwd: "/".into(),
            ..Environment::default()
        };
        let m = format!(
            "{:#}",
            from_toml("[ports]\na = [18000, 1]\nb = [18001, 1]", None, &env).unwrap_err()
        );
        assert!(
            m.contains("port 18002") && m.contains("slot 1 `b`") && m.contains("slot 2 `a`"),
            "{m}"
        );
        // A heavy slot with more workers than the stride runs into the next slot.
        let m = format!(
            "{:#}",
            from_toml("[ports]\nworkers = [5000, 2]", None, &env).unwrap_err()
        );
        assert!(m.contains("worker_"), "{m}");
        let m = format!(
            "{:#}",
            from_toml("[ports]\nx = [65530, 1]", None, &env).unwrap_err()
        );
        assert!(m.contains("slot 6 `x`") && m.contains("above 65535"), "{m}");
    }

    #[test]
    fn probing_sees_a_listener() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        assert!(!is_free(port));
        drop(l);
        assert!(is_free(port));
    }

    #[test]
    fn a_udp_port_is_checked_as_udp() {
        let held = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = held.local_addr().unwrap().port();
        assert!(!is_free_as("dns_53_udp", port), "a UDP socket holds it");
        drop(held);
        assert!(is_free_as("dns_53_udp", port));
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        assert!(!is_free_as("web", port));
    }

    #[test]
    fn a_port_another_check_holds_is_still_free() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let other = probe(port).unwrap();
        assert!(is_free(port));
        // The check never listens: nothing answers on the port it holds.
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
        // A server may still start on it while a check holds it.
        let server = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        assert!(!is_free(port));
        drop((other, server));
    }

    #[test]
    fn checks_of_one_port_at_the_same_moment_all_see_it_free() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let checks = |_| std::thread::spawn(move || (0..2000).all(|_| is_free(port)));
        let threads: Vec<_> = (0..4).map(checks).collect();
        for t in threads {
            assert!(t.join().unwrap(), "a check saw port {port} taken");
        }
    }
}
