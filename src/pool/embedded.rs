//! The built-in pool, KTRDR's: the slots, profiles, ports and readiness
//! checks a pool has where the project file leaves them out.

use std::collections::BTreeMap;

use super::{AfterUp, Count, GateCheck, PortRule, Profile, Secrets, WorkerCounts};

/// The pool's name, and so its env prefix, its compose projects and its
/// folders under the home folder.
pub(super) const DEFAULT_NAME: &str = "ktrdr";
/// The folders of the shared folder every slot mounts.
pub(super) const DEFAULT_SHARED_FOLDERS: [&str; 3] = ["data", "models", "strategies"];

/// The KTRDR port map of the seeds, with the OTLP pair on stride 10 so that no
/// slot's HTTP port is the next slot's gRPC port.
const DEFAULT_PORTS: &[(&str, u32, u32)] = &[
    ("api", 8000, 1),
    ("db", 5432, 1),
    ("grafana", 3000, 1),
    ("jaeger_ui", 16686, 1),
    ("prometheus", 9090, 1),
    ("jaeger_otlp_grpc", 4317, 10),
    ("jaeger_otlp_http", 4318, 10),
];
pub(super) const DEFAULT_WORKER_PORTS: PortRule = PortRule {
    base: 5000,
    stride: 10,
};
pub(super) const DEFAULT_GATE_TIMEOUT: u64 = 120;

pub(super) fn default_ports() -> Vec<(String, PortRule)> {
    DEFAULT_PORTS
        .iter()
        .map(|&(n, base, stride)| (n.to_owned(), PortRule { base, stride }))
        .collect()
}

pub(super) fn default_slots() -> BTreeMap<u32, Profile> {
    (1..=6)
        .map(|id| {
            let p = match id {
                5 => Profile::Standard,
                6 => Profile::Heavy,
                _ => Profile::Light,
            };
            (id, p)
        })
        .collect()
}

pub(super) fn default_profiles() -> BTreeMap<Profile, WorkerCounts> {
    Profile::ALL
        .into_iter()
        .map(|p| {
            let n = match p {
                Profile::Light => 1,
                Profile::Standard => 2,
                Profile::Heavy => 4,
            };
            (
                p,
                [("backtest".to_owned(), n), ("training".to_owned(), n)].into(),
            )
        })
        .collect()
}

/// KTRDR's secrets: the database password and the JWT signing key are the
/// slot's own; the API keys come from the user's environment, as kinfra
/// takes them from 1Password into compose's environment only.
pub(super) fn default_secrets() -> Secrets {
    Secrets {
        random: vec!["KTRDR_DB_PASSWORD".into(), "KTRDR_AUTH_JWT_SECRET".into()],
        pass: vec!["ANTHROPIC_API_KEY".into(), "KTRDR_FRED_API_KEY".into()],
    }
}

pub(super) fn default_gate() -> Vec<GateCheck> {
    vec![
        GateCheck::Tcp { port: "db".into() },
        GateCheck::Http {
            port: "api".into(),
            path: "/api/v1/health".into(),
            status: 200,
        },
        GateCheck::HttpCount {
            port: "api".into(),
            path: "/api/v1/workers".into(),
            count: Count::Workers,
        },
    ]
}

/// The steps after start of the embedded pool: KTRDR's migrations, which
/// create the tables the backend and workers use (the application never
/// does), with the image's alembic and the mounted `./alembic`.
pub(super) fn default_after_up() -> Vec<AfterUp> {
    vec![AfterUp {
        service: "backend".into(),
        run: ["/app/.venv/bin/alembic", "upgrade", "head"]
            .map(str::to_owned)
            .to_vec(),
    }]
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::{Environment, Templates, from_toml};

    fn env() -> Environment {
        Environment {
            home: Some("/home/u".into()),
            cwd: "/repo".into(),
            ..Environment::default()
        }
    }

    #[test]
    fn default_pool_is_the_ktrdr_pool() {
        let pool = from_toml("", None, &env()).unwrap();
        assert_eq!(pool.name, "ktrdr");
        assert_eq!(pool.prefix(), "KTRDR");
        assert_eq!(pool.project(3), "ktrdr-slot-3");
        assert_eq!(pool.state_dir, Path::new("/home/u/.ktrdr/sandboxes"));
        assert_eq!(pool.shared_dir, Path::new("/home/u/.ktrdr/shared"));
        let profiles: Vec<_> = pool.slots.values().map(|p| p.as_str()).collect();
        assert_eq!(
            profiles,
            ["light", "light", "light", "light", "standard", "heavy"]
        );
        assert_eq!(pool.workers(1)["backtest"], 1);
        assert_eq!(pool.workers(5)["training"], 2);
        assert_eq!(pool.workers(6)["backtest"], 4);
        assert_eq!(pool.gate.len(), 3);
        assert_eq!(pool.after_up.len(), 1);
        assert_eq!(pool.after_up[0].service, "backend");
        assert_eq!(
            pool.after_up[0].run,
            ["/app/.venv/bin/alembic", "upgrade", "head"]
        );
        assert_eq!(pool.templates, Templates::Embedded);
        assert_eq!(
            pool.secrets.random,
            ["KTRDR_DB_PASSWORD", "KTRDR_AUTH_JWT_SECRET"]
        );
        assert_eq!(
            pool.secrets.pass,
            ["ANTHROPIC_API_KEY", "KTRDR_FRED_API_KEY"]
        );
    }
}
