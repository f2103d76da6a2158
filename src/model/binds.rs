//! Bind mounts whose source does not exist on this host. Compose would
//! create each one as an empty folder owned by root (in the worktree, for a
//! relative source) and start the service without what it expects there, so
//! they are found before compose runs.

use std::path::{Path, PathBuf};

use super::{Model, MountType};

/// A bind mount of a service whose source is missing.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct MissingBind {
    pub(crate) service: String,
    /// Absolute, as compose resolved it.
    pub(crate) source: PathBuf,
    pub(crate) target: String,
}

/// What the pool makes itself, so that a bind of it need not exist yet.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Made<'a> {
    /// Folders made before compose runs (the shared folders): a bind of one
    /// of them, or of a folder above one, is made with it.
    pub(crate) folders: &'a [PathBuf],
    /// Folders whose contents the pool writes (a slot's own folder).
    pub(crate) within: &'a [&'a Path],
}

/// The bind sources of `model` that do not exist and that the pool does not
/// make, service by service. Services none of whose profiles is `active`
/// (`active_profiles`) do not start and are skipped.
pub(crate) fn missing_binds(model: &Model, made: Made<'_>, active: &[String]) -> Vec<MissingBind> {
    let mut missing = Vec::new();
    for (name, service) in &model.services {
        if !service.starts_with(active) {
            continue;
        }
        for m in &service.volumes {
            let (MountType::Bind, Some(source)) = (m.kind, &m.source) else {
                continue;
            };
            let source = PathBuf::from(source);
            // Compose gives absolute sources; one that is not says nothing
            // this check could look up.
            if !source.is_absolute() || source.exists() || is_made(&source, made) {
                continue;
            }
            missing.push(MissingBind {
                service: name.clone(),
                source,
                target: m.target.clone(),
            });
        }
    }
    missing
}

fn is_made(source: &Path, made: Made<'_>) -> bool {
    made.folders.iter().any(|f| f.starts_with(source))
        || made.within.iter().any(|d| source.starts_with(d))
}

/// The profiles `COMPOSE_PROFILES` turns on, as compose reads it.
pub(crate) fn active_profiles() -> Vec<String> {
    std::env::var("COMPOSE_PROFILES")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `./monitoring/x.yml` for a source inside `directory`, else the path.
pub(crate) fn shown(source: &Path, directory: &Path) -> String {
    match source.strip_prefix(directory) {
        Ok(rel) => format!("./{}", rel.display()),
        Err(_) => source.display().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::model::{Dialect, Mount, Service};

    fn bind(source: &Path, target: &str) -> Mount {
        Mount {
            kind: MountType::Bind,
            source: Some(source.display().to_string()),
            target: target.into(),
            outside_project: false,
        }
    }

    fn model(services: Vec<Service>) -> Model {
        Model {
            project: "p".into(),
            services: services.into_iter().map(|s| (s.name.clone(), s)).collect(),
            volumes: BTreeMap::new(),
            networks: BTreeMap::new(),
            dialect: Dialect::Json,
            raw: serde_json::Value::Null,
            compose_version: "5.6.1".into(),
        }
    }

    #[test]
    fn only_missing_sources_the_pool_does_not_make_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("code")).unwrap();
        let shared = d.join("shared");
        let slot = d.join("state/slot-1");
        let folders = [shared.join("data"), shared.join("models")];
        let web = Service {
            name: "web".into(),
            volumes: vec![
                bind(&d.join("code"), "/app"),
                bind(&d.join("missing"), "/x"),
                bind(&shared.join("data"), "/data"),
                bind(&shared, "/shared"),
                bind(&shared.join("data/sub"), "/sub"),
                bind(&slot.join("prometheus.yml"), "/etc/p.yml"),
                Mount {
                    kind: MountType::Volume,
                    source: Some("pgdata".into()),
                    target: "/v".into(),
                    outside_project: false,
                },
            ],
            ..Service::default()
        };
        let later = Service {
            name: "later".into(),
            profiles: vec!["debug".into()],
            volumes: vec![bind(&d.join("gone"), "/g")],
            ..Service::default()
        };
        let made = Made {
            folders: &folders,
            within: &[slot.as_path()],
        };
        let model = model(vec![web, later]);
        let found = missing_binds(&model, made, &[]);
        assert_eq!(
            found,
            [
                MissingBind {
                    service: "web".into(),
                    source: d.join("missing"),
                    target: "/x".into(),
                },
                MissingBind {
                    service: "web".into(),
                    source: shared.join("data/sub"),
                    target: "/sub".into(),
                },
            ]
        );
        let debug = missing_binds(&model, made, &["debug".into()]);
        assert_eq!(debug.len(), 3, "{debug:?}");
        assert_eq!(debug[0].service, "later");
        assert_eq!(missing_binds(&model, made, &["*".into()]).len(), 3);
        assert_eq!(shown(&d.join("missing"), d), "./missing");
        assert_eq!(shown(Path::new("/elsewhere/x"), d), "/elsewhere/x");
    }
}
