//! YAML read with `yaml-rust2`: legacy compose's `config` output into JSON, and
//! the project's own files, for what they make compose read besides themselves
//! (`include:`, `extends: file:`, `env_file:`) and the profiles they name.
//! Interpolation is left to compose: a reference holding `$` is taken as written.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::Value;
use yaml_rust2::{Yaml, YamlLoader};

/// The first document of `text` as JSON.
pub(crate) fn to_json(text: &str) -> Result<Value> {
    let docs = YamlLoader::load_from_str(text).context("not valid YAML")?;
    Ok(docs.first().map_or(Value::Null, json))
}

fn json(y: &Yaml) -> Value {
    match y {
        Yaml::Real(s) => s
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or_else(|| Value::String(s.clone()), Value::Number),
        Yaml::Integer(i) => Value::from(*i),
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Array(a) => Value::Array(a.iter().map(json).collect()),
        Yaml::Hash(h) => {
            let mut map = serde_json::Map::new();
            for (k, v) in merged(h) {
                map.insert(key_text(&k), json(&v));
            }
            Value::Object(map)
        }
        Yaml::Null | Yaml::Alias(_) | Yaml::BadValue => Value::Null,
    }
}

fn key_text(k: &Yaml) -> String {
    match k {
        Yaml::String(s) | Yaml::Real(s) => s.clone(),
        Yaml::Integer(i) => i.to_string(),
        Yaml::Boolean(b) => b.to_string(),
        _ => String::new(),
    }
}

/// A mapping with its `<<` merge keys applied (the map's own keys win).
fn merged(h: &yaml_rust2::yaml::Hash) -> Vec<(Yaml, Yaml)> {
    let merge_key = Yaml::String("<<".into());
    let mut out: Vec<(Yaml, Yaml)> = Vec::new();
    let mut put = |k: &Yaml, v: &Yaml, own: bool| {
        if let Some(slot) = out.iter_mut().find(|(key, _)| key == k) {
            if own {
                slot.1 = v.clone();
            }
        } else {
            out.push((k.clone(), v.clone()));
        }
    };
    for (k, v) in h {
        if *k != merge_key {
            put(k, v, true);
        }
    }
    if let Some(m) = h.get(&merge_key) {
        let sources = match m {
            Yaml::Array(a) => a.clone(),
            other => vec![other.clone()],
        };
        for source in &sources {
            if let Yaml::Hash(sh) = source {
                for (k, v) in merged(sh) {
                    put(&k, &v, false);
                }
            }
        }
    }
    out
}

/// What the project's files make compose read, found by walking them.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Sources {
    /// Every file read, the given ones first; absolute, in the order found.
    pub(super) files: Vec<PathBuf>,
    /// Every profile a service names.
    pub(super) profiles: BTreeSet<String>,
}

/// Walks `files` and every file they name, each once. A file that does not
/// exist or does not parse is still listed (its absence is part of what
/// compose saw) but names nothing: compose itself reports it.
pub(super) fn sources(files: &[PathBuf]) -> Sources {
    let mut found = Sources::default();
    let mut queue: Vec<(PathBuf, bool)> = files.iter().map(|f| (f.clone(), true)).collect();
    queue.reverse();
    while let Some((file, compose_file)) = queue.pop() {
        if found.files.contains(&file) {
            continue;
        }
        found.files.push(file.clone());
        if !compose_file {
            continue;
        }
        let Some(doc) = std::fs::read_to_string(&file)
            .ok()
            .and_then(|t| to_json(&t).ok())
        else {
            continue;
        };
        let dir = file.parent().unwrap_or(Path::new("/")).to_path_buf();
        let mut named = Vec::new();
        references(&doc, &dir, &mut named, &mut found.profiles);
        // Depth first, in file order.
        for n in named.into_iter().rev() {
            queue.push(n);
        }
    }
    found
}

/// The files `doc` names: `(path, is a compose file)`.
fn references(
    doc: &Value,
    dir: &Path,
    out: &mut Vec<(PathBuf, bool)>,
    profiles: &mut BTreeSet<String>,
) {
    let at = |p: &str| dir.join(p);
    for entry in doc
        .get("include")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        match entry {
            Value::String(p) => out.push((at(p), true)),
            Value::Object(m) => {
                for p in texts(m.get("path")) {
                    out.push((at(&p), true));
                }
                for p in texts(m.get("env_file")) {
                    out.push((at(&p), false));
                }
            }
            _ => {}
        }
    }
    let services = doc.get("services").and_then(Value::as_object);
    for service in services.into_iter().flatten().map(|(_, s)| s) {
        if let Some(file) = service.pointer("/extends/file").and_then(Value::as_str) {
            out.push((at(file), true));
        }
        let env_files: Vec<String> = match service.get("env_file") {
            Some(Value::Array(list)) => list
                .iter()
                .filter_map(|e| match e {
                    Value::String(s) => Some(s.clone()),
                    Value::Object(m) => m.get("path").and_then(Value::as_str).map(str::to_owned),
                    _ => None,
                })
                .collect(),
            other => texts(other),
        };
        out.extend(env_files.iter().map(|p| (at(p), false)));
        profiles.extend(texts(service.get("profiles")));
    }
}

/// A string, or a list of strings.
fn texts(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn legacy_output_reads_as_json() {
        let v = to_json(
            "services:\n  a:\n    environment:\n      PORT: '5054'\n      N: 3\n    ports:\n    - published: 53\n      target: 53\n    - 127.0.0.1:9229:9229/tcp\nversion: '3.9'\n",
        )
        .unwrap();
        assert_eq!(
            v,
            json!({"services": {"a": {
                "environment": {"PORT": "5054", "N": 3},
                "ports": [{"published": 53, "target": 53}, "127.0.0.1:9229:9229/tcp"]
            }}, "version": "3.9"})
        );
    }

    #[test]
    fn anchors_merge_keys_and_tags_are_read() {
        let v = to_json(
            "x: &base {env_file: a.env, image: i}\nservices:\n  s:\n    <<: *base\n    image: own\n    ports: !override [\"1:1\"]\n",
        )
        .unwrap();
        assert_eq!(
            v["services"]["s"],
            json!({"image": "own", "ports": ["1:1"], "env_file": "a.env"})
        );
    }

    #[test]
    fn referenced_files_are_found_through_the_yaml() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("sub")).unwrap();
        std::fs::write(
            d.join("compose.yaml"),
            "include:\n  - sub/inc.yaml\n  - path: [other.yaml]\n    env_file: other.env\nservices:\n  web:\n    extends: {file: base.yaml, service: b}\n    env_file: [web.env, {path: opt.env, required: false}]\n    profiles: [debug]\n  # env_file: not-this.env\n",
        )
        .unwrap();
        std::fs::write(
            d.join("sub/inc.yaml"),
            "services:\n  db:\n    env_file: db.env\n    profiles: [tools]\n",
        )
        .unwrap();
        std::fs::write(d.join("base.yaml"), "services:\n  b: {image: x}\n").unwrap();
        let found = sources(&[d.join("compose.yaml")]);
        let names: Vec<String> = found
            .files
            .iter()
            .map(|f| f.strip_prefix(d).unwrap().display().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "compose.yaml",
                "sub/inc.yaml",
                "sub/db.env",
                "other.yaml",
                "other.env",
                "base.yaml",
                "web.env",
                "opt.env"
            ]
        );
        assert_eq!(
            found.profiles.into_iter().collect::<Vec<_>>(),
            ["debug", "tools"]
        );
    }
}
