//! compose's `config` output (v2's JSON, or legacy 1.29's YAML as JSON) into a
//! `Model`. Both shapes are taken: short and long port and volume syntax, lists
//! and maps of networks and environment.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Result, bail};
use serde_json::Value;

use super::{Dialect, Model, Mount, MountType, Network, Port, Service, ServiceNetwork, Volume};

pub(super) fn model(
    project: &str,
    directory: &Path,
    dialect: Dialect,
    raw: Value,
) -> Result<Model> {
    let Some(top) = raw.as_object() else {
        bail!("compose's `config` output is not a mapping");
    };
    let mut services = BTreeMap::new();
    if let Some(map) = top.get("services").and_then(Value::as_object) {
        for (name, v) in map {
            services.insert(name.clone(), service(name, v, directory)?);
        }
    }
    let volumes = entries(top.get("volumes"))
        .map(|(key, v)| {
            let external = external(v);
            let volume = Volume {
                fixed_name: fixed_name(project, key, v, external),
                external,
            };
            (key.clone(), volume)
        })
        .collect();
    let networks = entries(top.get("networks"))
        .map(|(key, v)| {
            let external = external(v);
            let config = v
                .pointer("/ipam/config")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let network = Network {
                fixed_name: fixed_name(project, key, v, external),
                external,
                subnets: config
                    .iter()
                    .filter_map(|c| c.get("subnet").and_then(Value::as_str))
                    .map(str::to_owned)
                    .collect(),
                ipam_config: !config.is_empty(),
            };
            (key.clone(), network)
        })
        .collect();
    Ok(Model {
        project: project.to_owned(),
        services,
        volumes,
        networks,
        dialect,
        raw,
        compose_version: String::new(),
    })
}

fn entries(v: Option<&Value>) -> impl Iterator<Item = (&String, &Value)> {
    v.and_then(Value::as_object).into_iter().flatten()
}

/// `external: true`, or the legacy `external: {name: x}`.
fn external(v: &Value) -> bool {
    match v.get("external") {
        Some(Value::Bool(b)) => *b,
        Some(Value::Object(_)) => true,
        _ => false,
    }
}

/// The `name:` of a volume or network, unless it is the one compose gives by
/// itself (`<project>_<key>`, which v2 writes out) or an external's own key.
fn fixed_name(project: &str, key: &str, v: &Value, external: bool) -> Option<String> {
    let name = v
        .get("name")
        .or_else(|| v.pointer("/external/name"))
        .and_then(Value::as_str)?;
    let derived = name == format!("{project}_{key}") || (external && name == key);
    (!derived || external).then(|| name.to_owned())
}

fn service(name: &str, v: &Value, directory: &Path) -> Result<Service> {
    let text = |key: &str| v.get(key).and_then(Value::as_str).map(str::to_owned);
    let mut ports = Vec::new();
    for p in v
        .get("ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        ports.extend(port(p).map_err(|e| anyhow::anyhow!("service `{name}`: {e}"))?);
    }
    let networks = match v.get("networks") {
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, n)| (k.clone(), service_network(n)))
            .collect(),
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .map(|k| (k.to_owned(), ServiceNetwork::default()))
            .collect(),
        _ => BTreeMap::new(),
    };
    let volumes = v
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|m| mount(m, directory))
        .collect();
    let healthcheck = v.get("healthcheck").is_some_and(|h| {
        let disabled = h.get("disable").and_then(Value::as_bool) == Some(true)
            || h.pointer("/test/0").and_then(Value::as_str) == Some("NONE");
        !disabled
    });
    Ok(Service {
        name: name.to_owned(),
        ports,
        container_name: text("container_name"),
        network_mode: text("network_mode"),
        networks,
        volumes,
        healthcheck,
        profiles: strings(v.get("profiles")),
        environment: environment(v.get("environment")),
    })
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(scalar)
        .collect()
}

/// A scalar as text: compose prints some numbers unquoted.
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn environment(v: Option<&Value>) -> BTreeMap<String, Option<String>> {
    match v {
        Some(Value::Object(map)) => map.iter().map(|(k, v)| (k.clone(), scalar(v))).collect(),
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .map(|e| match e.split_once('=') {
                Some((k, v)) => (k.to_owned(), Some(v.to_owned())),
                None => (e.to_owned(), None),
            })
            .collect(),
        _ => BTreeMap::new(),
    }
}

fn service_network(v: &Value) -> ServiceNetwork {
    let text = |key: &str| v.get(key).and_then(Value::as_str).map(str::to_owned);
    ServiceNetwork {
        ipv4_address: text("ipv4_address"),
        ipv6_address: text("ipv6_address"),
        aliases: strings(v.get("aliases")),
    }
}

