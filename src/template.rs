//! Rendering a slot's files from the pool's Handlebars templates: strict mode (a
//! missing variable is an error), no HTML escaping. It writes nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use handlebars::{Handlebars, HelperDef, handlebars_helper};
use serde::Serialize;

use crate::engine::{POOL_LABEL, REGISTRY_LABEL, SLOT_LABEL};
use crate::error::fail;
use crate::pool::{COMPOSE_TEMPLATE, ENV_TEMPLATE, Pool, Templates};
use crate::pool::{SlotPorts, Worker};

const EMBEDDED_COMPOSE: &str = include_str!("../templates/docker-compose.yml.hbs");
const EMBEDDED_ENV: &str = include_str!("../templates/env.sandbox.hbs");
/// The embedded stack's Prometheus config: this slot's own targets.
const EMBEDDED_PROMETHEUS: &str = include_str!("../templates/prometheus.yml.hbs");
/// Files the embedded templates render into the slot folder besides the
/// compose and env files: (template, file).
const EMBEDDED_EXTRA: [(&str, &str); 1] = [("prometheus.yml.hbs", "prometheus.yml")];
/// The env file of a slot of an adopted pool: who it is and its ports, for
/// the application and `docker sandbox env`; compose itself reads the
/// project's own `.env`.
const ADOPTED_ENV: &str = "\
# Slot {{slot}} of pool {{pool}} ({{profile}}).
SLOT_ID={{slot}}
SLOT_NUMBER={{slot}}
SANDBOX_PROFILE={{profile}}
COMPOSE_PROJECT_NAME={{project}}
{{#each port_list}}
{{env}}={{port}}
{{/each}}
";

/// What a template sees for one slot.
#[derive(Debug, Serialize)]
pub(crate) struct SlotContext<'a> {
    pub(crate) pool: &'a str,
    pub(crate) slot: u32,
    pub(crate) profile: &'a str,
    pub(crate) project: String,
    pub(crate) prefix: String,
    /// `{{ports.api}}`.
    pub(crate) ports: BTreeMap<&'a str, u16>,
    /// The named ports in declared order, with their env names, for the env file.
    pub(crate) port_list: Vec<PortEntry>,
    pub(crate) workers: &'a [Worker],
    pub(crate) worker_counts: &'a BTreeMap<String, u32>,
    pub(crate) shared_dir: &'a Path,
    pub(crate) state_dir: &'a Path,
    /// The slot's folder, which holds its rendered files.
    pub(crate) slot_dir: PathBuf,
    /// The slot's database password, random per slot.
    pub(crate) password: &'a str,
    /// The value of each `[secrets] random` name, random per slot.
    pub(crate) secrets: SecretValues,
    /// The registry's id, for the `org.docker-sandbox.registry` label.
    pub(crate) registry_id: &'a str,
    /// The labels every service, named volume and network must carry, so that
    /// this registry knows its own: `{{#each labels}}{{@key}}: "{{this}}"{{/each}}`.
    pub(crate) labels: BTreeMap<&'static str, String>,
    /// The slot's block of `[pool] subnets` (`10.213.2.0/23`); empty when the
    /// engine chooses the subnets.
    pub(crate) subnet: String,
    /// The worktree that holds the slot: an adopted pool's slot runs the
    /// compose files of that worktree; `exists` looks in it.
    #[serde(skip)]
    pub(crate) worktree: Option<&'a Path>,
}

/// `[secrets] random` name -> the slot's value.
pub(crate) type SecretValues = BTreeMap<String, String>;

#[derive(Debug, Serialize)]
pub(crate) struct PortEntry {
    pub(crate) name: String,
    pub(crate) env: String,
    pub(crate) port: u16,
}

impl<'a> SlotContext<'a> {
    pub(crate) fn new(
        pool: &'a Pool,
        slot: u32,
        ports: &'a SlotPorts,
        password: &'a str,
        mut secrets: SecretValues,
        registry_id: &'a str,
    ) -> Self {
        let prefix = pool.prefix();
        // The slot's password is its database password's secret.
        if let Some(name) = db_password_secret(pool) {
            secrets.insert(name, password.to_owned());
        }
        let labels = BTreeMap::from([
            (REGISTRY_LABEL, registry_id.to_owned()),
            (POOL_LABEL, pool.name.clone()),
            (SLOT_LABEL, slot.to_string()),
        ]);
        SlotContext {
            pool: &pool.name,
            slot,
            profile: pool.slots[&slot].as_str(),
            project: pool.project(slot),
            ports: ports.named.iter().map(|(n, p)| (n.as_str(), *p)).collect(),
            port_list: ports
                .named
                .iter()
                .map(|(name, port)| PortEntry {
                    env: format!("{prefix}_{}_PORT", name.to_ascii_uppercase()),
                    name: name.clone(),
                    port: *port,
                })
                .collect(),
            prefix,
            workers: &ports.workers,
            worker_counts: pool.workers(slot),
            shared_dir: &pool.shared_dir,
            state_dir: &pool.state_dir,
            slot_dir: pool.slot_dir(slot),
            password,
            secrets,
            registry_id,
            labels,
            subnet: pool
                .subnets
                .block(slot)
                .map(|b| b.to_string())
                .unwrap_or_default(),
            worktree: None,
        }
    }
}

/// The `[secrets] random` name whose value is the slot's `password`:
/// `<PREFIX>_DB_PASSWORD`, when the pool lists it.
pub(crate) fn db_password_secret(pool: &Pool) -> Option<String> {
    let name = format!("{}_DB_PASSWORD", pool.prefix());
    pool.secrets.random.contains(&name).then_some(name)
}

/// The files of a slot, rendered. Each starts with the fingerprint line.
#[derive(Debug)]
pub(crate) struct Rendered {
    pub(crate) compose: String,
    pub(crate) env: String,
    /// Other files of the slot folder, by name: the embedded stack's
    /// `prometheus.yml`.
    pub(crate) extra: Vec<(&'static str, String)>,
    /// The networks file: each network's subnet of the slot's block; `None`
    /// when the engine chooses, or the slot makes no network.
    pub(crate) networks: Option<String>,
    /// Of the inputs: the templates' texts, the whole context but its
    /// secrets, `[env]`, and what `exists` found in the worktree.
    pub(crate) fingerprint: String,
}

pub(crate) struct Renderer {
    hb: Handlebars<'static>,
    /// Whether `render` makes the networks file: not for a renderer that
    /// only compares fingerprints.
    networks: bool,
    /// The templates as written, for the fingerprint.
    texts: Vec<String>,
}

/// How a rendered file names the fingerprint of its inputs, on its first line.
const FINGERPRINT_MARK: &str = "# docker-sandbox fingerprint ";

/// The fingerprint a rendered file carries, if it carries one.
pub(crate) fn fingerprint_of(text: &str) -> Option<&str> {
    let rest = text.lines().next()?.strip_prefix(FINGERPRINT_MARK)?;
    rest.split_whitespace().next()
}

/// FNV-1a, 64 bits, of `parts` each ended by a byte no UTF-8 text holds:
/// stable across builds and platforms, unlike std's hasher, so a fingerprint
/// or cache key written by one version of the plugin is read by the next.
/// Not a defence against anyone.
pub(crate) fn fnv1a(parts: &[&[u8]]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.iter().chain(&[0xff]) {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

handlebars_helper!(upper: |s: str| s.to_ascii_uppercase());

/// `(exists "deploy/shared/grafana")`: whether the slot's worktree holds that
/// path (false while no worktree holds the slot). What it answers is part of
/// the fingerprint, so a checkout that gains or loses the path is rendered again.
/// The worktree is the one of the render under way, not a template variable:
/// the fingerprint holds what `exists` finds, not the path.
struct Exists;

thread_local! {
    /// The worktree of the render under way on this thread, for `exists`.
    static RENDERING_IN: std::cell::RefCell<Option<PathBuf>> = const { std::cell::RefCell::new(None) };
}

impl HelperDef for Exists {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &handlebars::Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc handlebars::Context,
        _: &mut handlebars::RenderContext<'reg, 'rc>,
    ) -> Result<handlebars::ScopedJson<'rc>, handlebars::RenderError> {
        let path = h.param(0).and_then(|p| p.value().as_str()).ok_or(
            handlebars::RenderErrorReason::ParamTypeMismatchForName(
                "exists",
                "0".into(),
                "a path in quotes".into(),
            ),
        )?;
        let found = RENDERING_IN.with(|w| present(w.borrow().as_deref(), path));
        Ok(handlebars::ScopedJson::Derived(serde_json::Value::Bool(
            found,
        )))
    }
}

/// `path` (relative) exists in `worktree`.
fn present(worktree: Option<&Path>, path: &str) -> bool {
    worktree.is_some_and(|w| w.join(path).exists())
}

/// Every `(exists "...")` a template text asks, with the answer for
/// `worktree`: `path=1`, one per line.
fn exists_answers(texts: &[String], worktree: Option<&Path>) -> String {
    const CALL: &str = "exists \"";
    let mut answers = std::collections::BTreeSet::new();
    for text in texts {
        let mut rest = text.as_str();
        while let Some(at) = rest.find(CALL) {
            rest = &rest[at + CALL.len()..];
            let Some(end) = rest.find('"') else { break };
            let path = &rest[..end];
            answers.insert(format!("{path}={}", u8::from(present(worktree, path))));
            rest = &rest[end..];
        }
    }
    answers.into_iter().collect::<Vec<_>>().join("\n")
}

impl Renderer {
    pub(crate) fn new(pool: &Pool) -> Result<Renderer> {
        let mut hb = Handlebars::new();
        hb.set_strict_mode(true);
        hb.register_escape_fn(handlebars::no_escape);
        hb.register_helper("upper", Box::new(upper));
        hb.register_helper("exists", Box::new(Exists));
        let origin = match &pool.templates {
            Templates::Embedded => "embedded".to_owned(),
            Templates::Dir(dir) => dir.display().to_string(),
            Templates::Adopt(_) => "adopted".to_owned(),
        };
        // An adopted pool's compose file is made from its model, not a template.
        let mut names = match &pool.templates {
            Templates::Adopt(_) => vec![ENV_TEMPLATE],
            _ => vec![COMPOSE_TEMPLATE, ENV_TEMPLATE],
        };
        if pool.templates == Templates::Embedded {
            names.extend(EMBEDDED_EXTRA.map(|(template, _)| template));
        }
        let mut texts = Vec::new();
        for name in names {
            let text = template_text(pool, name)?;
            hb.register_template_string(name, &text).map_err(|e| {
                let at = e
                    .pos()
                    .map_or_else(String::new, |(l, c)| format!(", line {l}, column {c}"));
                fail(
                    format!(
                        "template `{origin}/{name}` does not parse{at}: {}",
                        e.reason()
                    ),
                    "fix the Handlebars syntax in the template",
                )
            })?;
            texts.push(text);
        }
        Ok(Renderer {
            hb,
            networks: true,
            texts,
        })
    }

    /// A renderer for fingerprints only (`slots`, `status`: has a running
    /// slot's files changed?): it leaves out the networks file, which follows
    /// from the compose file and the context anyway.
    pub(crate) fn for_fingerprints(pool: &Pool) -> Result<Renderer> {
        Ok(Renderer {
            networks: false,
            ..Renderer::new(pool)?
        })
    }

    pub(crate) fn render(&self, pool: &Pool, ctx: &SlotContext<'_>) -> Result<Rendered> {
        self.render_with(pool, ctx, self.networks)
    }

    /// The files without the networks file (a probe of the templates).
    pub(crate) fn render_bare(&self, pool: &Pool, ctx: &SlotContext<'_>) -> Result<Rendered> {
        self.render_with(pool, ctx, false)
    }

    fn render_with(
        &self,
        pool: &Pool,
        ctx: &SlotContext<'_>,
        with_networks: bool,
    ) -> Result<Rendered> {
        let render = |name: &str| {
            self.hb.render(name, ctx).map_err(|e| {
                let file = match &pool.templates {
                    Templates::Embedded => format!("embedded/{name}"),
                    Templates::Dir(dir) => dir.join(name).display().to_string(),
                    Templates::Adopt(_) => format!("adopted/{name}"),
                };
                let at = e
                    .line_no
                    .map_or_else(String::new, |l| format!(", line {l}"));
                fail(
                    format!(
                        "template `{file}`{at}: {} (slot {})",
                        plain_reason(e.reason()),
                        ctx.slot
                    ),
                    "the README's \"Templates\" section lists the variables a template can use",
                )
            })
        };
        // The whole context but the secrets: the fingerprint sits in files
        // anyone may read, and a secret only changes with a new claim,
        // whose stack starts from nothing anyway. Of the worktree, only what
        // `exists` finds in it.
        let mut context = serde_json::to_value(ctx).context("failed to serialise the context")?;
        if let Some(map) = context.as_object_mut() {
            map.remove("password");
            map.remove("secrets");
        }
        let context = context.to_string();
        let found = exists_answers(&self.texts, ctx.worktree);
        RENDERING_IN.with(|w| *w.borrow_mut() = ctx.worktree.map(Path::to_owned));
        let extra = serde_json::to_string(&pool.env).context("failed to serialise [env]")?;
        let adopted = match pool.adopted() {
            Some(a) => Some(crate::pool::adopt::slot_file(pool, a, ctx)?),
            None => None,
        };
        let mut parts: Vec<&[u8]> = vec![b"docker-sandbox render 1"];
        parts.extend(self.texts.iter().map(|t| t.as_bytes()));
        parts.extend([context.as_bytes(), extra.as_bytes()]);
        if !found.is_empty() {
            parts.push(found.as_bytes());
        }
        if let Some((body, _)) = &adopted {
            parts.push(body.as_bytes());
        }
        let fingerprint = fnv1a(&parts);
        let sources = match pool.adopted() {
            Some(_) => "the compose files",
            None => "the templates",
        };
        let header = format!(
            "{FINGERPRINT_MARK}{fingerprint} (generated: edit {sources} or the project file, not this file)\n"
        );
        let (compose, keys) = match adopted {
            Some((body, keys)) => (header.clone() + &body, Some(keys)),
            None => (header.clone() + &render(COMPOSE_TEMPLATE)?, None),
        };
        let networks = if with_networks {
            networks_file(pool, ctx, &compose, keys, &header)?
        } else {
            None
        };
        let mut env = header.clone() + &crate::envfile::quote_env_text(&render(ENV_TEMPLATE)?);
        if !pool.env.is_empty() {
            if !env.ends_with('\n') {
                env.push('\n');
            }
            env.push_str("# [env] of the project file\n");
            for (k, v) in &pool.env {
                env.push_str(&format!("{k}={}\n", crate::envfile::quote_env(v)));
            }
        }
        let env = with_secrets(pool, ctx, env)?;
        let mut extra = Vec::new();
        if pool.templates == Templates::Embedded {
            for (template, file) in EMBEDDED_EXTRA {
                extra.push((file, header.clone() + &render(template)?));
            }
        }
        Ok(Rendered {
            compose,
            env,
            extra,
            networks,
            fingerprint,
        })
    }
}

/// The env file with a line for each `[secrets] random` name it does not set
/// yet; refused when it sets a name `[secrets] pass` lists (that value must
/// stay out of every file).
fn with_secrets(pool: &Pool, ctx: &SlotContext<'_>, mut env: String) -> Result<String> {
    let set: std::collections::BTreeSet<String> = crate::envfile::parse_env(&env)
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    if let Some(name) = pool.secrets.pass.iter().find(|n| set.contains(*n)) {
        return Err(fail(
            format!(
                "the env template of {} sets `{name}`, which [secrets] pass lists: its value would be written to a file",
                pool.origin()
            ),
            format!(
                "remove `{name}` from the env template; the compose template takes it as `${{{name}:-}}` from the user's environment"
            ),
        ));
    }
    let missing: Vec<&String> = pool
        .secrets
        .random
        .iter()
        .filter(|n| !set.contains(*n))
        .collect();
    if missing.is_empty() {
        return Ok(env);
    }
    if !env.ends_with('\n') {
        env.push('\n');
    }
    env.push_str("# [secrets] random: this slot's own values\n");
    for name in missing {
        let value = ctx
            .secrets
            .get(name)
            .with_context(|| format!("no value for secret `{name}` of slot {}", ctx.slot))?;
        env.push_str(&format!("{name}={}\n", crate::envfile::quote_env(value)));
    }
    Ok(env)
}

/// The slot's networks file: each network the slot makes itself (`adopted`'s
/// for an adopted pool, else those of the rendered `compose` file) gets a subnet
/// of the slot's block, the one the file gave it so far where it had one.
fn networks_file(
    pool: &Pool,
    ctx: &SlotContext<'_>,
    compose: &str,
    adopted: Option<serde_json::Map<String, serde_json::Value>>,
    header: &str,
) -> Result<Option<String>> {
    let slot = ctx.slot;
    let Some(block) = pool.subnets.block(slot) else {
        return Ok(None);
    };
    // An override runs on a compose that merges (2.24.4 and later): the
    // subnet is enough. A whole file, or a materialised copy, may run on
    // 1.29, which replaces: the network's own definition goes along. A
    // template that renders no valid YAML is compose's to report.
    let parsed = if crate::model::is_override(compose) {
        serde_json::Value::Null
    } else {
        crate::model::yaml_to_json(compose).unwrap_or_default()
    };
    let keys = match &adopted {
        Some(networks) => networks.keys().cloned().collect(),
        None => crate::model::own_networks_of(&parsed),
    };
    if keys.is_empty() {
        return Ok(None);
    }
    let earlier = std::fs::read_to_string(pool.slot_dir(slot).join(crate::slot::NETWORKS_FILE))
        .map(|text| crate::pool::subnets::given_in(&text))
        .unwrap_or_default();
    let subnets = crate::pool::subnets::assign(block, slot, &keys, &earlier).map_err(|e| {
        fail(
            format!("pool {}: {e}", pool.name),
            format!(
                "give the slot fewer networks, or set `[pool] subnets = \"{}\"` in {} to let the engine choose",
                crate::pool::subnets::ENGINE,
                pool.origin()
            ),
        )
    })?;
    let header = header.replace(
        "(generated:",
        "(generated: each network's subnet of `[pool] subnets`;",
    );
    // A whole file's own definitions; for an override, what the adopted
    // project's model says of each network's ipam.
    let definitions = parsed
        .get("networks")
        .and_then(|n| n.as_object())
        .cloned()
        .or(adopted)
        .unwrap_or_default();
    Ok(Some(crate::pool::subnets::networks_file(
        &header,
        &subnets,
        &definitions,
        ctx.registry_id,
    )))
}

/// What went wrong in a render, in words rather than handlebars' debug text
/// (`Failed to access variable in strict mode Some("worker")`).
fn plain_reason(reason: &handlebars::RenderErrorReason) -> String {
    use handlebars::RenderErrorReason as R;
    match reason {
        R::MissingVariable(Some(var)) => format!("variable `{var}` is not defined"),
        R::MissingVariable(None) => "a variable is not defined".to_owned(),
        R::HelperNotFound(h) => format!("helper `{h}` does not exist"),
        R::PartialNotFound(p) => format!("partial `{p}` does not exist"),
        other => other.to_string(),
    }
}

/// The pool's compose template, as written.
pub(crate) fn compose_text(pool: &Pool) -> Result<String> {
    template_text(pool, COMPOSE_TEMPLATE)
}

/// One of the pool's templates (`COMPOSE_TEMPLATE` or `ENV_TEMPLATE`), as
/// written: embedded, or read from the pool's template folder.
fn template_text(pool: &Pool, name: &str) -> Result<String> {
    match &pool.templates {
        Templates::Embedded if name == COMPOSE_TEMPLATE => Ok(EMBEDDED_COMPOSE.to_owned()),
        Templates::Embedded if name == ENV_TEMPLATE => Ok(EMBEDDED_ENV.to_owned()),
        Templates::Embedded => Ok(EMBEDDED_PROMETHEUS.to_owned()),
        Templates::Adopt(_) if name == ENV_TEMPLATE => Ok(ADOPTED_ENV.to_owned()),
        Templates::Adopt(a) => Err(fail(
            format!(
                "pool adopts `{}`: it has no compose template",
                a.files.join("`, `")
            ),
            "`docker sandbox config` prints the compose model a slot runs",
        )),
        Templates::Dir(dir) => {
            let p = dir.join(name);
            std::fs::read_to_string(&p)
                .with_context(|| format!("failed to read template `{}`", p.display()))
        }
    }
}

/// A random password: 32 letters and digits, safe in env files, YAML and URLs.
pub(crate) fn random_password() -> Result<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("failed to get random bytes: {e}"))?;
    // 256 is not a multiple of 62; the slight bias is irrelevant at 190 bits.
    Ok(bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::slot_ports;
    use crate::pool::{Environment, from_toml};

    fn pool(text: &str) -> Pool {
        let env = Environment {
            home: Some("/home/u".into()),
            cwd: "/".into(),
            ..Environment::default()
        };
        from_toml(text, None, &env).unwrap()
    }

    /// `secret-<NAME>` for each `[secrets] random` name.
    fn secrets(pool: &Pool) -> SecretValues {
        pool.secrets
            .random
            .iter()
            .map(|n| (n.clone(), format!("secret-{n}")))
            .collect()
    }

    fn render(pool: &Pool, slot: u32) -> Rendered {
        let ports = slot_ports(pool, slot).unwrap();
        let ctx = SlotContext::new(pool, slot, &ports, "pw123", secrets(pool), "0123abcd");
        Renderer::new(pool).unwrap().render(pool, &ctx).unwrap()
    }

    fn env_map(text: &str) -> BTreeMap<String, String> {
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(|l| {
                let (k, v) = l
                    .split_once('=')
                    .unwrap_or_else(|| panic!("not KEY=VALUE: {l:?}"));
                (k.to_owned(), v.to_owned())
            })
            .collect()
    }

    #[test]
    fn the_default_compose_file_interpolates_only_what_its_env_file_defines_whatever_the_pool_name()
    {
        for name in ["ktrdr", "demo"] {
            let pool = pool(&format!("[pool]\nname = \"{name}\"\n"));
            let r = render(&pool, 6);
            let env = env_map(&r.env);
            let mut seen = 0;
            for line in r
                .compose
                .lines()
                .filter(|l| !l.trim_start().starts_with('#'))
            {
                let mut rest = line;
                while let Some(at) = rest.find("${") {
                    // `$${X}` is a literal `${X}` for the container's shell.
                    let literal = at > 0 && rest.as_bytes()[at - 1] == b'$';
                    let inner = &rest[at + 2..];
                    let end = inner.find('}').expect("a closed ${...}");
                    let var = &inner[..end];
                    rest = &inner[end..];
                    // `${X:-default}` needs no value.
                    if literal || var.contains(":-") {
                        continue;
                    }
                    seen += 1;
                    assert!(
                        env.contains_key(var),
                        "pool `{name}`: the compose file reads `${{{var}}}`, which its env file does not define"
                    );
                }
            }
            assert!(seen > 10, "{seen} variables in:\n{}", r.compose);
        }
    }

    #[test]
    fn default_env_file_has_every_variable_of_the_design() {
        let p = pool("");
        let env = env_map(&render(&p, 6).env);
        let expect = [
            ("SLOT_ID", "6"),
            ("SLOT_NUMBER", "6"),
            ("SANDBOX_PROFILE", "heavy"),
            ("COMPOSE_PROJECT_NAME", "ktrdr-slot-6"),
            ("KTRDR_API_PORT", "8006"),
            ("KTRDR_DB_PORT", "5438"),
            ("KTRDR_GRAFANA_PORT", "3006"),
            ("KTRDR_JAEGER_UI_PORT", "16692"),
            ("KTRDR_PROMETHEUS_PORT", "9096"),
            ("KTRDR_JAEGER_OTLP_GRPC_PORT", "4377"),
            ("KTRDR_JAEGER_OTLP_HTTP_PORT", "4378"),
            ("KTRDR_WORKER_PORT_1", "5060"),
            ("KTRDR_WORKER_PORT_8", "5067"),
            ("WORKER_COUNT_BACKTEST", "4"),
            ("WORKER_COUNT_TRAINING", "4"),
            ("DB_HOST", "localhost"),
            ("DB_PORT", "5438"),
            ("DB_NAME", "ktrdr"),
            ("DB_USER", "ktrdr"),
            ("DB_PASSWORD", "pw123"),
            ("KTRDR_DB_NAME", "ktrdr"),
            ("KTRDR_DB_USER", "ktrdr"),
            ("KTRDR_DB_PASSWORD", "pw123"),
            ("KTRDR_AUTH_JWT_SECRET", "secret-KTRDR_AUTH_JWT_SECRET"),
            ("KTRDR_SHARED_DIR", "/home/u/.ktrdr/shared"),
            ("KTRDR_DATA_DIR", "/home/u/.ktrdr/shared/data"),
            ("KTRDR_MODELS_DIR", "/home/u/.ktrdr/shared/models"),
            ("KTRDR_STRATEGIES_DIR", "/home/u/.ktrdr/shared/strategies"),
        ];
        for (k, v) in expect {
            assert_eq!(env.get(k).map(String::as_str), Some(v), "{k}");
        }
        assert!(!env.contains_key("KTRDR_WORKER_PORT_9"));
        for passed in ["ANTHROPIC_API_KEY", "KTRDR_FRED_API_KEY"] {
            assert!(!env.contains_key(passed), "{passed} is in the env file");
        }
    }

    #[test]
    fn default_compose_has_one_service_per_worker_and_binds_loopback() {
        let p = pool("");
        let light = render(&p, 1).compose;
        let heavy = render(&p, 6).compose;
        for svc in [
            "db:",
            "backend:",
            "mcp-local:",
            "jaeger:",
            "prometheus:",
            "grafana:",
        ] {
            assert!(light.contains(&format!("\n  {svc}")), "{svc} missing");
        }
        assert!(
            light.contains("\n  backtest-worker-1:") && light.contains("\n  training-worker-1:")
        );
        assert!(!light.contains("backtest-worker-2:"));
        assert!(
            heavy.contains("\n  backtest-worker-4:") && heavy.contains("\n  training-worker-4:")
        );
        assert!(heavy.contains("${KTRDR_WORKER_PORT_8}"));
        assert!(!heavy.contains("container_name"));
        for line in heavy
            .lines()
            .filter(|l| l.trim_start().starts_with("- \"") && l.contains("_PORT}:"))
        {
            assert!(
                line.contains("\"127.0.0.1:"),
                "published port not on loopback: {line}"
            );
        }
    }

    #[test]
    fn default_compose_labels_every_service_volume_and_network() {
        let p = pool("");
        let heavy = render(&p, 6).compose;
        for label in [
            "org.docker-sandbox.registry: \"0123abcd\"",
            "org.docker-sandbox.pool: \"ktrdr\"",
            "org.docker-sandbox.slot: \"6\"",
        ] {
            assert!(heavy.contains(&format!("\n  {label}\n")), "{label}");
        }
        // 14 services (8 workers), 3 named volumes, the default network.
        assert_eq!(heavy.matches("    labels: *sandbox-labels\n").count(), 18);
    }

    #[test]
    fn the_embedded_prometheus_config_lists_the_slots_backend_and_workers() {
        let p = pool("");
        let heavy = render(&p, 6);
        let [(name, text)] = heavy.extra.as_slice() else {
            panic!("{:?}", heavy.extra)
        };
        assert_eq!(*name, "prometheus.yml");
        assert_eq!(fingerprint_of(text), Some(heavy.fingerprint.as_str()));
        assert!(text.contains("\"backend:8000\""), "{text}");
        for target in [
            "backtest-worker-1:5060",
            "backtest-worker-4:5063",
            "training-worker-4:5067",
        ] {
            assert!(text.contains(&format!("\"{target}\"")), "{target}: {text}");
        }
        assert!(!text.contains("worker-5"));
        assert!(
            heavy
                .compose
                .contains("\"/home/u/.ktrdr/sandboxes/slot-6/prometheus.yml:/etc/prometheus/prometheus.yml:ro\""),
            "mounted from the slot folder"
        );
    }

    #[test]
    fn exists_looks_in_the_slots_worktree_and_its_answer_is_in_the_fingerprint() {
        let p = pool("");
        let ports = slot_ports(&p, 1).unwrap();
        let renderer = Renderer::new(&p).unwrap();
        let tree = tempfile::tempdir().unwrap();
        let render = |worktree: Option<&Path>| {
            let ctx = SlotContext {
                worktree,
                ..SlotContext::new(&p, 1, &ports, "pw", secrets(&p), "0123abcd")
            };
            renderer.render(&p, &ctx).unwrap()
        };
        let mount = "./deploy/shared/grafana/dashboards:/var/lib/grafana/dashboards:ro";
        let none = render(None);
        let bare = render(Some(tree.path()));
        assert!(!none.compose.contains(mount) && !bare.compose.contains(mount));
        assert_eq!(
            none.fingerprint, bare.fingerprint,
            "not the worktree's path"
        );
        std::fs::create_dir_all(tree.path().join("deploy/shared/grafana/dashboards")).unwrap();
        let with = render(Some(tree.path()));
        assert!(with.compose.contains(mount), "{}", with.compose);
        assert_ne!(with.fingerprint, bare.fingerprint);
    }

    #[test]
    fn random_secrets_are_appended_and_passed_ones_never_written() {
        let p = pool(
            "[secrets]\nrandom = [\"KTRDR_DB_PASSWORD\", \"KTRDR_AUTH_JWT_SECRET\", \"EXTRA_KEY\"]",
        );
        let env = env_map(&render(&p, 1).env);
        assert_eq!(env["EXTRA_KEY"], "secret-EXTRA_KEY");
        assert_eq!(env["KTRDR_DB_PASSWORD"], "pw123", "the slot's password");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(COMPOSE_TEMPLATE), "services: {}\n").unwrap();
        std::fs::write(dir.path().join(ENV_TEMPLATE), "API_KEY=x\n").unwrap();
        let p = pool(&format!(
            "gate = []\n[pool]\ntemplates = \"{}\"\n[secrets]\npass = [\"API_KEY\"]",
            dir.path().display()
        ));
        let ports = slot_ports(&p, 1).unwrap();
        let ctx = SlotContext::new(&p, 1, &ports, "pw", secrets(&p), "0123abcd");
        let msg = format!(
            "{:#}",
            Renderer::new(&p).unwrap().render(&p, &ctx).unwrap_err()
        );
        assert!(
            msg.contains("sets `API_KEY`, which [secrets] pass lists"),
            "{msg}"
        );
    }

    #[test]
    fn extra_env_is_appended() {
        let p = pool("[env]\nFEATURE_X = \"on\"");
        let env = env_map(&render(&p, 2).env);
        assert_eq!(env["FEATURE_X"], "on");
    }

    #[test]
    fn strict_mode_refuses_a_missing_variable() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(COMPOSE_TEMPLATE), "x: {{ports.nope}}\n").unwrap();
        std::fs::write(dir.path().join(ENV_TEMPLATE), "A=<{{slot}}>\n").unwrap();
        let p = pool(&format!(
            "gate = []\n[pool]\ntemplates = \"{}\"",
            dir.path().display()
        ));
        let ports = slot_ports(&p, 1).unwrap();
        let ctx = SlotContext::new(&p, 1, &ports, "pw", secrets(&p), "0123abcd");
        let msg = format!(
            "{:#}",
            Renderer::new(&p).unwrap().render(&p, &ctx).unwrap_err()
        );
        assert!(
            msg.contains("docker-compose.yml.hbs") && msg.contains("slot 1"),
            "{msg}"
        );
    }

    #[test]
    fn no_html_escaping() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(COMPOSE_TEMPLATE), "x: '{{pool}}'\n").unwrap();
        std::fs::write(dir.path().join(ENV_TEMPLATE), "A={{password}}\n").unwrap();
        let p = pool(&format!(
            "gate = []\n[pool]\ntemplates = \"{}\"",
            dir.path().display()
        ));
        let ports = slot_ports(&p, 1).unwrap();
        let ctx = SlotContext::new(&p, 1, &ports, "a<b>&'\"", secrets(&p), "0123abcd");
        let r = Renderer::new(&p).unwrap().render(&p, &ctx).unwrap();
        assert_eq!(r.env.lines().nth(1), Some("A='a<b>&\\'\"'"));
        assert_eq!(fingerprint_of(&r.env), Some(r.fingerprint.as_str()));
    }

    #[test]
    fn the_fingerprint_follows_every_input() {
        let p = pool("");
        let ports = slot_ports(&p, 1).unwrap();
        let renderer = Renderer::new(&p).unwrap();
        let fp = |pool: &Pool, pw: &str| {
            let mut values = secrets(pool);
            values.values_mut().for_each(|v| v.push_str(pw));
            renderer
                .render(
                    pool,
                    &SlotContext::new(pool, 1, &ports, pw, values, "0123abcd"),
                )
                .unwrap()
        };
        let a = fp(&p, "pw");
        assert_eq!(a.fingerprint, fp(&p, "pw").fingerprint, "stable");
        assert_eq!(fingerprint_of(&a.compose), Some(a.fingerprint.as_str()));
        assert_eq!(
            a.fingerprint,
            fp(&p, "other").fingerprint,
            "not the secrets: the fingerprint is in files anyone may read"
        );
        let mut q = p.clone();
        q.shared_dir = "/elsewhere".into();
        assert_ne!(a.fingerprint, fp(&q, "pw").fingerprint, "the context");
        let mut q = p.clone();
        q.env.insert("X".into(), "1".into());
        assert_ne!(a.fingerprint, fp(&q, "pw").fingerprint, "[env]");
        let mut other = Renderer::new(&p).unwrap();
        other.texts[0].push(' ');
        assert_ne!(
            a.fingerprint,
            other
                .render(
                    &p,
                    &SlotContext::new(&p, 1, &ports, "pw", secrets(&p), "0123abcd")
                )
                .unwrap()
                .fingerprint,
            "a template's text"
        );
    }

    #[test]
    fn passwords_are_random_and_plain() {
        let a = random_password().unwrap();
        let b = random_password().unwrap();
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()));
    }
}
