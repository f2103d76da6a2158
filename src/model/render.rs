//! The per-slot compose file of an adopted project, `slot-N/docker-compose.yml`.
//!
//! With compose v2 2.24.4 or later it is an override, rendered with handlebars
//! and used as `-f <worktree files...> -f <slot>/docker-compose.yml`: ports
//! replaced (`!override`) on `HOST_IP`, `container_name` reset with an alias of
//! the old name, fixed names of volumes and networks, static addresses and
//! subnets reset, and our labels. Older compose (legacy 1.29, v2 before 2.24.4)
//! knows neither `!reset` nor `!override`: the slot file is then a materialised
//! copy of compose's own model with the same changes, run alone with the
//! project directory of the original. Every value taken from the user's file
//! is written JSON-quoted, which YAML reads as the same string.
//!
//! Ports are published on `${SANDBOX_HOST_IP:-127.0.0.1}`, which compose
//! interpolates from the worktree's env file: the slot file is rendered
//! before any claim says which engine the slot runs on, and one file serves
//! every engine (a claim on another host sets `SANDBOX_HOST_IP=0.0.0.0`).
//! For the same reason a bind of the worktree is written with its worktree
//! part as `${SANDBOX_ENGINE_WORKTREE:-<worktree>}`: a claim on an engine
//! that sees the worktree under another path (`path_map`) sets it.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use handlebars::Handlebars;
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::analyse::always_shared;
use super::read::version;
use super::{DerivedPorts, External, Model, MountType, Service};
#[cfg(test)]
use crate::compose::Compose;
use crate::engine::{POOL_LABEL, REGISTRY_LABEL, SLOT_LABEL};
#[cfg(test)]
use crate::template::fnv1a;

/// The address a slot's ports are published on: the claim's engine's
/// (`SANDBOX_HOST_IP` of the worktree's env file), else the loopback.
pub(crate) const HOST_IP: &str = "${SANDBOX_HOST_IP:-127.0.0.1}";

/// The variable of a claim's env file that holds the worktree's path as
/// the claim's engine sees it; unset, the worktree's own path.
pub(crate) const ENGINE_WORKTREE: &str = "SANDBOX_ENGINE_WORKTREE";

/// The shape of the slot file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavour {
    /// Added after the project's own files (`-f ... -f slot`).
    Override,
    /// The whole model, used alone (`-f slot`).
    Materialised,
}

/// The slot file `compose` can use.
#[cfg(test)]
pub(crate) fn flavour(compose: &Compose) -> Flavour {
    if version(&compose.version) >= (2, 24, 4) {
        Flavour::Override
    } else {
        Flavour::Materialised
    }
}

/// What a slot's file depends on besides the model.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SlotInputs<'a> {
    pub(crate) pool: &'a str,
    pub(crate) slot: u32,
    /// The slot's compose project name (`demo-slot-2`).
    pub(crate) project: &'a str,
    pub(crate) registry_id: &'a str,
    pub(crate) ports: &'a DerivedPorts,
    /// The slot's ports by name as the registry pins them, over the ones
    /// `ports` derives.
    pub(crate) pinned: Option<&'a BTreeMap<String, u16>>,
    pub(crate) external: External,
    /// The folder the model was read from (the worktree that holds the
    /// slot): binds inside it follow `path_map` of the claim's engine.
    pub(crate) worktree: Option<&'a Path>,
}

/// A bind source inside `worktree`, written so that compose reads it where
/// the claim's engine sees the worktree: `${SANDBOX_ENGINE_WORKTREE:-<worktree>}/rest`.
/// `None` for a source elsewhere, or a path compose would interpolate.
fn engine_source(source: &str, worktree: Option<&Path>) -> Option<String> {
    let w = worktree?.to_str()?;
    let rest = source.strip_prefix(w)?;
    let inside = rest.is_empty() || rest.starts_with('/');
    if !inside || w.contains(['$', '}']) || rest.contains('$') {
        return None;
    }
    Some(format!("${{{ENGINE_WORKTREE}:-{w}}}{rest}"))
}