/// One port entry, long form or short (`[ip:][published:]target[/proto]`,
/// with ranges); a short range of targets gives one port per target.
pub(super) fn port(v: &Value) -> Result<Vec<Port>> {
    match v {
        Value::Object(_) => {
            let target = match v.get("target") {
                Some(Value::Number(n)) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
                Some(Value::String(s)) => s.parse().ok(),
                _ => None,
            };
            let Some(target) = target else {
                bail!("a port without a valid `target`: {v}");
            };
            let published = match v.get("published").and_then(scalar).as_deref() {
                None | Some("") => None,
                Some(p) => Some(range(p)?),
            };
            let host_ip = v
                .get("host_ip")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned);
            let protocol = v
                .get("protocol")
                .and_then(Value::as_str)
                .unwrap_or("tcp")
                .to_owned();
            Ok(vec![Port {
                target,
                published,
                host_ip,
                protocol,
            }])
        }
        Value::Number(_) | Value::String(_) => short_port(&scalar(v).unwrap_or_default()),
        other => bail!("a port entry that is neither text nor a mapping: {other}"),
    }
}

fn short_port(text: &str) -> Result<Vec<Port>> {
    let (spec, protocol) = text.split_once('/').unwrap_or((text, "tcp"));
    // An IPv6 address is bracketed: `[::1]:8080:80`.
    let (host_ip, rest) = match spec.strip_prefix('[') {
        Some(r) => match r.split_once("]:") {
            Some((ip, rest)) => (Some(ip.to_owned()), rest),
            None => bail!("a port `{text}` with an unclosed `[`"),
        },
        None => (None, spec),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let (host_ip, published, target) = match parts.as_slice() {
        [t] => (host_ip, None, *t),
        [p, t] => (host_ip, Some(*p), *t),
        [ip, p, t] if host_ip.is_none() => (Some((*ip).to_owned()), Some(*p), *t),
        _ => bail!("a port `{text}` that is not `[ip:][host:]container[/protocol]`"),
    };
    let targets = range(target)?;
    let published = published.filter(|p| !p.is_empty()).map(range).transpose()?;
    let host_ip = host_ip.filter(|ip| !ip.is_empty());
    let count = targets.1 - targets.0;
    let mut out = Vec::new();
    for i in 0..=count {
        // Equal ranges pair up one to one; a single target keeps the host range.
        let published = match published {
            Some((a, b)) if count > 0 && b - a == count => Some((a + i, a + i)),
            Some(_) if count > 0 => bail!("a port `{text}` whose ranges differ in length"),
            p => p,
        };
        out.push(Port {
            target: targets.0 + i,
            published,
            host_ip: host_ip.clone(),
            protocol: protocol.to_owned(),
        });
    }
    Ok(out)
}

/// `8080` or `8000-8010`.
fn range(text: &str) -> Result<(u16, u16)> {
    let parse = |s: &str| {
        s.trim()
            .parse::<u16>()
            .map_err(|_| anyhow::anyhow!("`{text}` is not a port or a port range"))
    };
    match text.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (parse(a)?, parse(b)?);
            if b < a {
                bail!("the port range `{text}` ends before it starts");
            }
            Ok((a, b))
        }
        None => parse(text).map(|p| (p, p)),
    }
}

