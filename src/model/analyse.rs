//! What stands between a project's model and many isolated copies of it on one
//! host: refusals (what no slot file can isolate) and warnings (what the slot
//! file changes, or leaves shared), each naming the service and the thing. The
//! caller prints them.

use std::fmt;

use super::{DerivedPorts, Model, MountType};

/// `[isolation] external`: what becomes of external volumes and networks and
/// of bind mounts from outside the project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum External {
    /// Left as they are: every slot uses the same ones.
    #[default]
    Shared,
    /// Each slot gets its own, empty: a namespaced volume or network.
    PerSlot,
}

/// What a finding is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Subject {
    HostNetwork,
    ContainerNetwork(String),
    PortRange(String),
    StaticAddress { network: String, address: String },
    Subnet { network: String, subnet: String },
    ExternalVolume(String),
    ExternalNetwork(String),
    SharedBind(String),
    AllInterfaces(String),
    FixedHostPort(u16),
    ContainerName(String),
    FixedVolumeName { volume: String, name: String },
    FixedNetworkName { network: String, name: String },
    LoopbackInEnv { variable: String, port: u16 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Finding {
    /// The service it is about; `None` for a top-level volume or network.
    pub(crate) service: Option<String>,
    pub(crate) subject: Subject,
    /// One line for people, naming the service and the thing.
    pub(crate) message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Analysis {
    /// Any one of these and the project cannot be adopted.
    pub(crate) refusals: Vec<Finding>,
    pub(crate) warnings: Vec<Finding>,
}

impl Analysis {
    pub(crate) fn can_isolate(&self) -> bool {
        self.refusals.is_empty()
    }
}

/// Paths every slot must share whatever the setting: the engine's socket, the
/// host's clock and devices.
pub(crate) fn always_shared(source: &str) -> bool {
    [
        "/var/run",
        "/run",
        "/dev",
        "/proc",
        "/sys",
        "/etc/localtime",
        "/etc/timezone",
    ]
    .iter()
    .any(|p| source == *p || source.starts_with(&format!("{p}/")))
}

/// The findings of `model` under `external`; `ports` (when derived) tells
/// which host ports move, for env values that name one.
pub(crate) fn analyse(model: &Model, external: External, ports: Option<&DerivedPorts>) -> Analysis {
    let mut a = Analysis::default();
    for s in model.services.values() {
        let name = s.name.as_str();
        let mut refuse = |subject, message: String| {
            a.refusals.push(Finding {
                service: Some(name.to_owned()),
                subject,
                message,
            });
        };
        match s.network_mode.as_deref() {
            Some("host") => refuse(
                Subject::HostNetwork,
                format!(
                    "service `{name}` uses host networking (`network_mode: host`): its ports are the host's, so two slots cannot both run it"
                ),
            ),
            Some(mode) if mode.starts_with("container:") => refuse(
                Subject::ContainerNetwork(mode["container:".len()..].to_owned()),
                format!(
                    "service `{name}` joins the network of container `{}` (`network_mode: {mode}`), which every slot would share",
                    &mode["container:".len()..]
                ),
            ),
            _ => {}
        }
        for p in &s.ports {
            if let Some((lo, hi)) = p.published.filter(|(a, b)| a != b) {
                refuse(
                    Subject::PortRange(format!("{lo}-{hi}")),
                    format!(
                        "service `{name}` publishes container port {} on the host port range {lo}-{hi}; ranges cannot be given per slot",
                        p.target
                    ),
                );
            }
        }
    }
    for s in model.services.values() {
        warn_service(&mut a.warnings, s, external, ports);
    }
    top_level(&mut a.warnings, model, Reading::Adopted(external));
    a
}

fn warn_service(
    out: &mut Vec<Finding>,
    s: &super::Service,
    external: External,
    ports: Option<&DerivedPorts>,
) {
    let name = s.name.as_str();
    let mut warn = |subject, message: String| {
        out.push(Finding {
            service: Some(name.to_owned()),
            subject,
            message,
        });
    };
    if let Some(c) = &s.container_name {
        warn(
            Subject::ContainerName(c.clone()),
            format!(
                "service `{name}`: `container_name: {c}` is reset so each slot names its own; other services still reach it as `{c}` (a network alias)"
            ),
        );
    }
    for p in &s.ports {
        if p.on_all_interfaces() {
            let host = p
                .host_port()
                .map_or("a host port compose picks".to_owned(), |h| {
                    format!("host port {h}")
                });
            warn(
                Subject::AllInterfaces(format!("{}/{}", p.target, p.protocol)),
                format!(
                    "service `{name}`: port {}/{} is published on all interfaces ({host}); slots bind it to 127.0.0.1 only",
                    p.target, p.protocol
                ),
            );
        }
    }
    for (net, n) in &s.networks {
        for address in [&n.ipv4_address, &n.ipv6_address].into_iter().flatten() {
            warn(
                Subject::StaticAddress {
                    network: net.clone(),
                    address: address.clone(),
                },
                format!(
                    "service `{name}`: its static address {address} on network `{net}` is reset: two slots cannot hold one address; reach it by its name instead"
                ),
            );
        }
    }
    for m in &s.volumes {
        let Some(source) = &m.source else { continue };
        if m.kind == MountType::Bind && m.outside_project {
            let fate = if external == External::PerSlot && !always_shared(source) {
                "each slot gets its own empty volume instead ([isolation] external = \"per-slot\")"
            } else {
                "every slot shares it"
            };
            warn(
                Subject::SharedBind(source.clone()),
                format!(
                    "service `{name}`: the bind mount `{source}` (at `{}`) is outside the project: {fate}",
                    m.target
                ),
            );
        }
    }
    if let Some(ports) = ports {
        for (var, value) in &s.environment {
            let Some(value) = value else { continue };
            for port in loopback_ports(value) {
                if let Some(p) = ports.ports.iter().find(|p| p.base == port) {
                    warn(
                        Subject::LoopbackInEnv {
                            variable: var.clone(),
                            port,
                        },
                        format!(
                            "service `{name}`: `{var}` names localhost port {port}, which moves in each slot (`{}`)",
                            p.env
                        ),
                    );
                }
            }
        }
    }
}

/// What keeps one slot's rendered file (a template pool's, final as it is)
/// from running beside the pool's other slots. `ports` are the slot's own host
/// ports; binds under `own` (the pool's shared folder, the slot's folder) are
/// the pool's to share. Refusals: what no slot can run twice; warnings: what
/// collides or is shared between slots, or is reachable from the network.
pub(crate) fn check_slot(
    model: &Model,
    ports: &std::collections::BTreeSet<u16>,
    own: &[&std::path::Path],
) -> Analysis {
    let mut a = analyse(model, External::Shared, None);
    // The warnings of adoption say what the slot file changes; a template's
    // file is what runs, so they are said again as what collides.
    a.warnings.clear();
    for s in model.services.values() {
        slot_service(&mut a.warnings, s, ports, own);
    }
    top_level(&mut a.warnings, model, Reading::Rendered);
    a
}

fn slot_service(
    out: &mut Vec<Finding>,
    s: &super::Service,
    ports: &std::collections::BTreeSet<u16>,
    own: &[&std::path::Path],
) {
    let name = s.name.as_str();
    let mut warn = |subject, message: String| {
        out.push(Finding {
            service: Some(name.to_owned()),
            subject,
            message,
        });
    };
    if let Some(c) = &s.container_name {
        warn(
            Subject::ContainerName(c.clone()),
            format!("service `{name}`: the fixed `container_name: {c}` collides between slots"),
        );
    }
    for p in &s.ports {
        let shown = format!("{}/{}", p.target, p.protocol);
        match p.host_port() {
            Some(h) if !ports.contains(&h) => warn(
                Subject::FixedHostPort(h),
                format!(
                    "service `{name}`: host port {h} (of port {shown}) is not one of the slot's ports: every slot publishes it"
                ),
            ),
            _ => {}
        }
        if p.on_all_interfaces() {
            let host = p
                .host_port()
                .map_or("a host port compose picks".to_owned(), |h| {
                    format!("host port {h}")
                });
            warn(
                Subject::AllInterfaces(shown.clone()),
                format!(
                    "service `{name}`: port {shown} is published on all interfaces ({host}): the network reaches it; bind it to 127.0.0.1"
                ),
            );
        }
    }
    for (net, n) in &s.networks {
        for address in [&n.ipv4_address, &n.ipv6_address].into_iter().flatten() {
            warn(
                Subject::StaticAddress {
                    network: net.clone(),
                    address: address.clone(),
                },
                format!(
                    "service `{name}`: the static address {address} on network `{net}` collides between slots"
                ),
            );
        }
    }
    for m in &s.volumes {
        let Some(source) = &m.source else { continue };
        let pools = own
            .iter()
            .any(|d| std::path::Path::new(source).starts_with(d));
        if m.kind == MountType::Bind && m.outside_project && !pools && !always_shared(source) {
            warn(
                Subject::SharedBind(source.clone()),
                format!(
                    "service `{name}`: the bind mount `{source}` (at `{}`) is outside the worktree: every slot shares it",
                    m.target
                ),
            );
        }
    }
    for (var, value) in &s.environment {
        let Some(value) = value else { continue };
        for port in loopback_ports(value) {
            if ports.contains(&port) {
                warn(
                    Subject::LoopbackInEnv {
                        variable: var.clone(),
                        port,
                    },
                    format!(
                        "service `{name}`: `{var}` names localhost port {port}, a host port of the slot: inside a container localhost is the container itself; use the service's name and its container port"
                    ),
                );
            }
        }
    }
}

/// The ports of `localhost:<port>` and `127.0.0.1:<port>` in `value`.
fn loopback_ports(value: &str) -> Vec<u16> {
    let mut found = Vec::new();
    for host in ["localhost:", "127.0.0.1:"] {
        let mut rest = value;
        while let Some(at) = rest.find(host) {
            rest = &rest[at + host.len()..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            if let Ok(p) = digits.parse() {
                found.push(p);
            }
        }
    }
    found
}

/// Whose file the top-level findings are about, which says what becomes of
/// each: an adopted project's (the slot file changes it) or a rendered
/// template's (it runs as it is).
#[derive(Debug, Clone, Copy)]
enum Reading {
    Adopted(External),
    Rendered,
}

impl Reading {
    /// What becomes of an external volume or network.
    fn external_fate(self) -> &'static str {
        match self {
            Reading::Adopted(External::Shared) => {
                "every slot shares it ([isolation] external = \"shared\")"
            }
            Reading::Adopted(External::PerSlot) => {
                "each slot gets its own, empty ([isolation] external = \"per-slot\")"
            }
            Reading::Rendered => "every slot shares it",
        }
    }

    /// What becomes of a fixed `name` of a volume or network (`kind`).
    fn fixed_name(self, kind: &str, name: &str) -> String {
        match self {
            Reading::Adopted(_) => {
                format!("its fixed name `{name}` is reset so each slot has its own")
            }
            Reading::Rendered => format!("the fixed name `{name}` is one {kind} for every slot"),
        }
    }

    fn subnet(self, subnet: &str) -> String {
        match self {
            Reading::Adopted(_) => format!(
                "its fixed subnet {subnet} is replaced: two slots cannot hold one subnet; each slot gets its own"
            ),
            Reading::Rendered => format!("the fixed subnet {subnet} collides between slots"),
        }
    }
}

/// External volumes and networks, fixed names and fixed subnets.
fn top_level(out: &mut Vec<Finding>, model: &Model, reading: Reading) {
    let mut warn = |subject, message: String| {
        out.push(Finding {
            service: None,
            subject,
            message,
        });
    };
    let fate = reading.external_fate();
    for (key, v) in &model.volumes {
        let shown = v.fixed_name.as_deref().unwrap_or(key);
        if v.external {
            warn(
                Subject::ExternalVolume(shown.to_owned()),
                format!("volume `{key}` is external (`{shown}`): {fate}"),
            );
        } else if let Some(name) = &v.fixed_name {
            warn(
                Subject::FixedVolumeName {
                    volume: key.clone(),
                    name: name.clone(),
                },
                format!("volume `{key}`: {}", reading.fixed_name("volume", name)),
            );
        }
    }
    for (key, n) in &model.networks {
        let shown = n.fixed_name.as_deref().unwrap_or(key);
        if n.external {
            warn(
                Subject::ExternalNetwork(shown.to_owned()),
                format!("network `{key}` is external (`{shown}`): {fate}"),
            );
            // Compose makes no external network: its `ipam` is never used.
            continue;
        }
        if let Some(name) = &n.fixed_name {
            warn(
                Subject::FixedNetworkName {
                    network: key.clone(),
                    name: name.clone(),
                },
                format!("network `{key}`: {}", reading.fixed_name("network", name)),
            );
        }
        for subnet in &n.subnets {
            warn(
                Subject::Subnet {
                    network: key.clone(),
                    subnet: subnet.clone(),
                },
                format!("network `{key}`: {}", reading.subnet(subnet)),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Dialect, derive_ports, normalise};
    use serde_json::json;

    fn model(v: serde_json::Value) -> Model {
        normalise::model("p", std::path::Path::new("/w"), Dialect::Json, v).unwrap()
    }

    #[test]
    fn host_and_container_networking_are_refused() {
        let m = model(json!({"services": {
            "plex": {"network_mode": "host"},
            "side": {"network_mode": "container:other"},
            "web": {"network_mode": "service:plex"},
            "r": {"ports": ["8000-8010:80"]}
        }}));
        let a = analyse(&m, External::Shared, None);
        let msgs: Vec<String> = a.refusals.iter().map(|f| f.message.clone()).collect();
        assert_eq!(a.refusals.len(), 3, "{msgs:#?}");
        assert!(!a.can_isolate());
        let plex = a
            .refusals
            .iter()
            .find(|f| f.subject == Subject::HostNetwork)
            .unwrap();
        assert_eq!(plex.service.as_deref(), Some("plex"));
        assert!(
            plex.message.contains("`plex` uses host networking"),
            "{plex}"
        );
        assert!(msgs.iter().any(|m| m.contains("container `other`")));
        assert!(msgs.iter().any(|m| m.contains("range 8000-8010")));
    }

    #[test]
    fn what_the_slot_file_changes_is_a_warning() {
        let m = model(json!({
            "services": {
                "dns": {
                    "container_name": "pihole",
                    "ports": ["53:53/udp", "127.0.0.1:8080:80"],
                    "networks": {"dns-net": {"ipv4_address": "172.20.0.2"}},
                    "volumes": [
                        {"type": "bind", "source": "/etc/pihole", "target": "/etc/pihole"},
                        {"type": "bind", "source": "/var/run/docker.sock", "target": "/s"},
                        {"type": "bind", "source": "/w/conf", "target": "/c"}
                    ],
                    "environment": {"URL": "http://localhost:8080/x", "OTHER": "127.0.0.1:9"}
                }
            },
            "volumes": {"ext": {"name": "shared", "external": true}, "own": {"name": "fixed"}},
            "networks": {"dns-net": {"name": "p_dns-net", "ipam": {"config": [{"subnet": "172.20.0.0/24"}]}}}
        }));
        let ports = derive_ports(&m, "P", 4).unwrap();
        let a = analyse(&m, External::PerSlot, Some(&ports));
        assert!(a.can_isolate());
        let subjects: Vec<&Subject> = a.warnings.iter().map(|f| &f.subject).collect();
        assert_eq!(
            subjects,
            [
                &Subject::ContainerName("pihole".into()),
                &Subject::AllInterfaces("53/udp".into()),
                &Subject::StaticAddress {
                    network: "dns-net".into(),
                    address: "172.20.0.2".into()
                },
                &Subject::SharedBind("/etc/pihole".into()),
                &Subject::SharedBind("/var/run/docker.sock".into()),
                &Subject::LoopbackInEnv {
                    variable: "URL".into(),
                    port: 8080
                },
                &Subject::ExternalVolume("shared".into()),
                &Subject::FixedVolumeName {
                    volume: "own".into(),
                    name: "fixed".into()
                },
                &Subject::Subnet {
                    network: "dns-net".into(),
                    subnet: "172.20.0.0/24".into()
                },
            ]
        );
        let msg = |i: usize| a.warnings[i].message.clone();
        assert!(
            msg(2).contains("172.20.0.2") && msg(2).contains("`dns`"),
            "{}",
            msg(2)
        );
        assert!(msg(3).contains("its own empty volume"), "{}", msg(3));
        assert!(msg(4).contains("every slot shares it"), "{}", msg(4));
        assert!(msg(5).contains("P_DNS_80_PORT"), "{}", msg(5));
        let shared = analyse(&m, External::Shared, None);
        assert!(shared.warnings[3].message.contains("every slot shares it"));
        assert!(
            shared
                .warnings
                .iter()
                .any(|w| w.message.contains("external = \"shared\""))
        );
    }
}