/// A long-form bind of the worktree, with its source as `engine_source`
/// writes it: a copy of the entry, which keeps its options.
fn engine_bind(entry: &Value, worktree: Option<&Path>) -> Option<Value> {
    let map = entry.as_object()?;
    if map.get("type").and_then(Value::as_str) != Some("bind") {
        return None;
    }
    let source = engine_source(map.get("source")?.as_str()?, worktree)?;
    let mut copy = map.clone();
    copy.insert("source".into(), Value::from(source));
    Some(Value::Object(copy))
}

/// The slot file the compose that printed `model` can use.
pub(crate) fn flavour_of(model: &Model) -> Flavour {
    if version(&model.compose_version) >= (2, 24, 4) {
        Flavour::Override
    } else {
        Flavour::Materialised
    }
}

/// How an override's text begins, after the fingerprint line.
const OVERRIDE_MARK: &str = "# The project's own compose files, isolated for slot ";

/// Whether a slot file is an override (run after the project's own files),
/// not a materialised copy (run alone).
pub(crate) fn is_override(text: &str) -> bool {
    text.lines().take(3).any(|l| l.starts_with(OVERRIDE_MARK))
}

/// How the file names the fingerprint of its inputs, on its first line (as
/// the template pools' files do, so one reader serves both).
#[cfg(test)]
const FINGERPRINT_MARK: &str = "# docker-sandbox fingerprint ";

/// The slot file's text, starting with its fingerprint line.
#[cfg(test)]
pub(crate) fn render_slot(
    model: &Model,
    inputs: &SlotInputs<'_>,
    flavour: Flavour,
) -> Result<String> {
    let body = render_body(model, inputs, flavour)?;
    let fingerprint = fnv1a(&[b"docker-sandbox slot file 1", body.as_bytes()]);
    Ok(format!(
        "{FINGERPRINT_MARK}{fingerprint} (generated from the project's compose files: do not edit)\n{body}"
    ))
}

/// The slot file's text without its fingerprint line.
pub(crate) fn render_body(
    model: &Model,
    inputs: &SlotInputs<'_>,
    flavour: Flavour,
) -> Result<String> {
    match flavour {
        Flavour::Override => render_override(model, inputs),
        Flavour::Materialised => materialise(model, inputs),
    }
}

fn q(s: &str) -> String {
    Value::from(s).to_string()
}

