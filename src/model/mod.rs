//! The compose model of a project, read from compose itself (`config` of the
//! project's own files, cached by the content of every file compose read), and
//! what is made from it for a pool that adopts those files unchanged: the named
//! slot ports, the isolation analysis (refusals and warnings), and the per-slot
//! compose file (`slot-N/docker-compose.yml`, an override or a materialised
//! copy). It does not choose slots, store ports in the registry, run stacks or
//! print anything.
//!
//! `read` gives a `Model`; `derive_ports`, `analyse` and `render_slot` take it.

mod analyse;
mod binds;
mod images;
mod normalise;
mod ports;
mod read;
mod render;
mod yaml;

#[cfg(test)]
mod corpus;

use std::collections::BTreeMap;

pub(crate) use analyse::{Analysis, External, Finding, analyse, check_slot};
pub(crate) use binds::{Made, MissingBind, active_profiles, missing_binds, shown as shown_source};
pub(crate) use images::{StackImage, stack_images};
pub(crate) use ports::{DerivedPorts, derive_ports};
pub(crate) use read::{Dialect, Source, cached, of_project, read, read_lazily};
pub(crate) use render::{ENGINE_WORKTREE, SlotInputs, flavour_of, is_override, render_body};
#[cfg(test)]
pub(crate) use render::{Flavour, flavour, render_slot};
pub(crate) use yaml::to_json as yaml_to_json;

/// A project's compose model, normalised from compose's own `config` output.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Model {
    /// The compose project name it was read with (v2 names volumes and
    /// networks `<project>_<key>` in its output).
    pub(crate) project: String,
    pub(crate) services: BTreeMap<String, Service>,
    pub(crate) volumes: BTreeMap<String, Volume>,
    pub(crate) networks: BTreeMap<String, Network>,
    /// Which compose printed `raw`, and so its shape.
    pub(crate) dialect: Dialect,
    /// compose's own output as JSON (the legacy YAML converted), for `config`.
    pub(crate) raw: serde_json::Value,
    /// The version of the compose that printed it, which runs the slot file
    /// made from it (`flavour_of`).
    pub(crate) compose_version: String,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Service {
    pub(crate) name: String,
    pub(crate) ports: Vec<Port>,
    pub(crate) container_name: Option<String>,
    pub(crate) network_mode: Option<String>,
    /// The networks it joins, by key; empty when compose lists none (it then
    /// joins `default`, unless `network_mode` says otherwise).
    pub(crate) networks: BTreeMap<String, ServiceNetwork>,
    pub(crate) volumes: Vec<Mount>,
    /// A healthcheck that is not disabled.
    pub(crate) healthcheck: bool,
    pub(crate) profiles: Vec<String>,
    pub(crate) environment: BTreeMap<String, Option<String>>,
}

impl Service {
    /// Whether compose starts it with the `active` profiles (`*`: all of
    /// them): a service without profiles always starts.
    pub(crate) fn starts_with(&self, active: &[String]) -> bool {
        self.profiles.is_empty()
            || self
                .profiles
                .iter()
                .any(|p| active.iter().any(|a| a == p || a == "*"))
    }
}

/// A port in long form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Port {
    pub(crate) target: u16,
    /// The host port range, `None` when compose picks a host port.
    pub(crate) published: Option<(u16, u16)>,
    /// As written; `None` for all interfaces.
    pub(crate) host_ip: Option<String>,
    pub(crate) protocol: String,
}

impl Port {
    /// The one fixed host port, when there is exactly one.
    pub(crate) fn host_port(&self) -> Option<u16> {
        self.published.filter(|(a, b)| a == b).map(|(a, _)| a)
    }

    /// Published on every interface (no address, `0.0.0.0` or `::`).
    pub(crate) fn on_all_interfaces(&self) -> bool {
        matches!(
            self.host_ip.as_deref(),
            None | Some("" | "0.0.0.0" | "::" | "[::]")
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct ServiceNetwork {
    pub(crate) ipv4_address: Option<String>,
    pub(crate) ipv6_address: Option<String>,
    pub(crate) aliases: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MountType {
    Bind,
    Volume,
    Tmpfs,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mount {
    pub(crate) kind: MountType,
    /// A path for a bind, a top-level volume's key for a volume, `None` for an
    /// anonymous volume or a tmpfs.
    pub(crate) source: Option<String>,
    pub(crate) target: String,
    /// A bind whose source lies outside the project folder: every slot sees
    /// the same files (a bind inside the project follows the worktree).
    pub(crate) outside_project: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Volume {
    /// A name the file fixes (`name:`), which compose does not namespace.
    pub(crate) fixed_name: Option<String>,
    pub(crate) external: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Network {
    pub(crate) fixed_name: Option<String>,
    pub(crate) external: bool,
    /// `ipam.config[].subnet`.
    pub(crate) subnets: Vec<String>,
    /// Whether it has any `ipam.config` entry (subnets, ranges, gateways).
    pub(crate) ipam_config: bool,
}

impl Model {
    /// The networks a service joins, `default` when compose lists none;
    /// nothing for a service with its own `network_mode`.
    pub(crate) fn joined_networks(&self, service: &Service) -> Vec<String> {
        if service.network_mode.is_some() {
            return Vec::new();
        }
        if service.networks.is_empty() {
            return vec!["default".to_owned()];
        }
        service.networks.keys().cloned().collect()
    }
}

impl Model {
    /// The networks a slot makes itself, by key: every network but those
    /// left external (`[isolation] external = "per-slot"` makes those the
    /// slot's own too), and `default` when a service joins it.
    pub(crate) fn own_networks(&self, external: External) -> Vec<String> {
        let mut keys: std::collections::BTreeSet<String> = self
            .networks
            .iter()
            .filter(|(_, n)| !n.external || external == External::PerSlot)
            .map(|(k, _)| k.clone())
            .collect();
        if self
            .services
            .values()
            .any(|s| self.joined_networks(s).iter().any(|n| n == "default"))
        {
            keys.insert("default".to_owned());
        }
        keys.into_iter().collect()
    }
}

/// The networks a rendered compose file (as JSON) makes itself, by key: those it
/// declares but not as `external`, and `default` when a service joins no
/// network by name and has no `network_mode`.
pub(crate) fn own_networks_of(v: &serde_json::Value) -> Vec<String> {
    let mut keys = std::collections::BTreeSet::new();
    if let Some(networks) = v["networks"].as_object() {
        for (key, n) in networks {
            // `external: true`, or the legacy `external: {name: ...}`.
            let external =
                n["external"] == serde_json::Value::Bool(true) || n["external"].is_object();
            if !external {
                keys.insert(key.clone());
            }
        }
    }
    if let Some(services) = v["services"].as_object() {
        for s in services.values() {
            let named = match &s["networks"] {
                serde_json::Value::Array(a) => !a.is_empty(),
                serde_json::Value::Object(o) => !o.is_empty(),
                _ => false,
            };
            if !named && s["network_mode"].is_null() {
                keys.insert("default".to_owned());
            }
        }
    }
    keys.into_iter().collect()
}
