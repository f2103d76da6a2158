//! The images a project's services run, read from compose's own `config`
//! output (v2 has `config --images`, legacy 1.29 has not; the model has them
//! for both): the `image:` of each service after interpolation, or the name
//! compose gives what it builds. It does not ask an engine what it has.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Dialect, Model};

/// One image of the stack, with the services that run it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct StackImage {
    pub(crate) image: String,
    pub(crate) services: Vec<String>,
    /// A service builds it (`build:`): compose builds it on the engine when
    /// the engine lacks it, streaming the build context there.
    pub(crate) built: bool,
}

/// The images of the services `active` profiles enable (those without
/// profiles always), in name order.
pub(crate) fn stack_images(model: &Model, active: &[String]) -> Vec<StackImage> {
    let mut images: BTreeMap<String, StackImage> = BTreeMap::new();
    for (name, service) in &model.services {
        if !service.starts_with(active) {
            continue;
        }
        let raw = &model.raw["services"][name];
        let built = !raw["build"].is_null() || raw["pull_policy"] == "build";
        let image = match raw["image"].as_str().filter(|i| !i.is_empty()) {
            Some(image) => image.to_owned(),
            None if built => built_name(model, name),
            // Compose refuses a service with neither: nothing runs it.
            None => continue,
        };
        let entry = images.entry(image.clone()).or_insert_with(|| StackImage {
            image,
            services: Vec::new(),
            built: false,
        });
        entry.services.push(name.clone());
        entry.built |= built;
    }
    images.into_values().collect()
}

/// The name compose tags a built image with when the service names none:
/// `<project>-<service>` for v2, `<project>_<service>` for legacy 1.29.
fn built_name(model: &Model, service: &str) -> String {
    match model.dialect {
        Dialect::Json => format!("{}-{service}", model.project),
        Dialect::Legacy => format!("{}_{service}", model.project.trim_start_matches(['-', '_'])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Service;
    use serde_json::json;

    fn model(dialect: Dialect, raw: serde_json::Value) -> Model {
        let services = raw["services"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(name, s)| {
                let profiles = s["profiles"]
                    .as_array()
                    .map(|p| p.iter().map(|p| p.as_str().unwrap().to_owned()).collect())
                    .unwrap_or_default();
                (
                    name.clone(),
                    Service {
                        name: name.clone(),
                        profiles,
                        ..Service::default()
                    },
                )
            })
            .collect();
        Model {
            project: "demo-slot-1".into(),
            services,
            volumes: BTreeMap::new(),
            networks: BTreeMap::new(),
            dialect,
            raw,
            compose_version: "5.6.1".into(),
        }
    }

    #[test]
    fn images_come_from_services_and_builds_get_compose_names() {
        let raw = json!({"services": {
            "api": {"image": "demo/api:1"},
            "worker": {"image": "demo/api:1"},
            "web": {"build": {"context": "/w"}},
            "tagged": {"build": {"context": "/w"}, "image": "demo/tagged:dev"},
            "debug": {"image": "busybox:1", "profiles": ["debug"]},
        }});
        let got = stack_images(&model(Dialect::Json, raw.clone()), &[]);
        assert_eq!(
            got,
            [
                StackImage {
                    image: "demo-slot-1-web".into(),
                    services: vec!["web".into()],
                    built: true
                },
                StackImage {
                    image: "demo/api:1".into(),
                    services: vec!["api".into(), "worker".into()],
                    built: false
                },
                StackImage {
                    image: "demo/tagged:dev".into(),
                    services: vec!["tagged".into()],
                    built: true
                },
            ]
        );
        let legacy = stack_images(&model(Dialect::Legacy, raw.clone()), &["debug".into()]);
        let names: Vec<&str> = legacy.iter().map(|i| i.image.as_str()).collect();
        assert_eq!(
            names,
            [
                "busybox:1",
                "demo-slot-1_web",
                "demo/api:1",
                "demo/tagged:dev"
            ]
        );
    }
}
