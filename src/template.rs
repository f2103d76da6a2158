//! Rendering a slot's files from the pool's Handlebars templates: strict mode (a
//! missing variable is an error), no HTML escaping. It writes nothing.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use handlebars::{Handlebars, handlebars_helper};
use serde::Serialize;

use crate::engine::{POOL_LABEL, REGISTRY_LABEL, SLOT_LABEL};
use crate::error::fail;
use crate::pool::{COMPOSE_TEMPLATE, ENV_TEMPLATE, Pool, Templates};
use crate::pool::{SlotPorts, Worker};

const EMBEDDED_COMPOSE: &str = include_str!("../templates/docker-compose.yml.hbs");
const EMBEDDED_ENV: &str = include_str!("../templates/env.sandbox.hbs");
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
    /// The slot's database password, random per slot.
    pub(crate) password: &'a str,
    /// The registry's id, for the `org.docker-sandbox.registry` label.
    pub(crate) registry_id: &'a str,
    /// The labels every service, named volume and network must carry, so that
    /// this registry knows its own: `{{#each labels}}{{@key}}: "{{this}}"{{/each}}`.
    pub(crate) labels: BTreeMap<&'static str, String>,
    /// The worktree that holds the slot: an adopted pool's slot runs the
    /// compose files of that worktree.
    #[serde(skip)]
    pub(crate) worktree: Option<&'a Path>,
}

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
        registry_id: &'a str,
    ) -> Self {
        let prefix = pool.prefix();
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
            password,
            registry_id,
            labels,
            worktree: None,
        }
    }
}

/// The two files of a slot, rendered. Both start with the fingerprint line.
#[derive(Debug)]
pub(crate) struct Rendered {
    pub(crate) compose: String,
    pub(crate) env: String,
    /// Of the inputs: both templates' texts, the whole context, `[env]`.
    pub(crate) fingerprint: String,
}

pub(crate) struct Renderer {
    hb: Handlebars<'static>,
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

impl Renderer {
    pub(crate) fn new(pool: &Pool) -> Result<Renderer> {
        let mut hb = Handlebars::new();
        hb.set_strict_mode(true);
        hb.register_escape_fn(handlebars::no_escape);
        hb.register_helper("upper", Box::new(upper));
        let origin = match &pool.templates {
            Templates::Embedded => "embedded".to_owned(),
            Templates::Dir(dir) => dir.display().to_string(),
            Templates::Adopt(_) => "adopted".to_owned(),
        };
        // An adopted pool's compose file is made from its model, not a template.
        let names: &[&str] = match &pool.templates {
            Templates::Adopt(_) => &[ENV_TEMPLATE],
            _ => &[COMPOSE_TEMPLATE, ENV_TEMPLATE],
        };
        let mut texts = Vec::new();
        for &name in names {
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
        Ok(Renderer { hb, texts })
    }

    pub(crate) fn render(&self, pool: &Pool, ctx: &SlotContext<'_>) -> Result<Rendered> {
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
        // The whole context but the password: the fingerprint sits in files
        // anyone may read, and a password only changes with a new claim,
        // whose stack starts from nothing anyway.
        let mut context = serde_json::to_value(ctx).context("failed to serialise the context")?;
        if let Some(map) = context.as_object_mut() {
            map.remove("password");
        }
        let context = context.to_string();
        let extra = serde_json::to_string(&pool.env).context("failed to serialise [env]")?;
        let adopted = match pool.adopted() {
            Some(a) => Some(crate::pool::adopt::slot_file(pool, a, ctx)?),
            None => None,
        };
        let mut parts: Vec<&[u8]> = vec![b"docker-sandbox render 1"];
        parts.extend(self.texts.iter().map(|t| t.as_bytes()));
        parts.extend([context.as_bytes(), extra.as_bytes()]);
        if let Some(body) = &adopted {
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
        let compose = match adopted {
            Some(body) => header.clone() + &body,
            None => header.clone() + &render(COMPOSE_TEMPLATE)?,
        };
        let mut env = header + &crate::envfile::quote_env_text(&render(ENV_TEMPLATE)?);
        if !pool.env.is_empty() {
            if !env.ends_with('\n') {
                env.push('\n');
            }
            env.push_str("# [env] of the project file\n");
            for (k, v) in &pool.env {
                env.push_str(&format!("{k}={}\n", crate::envfile::quote_env(v)));
            }
        }
        Ok(Rendered {
            compose,
            env,
            fingerprint,
        })
    }
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
        Templates::Embedded => Ok(EMBEDDED_ENV.to_owned()),
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

    fn render(pool: &Pool, slot: u32) -> Rendered {
        let ports = slot_ports(pool, slot).unwrap();
        let ctx = SlotContext::new(pool, slot, &ports, "pw123", "0123abcd");
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
            ("KTRDR_SHARED_DIR", "/home/u/.ktrdr/shared"),
        ];
        for (k, v) in expect {
            assert_eq!(env.get(k).map(String::as_str), Some(v), "{k}");
        }
        assert!(!env.contains_key("KTRDR_WORKER_PORT_9"));
    }

    #[test]
    fn default_compose_has_one_service_per_worker_and_binds_loopback() {
        let p = pool("");
        let light = render(&p, 1).compose;
        let heavy = render(&p, 6).compose;
        for svc in ["db:", "backend:", "jaeger:", "prometheus:", "grafana:"] {
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
        // 13 services (8 workers), 3 named volumes, the default network.
        assert_eq!(heavy.matches("    labels: *sandbox-labels\n").count(), 17);
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
        let ctx = SlotContext::new(&p, 1, &ports, "pw", "0123abcd");
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
        let ctx = SlotContext::new(&p, 1, &ports, "a<b>&'\"", "0123abcd");
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
            renderer
                .render(pool, &SlotContext::new(pool, 1, &ports, pw, "0123abcd"))
                .unwrap()
        };
        let a = fp(&p, "pw");
        assert_eq!(a.fingerprint, fp(&p, "pw").fingerprint, "stable");
        assert_eq!(fingerprint_of(&a.compose), Some(a.fingerprint.as_str()));
        assert_eq!(
            a.fingerprint,
            fp(&p, "other").fingerprint,
            "not the password: the fingerprint is in files anyone may read"
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
                .render(&p, &SlotContext::new(&p, 1, &ports, "pw", "0123abcd"))
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