/// One volume entry, long form or short (`[source:]target[:mode]`).
fn mount(v: &Value, directory: &Path) -> Option<Mount> {
    let (kind, source, target) = match v {
        Value::Object(m) => {
            let kind = match m.get("type").and_then(Value::as_str) {
                Some("bind") => MountType::Bind,
                Some("volume") | None => MountType::Volume,
                Some("tmpfs") => MountType::Tmpfs,
                Some(_) => MountType::Other,
            };
            let source = m
                .get("source")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned);
            let target = m.get("target").and_then(Value::as_str)?.to_owned();
            (kind, source, target)
        }
        Value::String(s) => {
            let parts: Vec<&str> = s.split(':').collect();
            match parts.as_slice() {
                [t] => (MountType::Volume, None, (*t).to_owned()),
                [src, t, ..] => {
                    let bind = src.starts_with(['/', '.', '~']);
                    let kind = if bind {
                        MountType::Bind
                    } else {
                        MountType::Volume
                    };
                    (kind, Some((*src).to_owned()), (*t).to_owned())
                }
                [] => return None,
            }
        }
        _ => return None,
    };
    let outside_project = kind == MountType::Bind
        && source
            .as_deref()
            .is_some_and(|s| !Path::new(s).starts_with(directory) && !s.starts_with('.'));
    Some(Mount {
        kind,
        source,
        target,
        outside_project,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ports(v: Value) -> Vec<Port> {
        port(&v).unwrap()
    }

    #[test]
    fn short_ports_become_long() {
        let p = ports(json!("127.0.0.1:9229:9229/tcp"));
        assert_eq!(
            p,
            [Port {
                target: 9229,
                published: Some((9229, 9229)),
                host_ip: Some("127.0.0.1".into()),
                protocol: "tcp".into()
            }]
        );
        let p = ports(json!("53:53/udp"));
        assert_eq!((p[0].target, p[0].host_port()), (53, Some(53)));
        assert_eq!(p[0].protocol, "udp");
        assert!(p[0].on_all_interfaces());
        assert_eq!(ports(json!("80"))[0].published, None);
        assert_eq!(ports(json!(80))[0].target, 80);
        let p = ports(json!("[::1]:8080:80"));
        assert_eq!(p[0].host_ip.as_deref(), Some("::1"));
        let p = ports(json!("8000-8002:9000-9002"));
        assert_eq!(p.len(), 3);
        assert_eq!((p[2].target, p[2].host_port()), (9002, Some(8002)));
        let p = ports(json!("8000-8010:80"));
        assert_eq!(
            (p[0].published, p[0].host_port()),
            (Some((8000, 8010)), None)
        );
        assert!(port(&json!("1:2:3:4")).is_err());
        assert!(port(&json!("9-8:80")).is_err());
    }

    #[test]
    fn long_ports_take_text_or_numbers() {
        let p = ports(json!({"target": 80, "published": "8080", "host_ip": "0.0.0.0"}));
        assert_eq!(
            (p[0].host_port(), p[0].protocol.as_str()),
            (Some(8080), "tcp")
        );
        assert!(p[0].on_all_interfaces());
        let p = ports(json!({"target": 80, "published": 8081, "protocol": "udp"}));
        assert_eq!(p[0].host_port(), Some(8081));
        assert_eq!(ports(json!({"target": 80}))[0].published, None);
    }

    #[test]
    fn both_shapes_normalise_alike() {
        let v2 = json!({
            "name": "p",
            "services": {"db": {
                "container_name": "db1",
                "networks": {"n": {"ipv4_address": "10.0.0.2", "aliases": ["x"]}},
                "volumes": [
                    {"type": "volume", "source": "data", "target": "/d"},
                    {"type": "bind", "source": "/w/conf", "target": "/c"},
                    {"type": "bind", "source": "/etc/x", "target": "/x"}
                ],
                "healthcheck": {"test": ["CMD", "true"]},
                "environment": {"A": "1", "B": null}
            }},
            "volumes": {"data": {"name": "p_data"}, "ext": {"name": "ext", "external": true}},
            "networks": {"n": {"name": "fixed", "ipam": {"config": [{"subnet": "10.0.0.0/24"}]}}}
        });
        let legacy = json!({
            "services": {"db": {
                "container_name": "db1",
                "networks": {"n": {"ipv4_address": "10.0.0.2", "aliases": ["x"]}},
                "volumes": ["data:/d:rw", "/w/conf:/c:rw", "/etc/x:/x"],
                "healthcheck": {"test": "true"},
                "environment": ["A=1", "B"]
            }},
            "volumes": {"data": {}, "ext": {"external": true, "name": "ext"}},
            "networks": {"n": {"name": "fixed", "ipam": {"config": [{"subnet": "10.0.0.0/24"}]}}}
        });
        let dir = Path::new("/w");
        let a = model("p", dir, Dialect::Json, v2).unwrap();
        let b = model("p", dir, Dialect::Legacy, legacy).unwrap();
        assert_eq!(a.services, b.services);
        assert_eq!(a.volumes, b.volumes);
        assert_eq!(a.networks, b.networks);
        let db = &a.services["db"];
        assert_eq!(
            db.volumes
                .iter()
                .map(|m| m.outside_project)
                .collect::<Vec<_>>(),
            [false, false, true]
        );
        assert!(db.healthcheck);
        assert_eq!(db.environment["B"], None);
        assert_eq!(a.volumes["data"].fixed_name, None);
        assert_eq!(a.volumes["ext"].fixed_name.as_deref(), Some("ext"));
        assert!(a.volumes["ext"].external);
        assert_eq!(a.networks["n"].fixed_name.as_deref(), Some("fixed"));
        assert_eq!(a.networks["n"].subnets, ["10.0.0.0/24"]);
    }
}
