//! The slot ports of an adopted project: one named port per published host
//! port, its base the file's own host port, and one stride for the pool chosen
//! so that no two ports of slots 1..=N are equal and all stay valid.

use std::collections::HashSet;

use anyhow::Result;

use super::Model;
use crate::error::fail;
use crate::pool::PortRule;

/// A published port of the file, as a slot port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NamedPort {
    /// `web`, `web_8080`, `pihole_53_udp`: `[a-z][a-z0-9_]*`.
    pub(crate) name: String,
    /// `<PREFIX>_<NAME>_PORT`.
    pub(crate) env: String,
    pub(crate) service: String,
    /// Its position in the service's `ports`.
    pub(crate) index: usize,
    pub(crate) target: u16,
    pub(crate) protocol: String,
    /// The file's own host port.
    pub(crate) base: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DerivedPorts {
    pub(crate) ports: Vec<NamedPort>,
    pub(crate) stride: u32,
}

impl DerivedPorts {
    pub(crate) fn rule(&self, port: &NamedPort) -> PortRule {
        PortRule {
            base: u32::from(port.base),
            stride: self.stride,
        }
    }

    /// Every named port of `slot`, in the model's order.
    pub(crate) fn slot_ports(&self, slot: u32) -> Vec<(&NamedPort, u16)> {
        self.ports
            .iter()
            .filter_map(|p| Some((p, self.rule(p).port(slot, 0)?)))
            .collect()
    }

    /// The slot port of a service's `index`th port, if it is a named one.
    pub(crate) fn of(&self, service: &str, index: usize) -> Option<&NamedPort> {
        self.ports
            .iter()
            .find(|p| p.service == service && p.index == index)
    }
}

/// The named ports of `model` for a pool of slots 1..=`slots`, env names under
/// `prefix` (`DEMO`). Ports compose picks itself (no fixed host port) and host
/// port ranges are not named: the analysis says what becomes of them.
pub(crate) fn derive_ports(model: &Model, prefix: &str, slots: u32) -> Result<DerivedPorts> {
    let mut ports: Vec<NamedPort> = Vec::new();
    for service in model.services.values() {
        let fixed: Vec<(usize, &super::Port, u16)> = service
            .ports
            .iter()
            .enumerate()
            .filter_map(|(i, p)| Some((i, p, p.host_port()?)))
            .collect();
        for &(index, p, base) in &fixed {
            let udp = if p.protocol == "tcp" {
                String::new()
            } else {
                format!("_{}", p.protocol)
            };
            let mut name = if fixed.len() == 1 {
                format!("{}{udp}", port_name(&service.name))
            } else {
                format!("{}_{}{udp}", port_name(&service.name), p.target)
            };
            if ports.iter().any(|q| q.name == name) {
                name = format!("{name}_{base}");
            }
            ports.push(NamedPort {
                env: format!("{prefix}_{}_PORT", name.to_ascii_uppercase()),
                name,
                service: service.name.clone(),
                index,
                target: p.target,
                protocol: p.protocol.clone(),
                base,
            });
        }
    }
    let stride = stride(&ports, slots).ok_or_else(|| {
        fail(
            format!(
                "no stride keeps the {} published ports of slots 1 to {slots} apart and below 65536",
                ports.len()
            ),
            "give the pool fewer slots, or lower the file's host ports",
        )
    })?;
    Ok(DerivedPorts { ports, stride })
}

/// `[a-z][a-z0-9_]*`: other characters become `_`.
fn port_name(service: &str) -> String {
    let mapped: String = service
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if mapped.starts_with(|c: char| c.is_ascii_lowercase()) {
        mapped
    } else {
        format!("p{mapped}")
    }
}

/// The smallest stride under which every port of every slot 1..=`slots` is
/// valid and none equals another of its protocol (53/tcp and 53/udp are two
/// ports that may share a number).
fn stride(ports: &[NamedPort], slots: u32) -> Option<u32> {
    let fits = |stride: u32| {
        let mut seen = HashSet::new();
        ports.iter().all(|p| {
            let rule = PortRule {
                base: u32::from(p.base),
                stride,
            };
            (1..=slots).all(|slot| {
                rule.port(slot, 0)
                    .is_some_and(|n| seen.insert((n, p.protocol.as_str())))
            })
        })
    };
    (1..=65535).find(|&s| fits(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Dialect, normalise};
    use serde_json::json;

    fn model(services: serde_json::Value) -> Model {
        normalise::model(
            "p",
            std::path::Path::new("/w"),
            Dialect::Json,
            json!({"services": services}),
        )
        .unwrap()
    }

    #[test]
    fn each_published_port_is_named() {
        let m = model(json!({
            "pihole": {"ports": ["53:53/tcp", "53:53/udp", "8080:80"]},
            "web": {"ports": ["127.0.0.1:3000:3000", "9229"]},
            "My.Api": {"ports": ["8000:8000"]}
        }));
        let d = derive_ports(&m, "DEMO", 4).unwrap();
        let names: Vec<(&str, &str, u16)> = d
            .ports
            .iter()
            .map(|p| (p.name.as_str(), p.env.as_str(), p.base))
            .collect();
        assert_eq!(
            names,
            [
                ("my_api", "DEMO_MY_API_PORT", 8000),
                ("pihole_53", "DEMO_PIHOLE_53_PORT", 53),
                ("pihole_53_udp", "DEMO_PIHOLE_53_UDP_PORT", 53),
                ("pihole_80", "DEMO_PIHOLE_80_PORT", 8080),
                ("web", "DEMO_WEB_PORT", 3000),
            ]
        );
        // 53/tcp and 53/udp share numbers; nothing else is near: stride 1.
        assert_eq!(d.stride, 1);
        assert_eq!(d.of("web", 0).map(|p| p.name.as_str()), Some("web"));
        assert_eq!(d.of("web", 1), None, "compose picks that one");
        let slot2: Vec<u16> = d.slot_ports(2).iter().map(|(_, n)| *n).collect();
        assert_eq!(slot2, [8002, 55, 55, 8082, 3002]);
    }

    #[test]
    fn the_stride_keeps_the_pool_apart() {
        // 5000, 5001 and 5003 meet under strides 1 to 3.
        let m = model(json!({"a": {"ports": ["5000:5000", "5001:5001", "5003:5003"]}}));
        let d = derive_ports(&m, "P", 4).unwrap();
        let mut all: Vec<u16> = (1..=4)
            .flat_map(|s| d.slot_ports(s).into_iter().map(|(_, n)| n))
            .collect();
        let count = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), count, "stride {}", d.stride);
        assert_eq!(d.stride, 4);
    }

    #[test]
    fn ports_near_the_top_have_no_stride() {
        let m = model(json!({"a": {"ports": ["65534:80"]}}));
        let err = derive_ports(&m, "P", 4).unwrap_err();
        assert!(err.to_string().contains("no stride"), "{err}");
        assert!(derive_ports(&m, "P", 1).is_ok());
    }
}