fn labels(inputs: &SlotInputs<'_>) -> BTreeMap<&'static str, String> {
    BTreeMap::from([
        (REGISTRY_LABEL, inputs.registry_id.to_owned()),
        (POOL_LABEL, inputs.pool.to_owned()),
        (SLOT_LABEL, inputs.slot.to_string()),
    ])
}

/// A port of the slot: the named slot port, or none for a port compose picks.
fn slot_port(inputs: &SlotInputs<'_>, service: &Service, index: usize) -> Option<u16> {
    let named = inputs.ports.of(&service.name, index)?;
    if let Some(port) = inputs.pinned.and_then(|p| p.get(&named.name)) {
        return Some(*port);
    }
    inputs.ports.rule(named).port(inputs.slot, 0)
}

/// A bind from outside the project that the slot replaces with its own volume.
fn per_slot_bind(external: External, kind: MountType, source: Option<&str>, outside: bool) -> bool {
    external == External::PerSlot
        && kind == MountType::Bind
        && outside
        && source.is_some_and(|s| !always_shared(s))
}

fn bind_volume_key(service: &str, index: usize) -> String {
    let clean: String = service
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("sandbox_bind_{clean}_{index}")
}

const OVERRIDE: &str = r#"# The project's own compose files, isolated for slot {{slot}} of pool {{pool}}.
services:
{{#each services}}
  {{name}}:
{{#if ports}}
    ports: !override
{{#each ports}}
      - {{this}}
{{/each}}
{{/if}}
{{#if reset_container_name}}
    container_name: !reset null
{{/if}}
{{#if networks}}
    networks:
{{#each networks}}
      {{name}}:
{{#if aliases}}
        aliases: [{{aliases}}]
{{/if}}
{{#if reset_ipv4}}
        ipv4_address: !reset null
{{/if}}
{{#if reset_ipv6}}
        ipv6_address: !reset null
{{/if}}
{{/each}}
{{/if}}
{{#if volumes}}
    volumes:
{{#each volumes}}
      - {{this}}
{{/each}}
{{/if}}
    labels:
{{#each ../labels}}
      {{@key}}: {{this}}
{{/each}}
{{/each}}
{{#if volumes}}
volumes:
{{#each volumes}}
  {{name}}:
{{#if reset_external}}
    external: !reset null
{{/if}}
{{#if labels}}
    name: !reset null
    labels:
{{#each ../labels}}
      {{@key}}: {{this}}
{{/each}}
{{/if}}
{{/each}}
{{/if}}
{{#if networks}}
networks:
{{#each networks}}
  {{name}}:
{{#if reset_external}}
    external: !reset null
{{/if}}
{{#if reset_ipam}}
    ipam: !reset null
{{/if}}
{{#if labels}}
    name: !reset null
    labels:
{{#each ../labels}}
      {{@key}}: {{this}}
{{/each}}
{{/if}}
{{/each}}
{{/if}}
"#;

#[derive(Serialize)]
struct OverrideContext {
    pool: String,
    slot: u32,
    /// Keys and values JSON-quoted.
    labels: BTreeMap<String, String>,
    services: Vec<ServiceContext>,
    volumes: Vec<TopContext>,
    networks: Vec<TopContext>,
}

#[derive(Serialize)]
struct ServiceContext {
    name: String,
    /// Each a JSON mapping in long form.
    ports: Vec<String>,
    reset_container_name: bool,
    networks: Vec<NetworkContext>,
    /// Each a JSON mapping in long form.
    volumes: Vec<String>,
}

#[derive(Serialize)]
struct NetworkContext {
    name: String,
    /// JSON-quoted, comma-separated.
    aliases: String,
    reset_ipv4: bool,
    reset_ipv6: bool,
}

#[derive(Serialize)]
struct TopContext {
    name: String,
    reset_external: bool,
    reset_ipam: bool,
    /// Namespaced by compose and labelled as ours; false for a shared external.
    labels: bool,
}

fn render_override(model: &Model, inputs: &SlotInputs<'_>) -> Result<String> {
    let mut hb = Handlebars::new();
    hb.set_strict_mode(true);
    hb.register_escape_fn(handlebars::no_escape);
    hb.register_template_string("override", OVERRIDE)
        .context("the slot override template does not parse")?;
    let mut extra_volumes = Vec::new();
    let services = model
        .services
        .values()
        .map(|s| service_context(model, s, inputs, &mut extra_volumes))
        .collect();
    let per_slot = inputs.external == External::PerSlot;
    let mut volumes: Vec<TopContext> = model
        .volumes
        .iter()
        .map(|(key, v)| TopContext {
            name: q(key),
            reset_external: v.external && per_slot,
            reset_ipam: false,
            labels: !v.external || per_slot,
        })
        .collect();
    volumes.extend(extra_volumes.into_iter().map(|key| TopContext {
        name: q(&key),
        reset_external: false,
        reset_ipam: false,
        labels: true,
    }));
    let networks = model
        .networks
        .iter()
        .map(|(key, n)| {
            let ours = !n.external || per_slot;
            TopContext {
                name: q(key),
                reset_external: n.external && per_slot,
                reset_ipam: ours && n.ipam_config,
                labels: ours,
            }
        })
        .collect();
    let ctx = OverrideContext {
        pool: inputs.pool.to_owned(),
        slot: inputs.slot,
        labels: labels(inputs)
            .into_iter()
            .map(|(k, v)| (q(k), q(&v)))
            .collect(),
        services,
        volumes,
        networks,
    };
    hb.render("override", &ctx)
        .context("failed to render the slot override")
}

fn service_context(
    model: &Model,
    s: &Service,
    inputs: &SlotInputs<'_>,
    extra_volumes: &mut Vec<String>,
) -> ServiceContext {
    let ports = s
        .ports
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut long = json!({"target": p.target, "host_ip": HOST_IP, "protocol": p.protocol});
            if let Some(n) = slot_port(inputs, s, i) {
                long["published"] = Value::from(n.to_string());
            }
            long.to_string()
        })
        .collect();
    let networks = model
        .joined_networks(s)
        .into_iter()
        .map(|net| {
            let own = s.networks.get(&net).cloned().unwrap_or_default();
            NetworkContext {
                aliases: s.container_name.as_deref().map(q).unwrap_or_default(),
                name: q(&net),
                reset_ipv4: own.ipv4_address.is_some(),
                reset_ipv6: own.ipv6_address.is_some(),
            }
        })
        .filter(|n| !n.aliases.is_empty() || n.reset_ipv4 || n.reset_ipv6)
        .collect();
    let mut volumes = Vec::new();
    for (i, m) in s.volumes.iter().enumerate() {
        if per_slot_bind(
            inputs.external,
            m.kind,
            m.source.as_deref(),
            m.outside_project,
        ) {
            let key = bind_volume_key(&s.name, i);
            volumes.push(json!({"type": "volume", "source": key, "target": m.target}).to_string());
            extra_volumes.push(key);
        }
    }
    // Compose merges a service's volumes by target: the worktree's binds
    // again, with their source where the claim's engine sees it.
    let raw = model.raw.pointer(&format!(
        "/services/{}/volumes",
        s.name.replace('~', "~0").replace('/', "~1")
    ));
    for entry in raw.and_then(Value::as_array).into_iter().flatten() {
        if let Some(bind) = engine_bind(entry, inputs.worktree) {
            volumes.push(bind.to_string());
        }
    }
    ServiceContext {
        name: q(&s.name),
        ports,
        reset_container_name: s.container_name.is_some(),
        networks,
        volumes,
    }
}

/// compose's own model with the slot's changes, as JSON (which YAML reads).
fn materialise(model: &Model, inputs: &SlotInputs<'_>) -> Result<String> {
    let mut raw = model.raw.clone();
    let top = raw.as_object_mut().context("the model is not a mapping")?;
    let ours: Map<String, Value> = labels(inputs)
        .into_iter()
        .map(|(k, v)| (k.to_owned(), Value::from(v)))
        .collect();
    if top.contains_key("name") {
        top.insert("name".into(), Value::from(inputs.project));
    }
    let mut extra_volumes = Vec::new();
    let mut uses_default = false;
    if let Some(services) = top.get_mut("services").and_then(Value::as_object_mut) {
        for (name, sv) in services.iter_mut() {
            let Some(s) = model.services.get(name) else {
                continue;
            };
            let Some(sv) = sv.as_object_mut() else {
                continue;
            };
            materialise_service(model, s, sv, inputs, &ours, &mut extra_volumes);
            uses_default |= model.joined_networks(s).iter().any(|n| n == "default");
        }
    }
    let per_slot = inputs.external == External::PerSlot;
    let volumes = top
        .entry("volumes")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Some(volumes) = volumes.as_object_mut() {
        for (key, v) in volumes.iter_mut() {
            let external = model.volumes.get(key).is_some_and(|m| m.external);
            if external && !per_slot {
                continue;
            }
            let map = ensure_map(v);
            map.remove("external");
            map.insert(
                "name".into(),
                Value::from(format!("{}_{key}", inputs.project)),
            );
            merge_labels(map, &ours);
        }
        for key in extra_volumes {
            let mut map = Map::new();
            map.insert(
                "name".into(),
                Value::from(format!("{}_{key}", inputs.project)),
            );
            merge_labels(&mut map, &ours);
            volumes.insert(key, Value::Object(map));
        }
    }
    if volumes.as_object().is_some_and(Map::is_empty) {
        top.remove("volumes");
    }
    let networks = top
        .entry("networks")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Some(networks) = networks.as_object_mut() {
        if uses_default && !networks.contains_key("default") {
            networks.insert("default".into(), Value::Object(Map::new()));
        }
        for (key, n) in networks.iter_mut() {
            let external = model.networks.get(key).is_some_and(|m| m.external);
            if external && !per_slot {
                continue;
            }
            let map = ensure_map(n);
            map.remove("external");
            map.remove("ipam");
            map.insert(
                "name".into(),
                Value::from(format!("{}_{key}", inputs.project)),
            );
            merge_labels(map, &ours);
        }
    }
    if networks.as_object().is_some_and(Map::is_empty) {
        top.remove("networks");
    }
    serde_json::to_string_pretty(&raw)
        .map(|t| t + "\n")
        .context("failed to write the slot's compose file")
}

fn materialise_service(
    model: &Model,
    s: &Service,
    sv: &mut Map<String, Value>,
    inputs: &SlotInputs<'_>,
    ours: &Map<String, Value>,
    extra_volumes: &mut Vec<String>,
) {
    if !s.ports.is_empty() {
        let short = s
            .ports
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let published = slot_port(inputs, s, i).map_or(String::new(), |n| n.to_string());
                Value::from(format!("{HOST_IP}:{published}:{}/{}", p.target, p.protocol))
            })
            .collect();
        sv.insert("ports".into(), Value::Array(short));
    }
    sv.remove("container_name");
    let joined = model.joined_networks(s);
    if !joined.is_empty() {
        let mut nets = match sv.remove("networks") {
            Some(Value::Object(m)) => m,
            Some(Value::Array(list)) => list
                .into_iter()
                .filter_map(|n| n.as_str().map(|n| (n.to_owned(), Value::Null)))
                .collect(),
            _ => Map::new(),
        };
        for net in joined {
            let entry = ensure_map(nets.entry(net).or_insert(Value::Null));
            entry.remove("ipv4_address");
            entry.remove("ipv6_address");
            if let Some(c) = &s.container_name {
                let aliases = entry
                    .entry("aliases")
                    .or_insert_with(|| Value::Array(Vec::new()));
                if let Some(list) = aliases.as_array_mut()
                    && !list.iter().any(|a| a.as_str() == Some(c))
                {
                    list.push(Value::from(c.as_str()));
                }
            }
        }
        sv.insert("networks".into(), Value::Object(nets));
    }
    if let Some(Value::Array(mounts)) = sv.get_mut("volumes") {
        for entry in mounts.iter_mut() {
            let moved = match &*entry {
                Value::String(short) => short
                    .split_once(':')
                    .and_then(|(src, rest)| {
                        Some(format!("{}:{rest}", engine_source(src, inputs.worktree)?))
                    })
                    .map(Value::from),
                long => engine_bind(long, inputs.worktree),
            };
            if let Some(moved) = moved {
                *entry = moved;
            }
        }
    }
    if let Some(Value::Array(mounts)) = sv.get_mut("volumes") {
        for (i, m) in s.volumes.iter().enumerate() {
            if !per_slot_bind(
                inputs.external,
                m.kind,
                m.source.as_deref(),
                m.outside_project,
            ) {
                continue;
            }
            let key = bind_volume_key(&s.name, i);
            // The short syntax holds in every file format legacy compose reads.
            if let Some(entry) = mounts.get_mut(i) {
                *entry = Value::from(format!("{key}:{}", m.target));
            }
            extra_volumes.push(key);
        }
    }
    merge_labels(sv, ours);
}

/// `v` as a mapping: `null` becomes an empty one, a `KEY=VALUE` list a map.
fn ensure_map(v: &mut Value) -> &mut Map<String, Value> {
    if let Value::Array(list) = v {
        let map: Map<String, Value> = list
            .iter()
            .filter_map(Value::as_str)
            .map(|e| match e.split_once('=') {
                Some((k, v)) => (k.to_owned(), Value::from(v)),
                None => (e.to_owned(), Value::from("")),
            })
            .collect();
        *v = Value::Object(map);
    }
    if !v.is_object() {
        *v = Value::Object(Map::new());
    }
    match v {
        Value::Object(m) => m,
        _ => unreachable!("made a mapping above"),
    }
}

fn merge_labels(map: &mut Map<String, Value>, ours: &Map<String, Value>) {
    let labels = ensure_map(map.entry("labels").or_insert(Value::Null));
    for (k, v) in ours {
        labels.insert(k.clone(), v.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Dialect, derive_ports, normalise};
    use std::path::Path;

    fn pihole() -> Model {
        normalise::model(
            "p",
            Path::new("/w"),
            Dialect::Json,
            json!({
                "name": "p",
                "services": {
                    "dns": {
                        "container_name": "pi\"hole",
                        "ports": [
                            {"target": 53, "published": "53", "protocol": "udp"},
                            {"target": 80, "protocol": "tcp"}
                        ],
                        "networks": {"dns-net": {"ipv4_address": "172.20.0.2"}},
                        "volumes": [{"type": "bind", "source": "/etc/pihole", "target": "/etc/pihole"}]
                    },
                    "web": {"image": "x"}
                },
                "volumes": {"data": {"name": "fixed"}},
                "networks": {
                    "dns-net": {"name": "p_dns-net", "ipam": {"config": [{"subnet": "172.20.0.0/24"}]}},
                    "default": {"name": "p_default"}
                }
            }),
        )
        .unwrap()
    }

    fn inputs<'a>(ports: &'a DerivedPorts, external: External) -> SlotInputs<'a> {
        SlotInputs {
            pool: "demo",
            slot: 2,
            project: "demo-slot-2",
            registry_id: "abcd",
            ports,
            pinned: None,
            external,
            worktree: None,
        }
    }

    #[test]
    fn the_override_resets_what_slots_cannot_share() {
        let m = pihole();
        let ports = derive_ports(&m, "DEMO", 4).unwrap();
        let text = render_slot(&m, &inputs(&ports, External::PerSlot), Flavour::Override).unwrap();
        assert!(text.starts_with(FINGERPRINT_MARK), "{text}");
        let body: String = text.lines().skip(1).collect::<Vec<_>>().join("\n");
        let expected = r#"# The project's own compose files, isolated for slot 2 of pool demo.
services:
  "dns":
    ports: !override
      - {"host_ip":"${SANDBOX_HOST_IP:-127.0.0.1}","protocol":"udp","published":"55","target":53}
      - {"host_ip":"${SANDBOX_HOST_IP:-127.0.0.1}","protocol":"tcp","target":80}
    container_name: !reset null
    networks:
      "dns-net":
        aliases: ["pi\"hole"]
        ipv4_address: !reset null
    volumes:
      - {"source":"sandbox_bind_dns_0","target":"/etc/pihole","type":"volume"}
    labels:
      "org.docker-sandbox.pool": "demo"
      "org.docker-sandbox.registry": "abcd"
      "org.docker-sandbox.slot": "2"
  "web":
    labels:
      "org.docker-sandbox.pool": "demo"
      "org.docker-sandbox.registry": "abcd"
      "org.docker-sandbox.slot": "2"
volumes:
  "data":
    name: !reset null
    labels:
      "org.docker-sandbox.pool": "demo"
      "org.docker-sandbox.registry": "abcd"
      "org.docker-sandbox.slot": "2"
  "sandbox_bind_dns_0":
    name: !reset null
    labels:
      "org.docker-sandbox.pool": "demo"
      "org.docker-sandbox.registry": "abcd"
      "org.docker-sandbox.slot": "2"
networks:
  "default":
    name: !reset null
    labels:
      "org.docker-sandbox.pool": "demo"
      "org.docker-sandbox.registry": "abcd"
      "org.docker-sandbox.slot": "2"
  "dns-net":
    ipam: !reset null
    name: !reset null
    labels:
      "org.docker-sandbox.pool": "demo"
      "org.docker-sandbox.registry": "abcd"
      "org.docker-sandbox.slot": "2"
"#;
        assert_eq!(body + "\n", expected);
        // It is YAML, and says what it says.
        let parsed = super::super::yaml::to_json(&text).unwrap();
        assert_eq!(
            parsed["services"]["dns"]["networks"]["dns-net"]["aliases"][0],
            "pi\"hole"
        );
    }

    #[test]
    fn a_bind_of_the_worktree_is_listed_again_where_the_engine_sees_it() {
        let m = normalise::model(
            "p",
            Path::new("/w"),
            Dialect::Json,
            json!({"services": {"web": {"volumes": [
                {"type": "bind", "source": "/w/conf", "target": "/c", "read_only": true},
                {"type": "bind", "source": "/w", "target": "/src"},
                {"type": "bind", "source": "/wx", "target": "/x"},
                {"type": "bind", "source": "/etc/x", "target": "/e"},
                {"type": "volume", "source": "data", "target": "/d"}
            ]}}}),
        )
        .unwrap();
        let ports = derive_ports(&m, "DEMO", 4).unwrap();
        let inputs = SlotInputs {
            worktree: Some(Path::new("/w")),
            ..inputs(&ports, External::Shared)
        };
        let text = render_slot(&m, &inputs, Flavour::Override).unwrap();
        let v = super::super::yaml::to_json(&text).unwrap();
        assert_eq!(
            v["services"]["web"]["volumes"],
            json!([
                {"type": "bind", "source": "${SANDBOX_ENGINE_WORKTREE:-/w}/conf", "target": "/c", "read_only": true},
                {"type": "bind", "source": "${SANDBOX_ENGINE_WORKTREE:-/w}", "target": "/src"}
            ]),
            "{text}"
        );
        let text = render_slot(&m, &inputs, Flavour::Materialised).unwrap();
        let v = super::super::yaml::to_json(&text).unwrap();
        let sources: Vec<&str> = v["services"]["web"]["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["source"].as_str().unwrap())
            .collect();
        assert_eq!(
            sources,
            [
                "${SANDBOX_ENGINE_WORKTREE:-/w}/conf",
                "${SANDBOX_ENGINE_WORKTREE:-/w}",
                "/wx",
                "/etc/x",
                "data"
            ]
        );
    }

    #[test]
    fn the_materialised_copy_makes_the_same_changes() {
        let m = pihole();
        let ports = derive_ports(&m, "DEMO", 4).unwrap();
        let text =
            render_slot(&m, &inputs(&ports, External::Shared), Flavour::Materialised).unwrap();
        let v = super::super::yaml::to_json(&text).unwrap();
        let dns = &v["services"]["dns"];
        assert_eq!(
            dns["ports"],
            json!([
                "${SANDBOX_HOST_IP:-127.0.0.1}:55:53/udp",
                "${SANDBOX_HOST_IP:-127.0.0.1}::80/tcp"
            ])
        );
        assert!(dns.get("container_name").is_none());
        assert_eq!(
            dns["networks"],
            json!({"dns-net": {"aliases": ["pi\"hole"]}})
        );
        assert_eq!(dns["volumes"][0]["source"], "/etc/pihole", "shared");
        assert_eq!(dns["labels"]["org.docker-sandbox.slot"], "2");
        assert_eq!(v["name"], "demo-slot-2");
        assert_eq!(v["volumes"]["data"]["name"], "demo-slot-2_data");
        assert_eq!(v["networks"]["dns-net"]["name"], "demo-slot-2_dns-net");
        assert!(v["networks"]["dns-net"].get("ipam").is_none());
        assert_eq!(
            v["networks"]["default"]["labels"]["org.docker-sandbox.pool"],
            "demo"
        );
    }

    #[test]
    fn new_enough_compose_gets_an_override() {
        let c = |v: &str| Compose {
            docker: crate::engine::Docker {
                bin: "docker".into(),
                globals: Vec::new(),
            },
            program: crate::compose::Program::Plugin,
            version: v.into(),
        };
        assert_eq!(flavour(&c("2.24.4")), Flavour::Override);
        assert_eq!(flavour(&c("5.6.1")), Flavour::Override);
        assert_eq!(flavour(&c("2.24.3")), Flavour::Materialised);
        assert_eq!(flavour(&c("1.29.2")), Flavour::Materialised);
    }
}
