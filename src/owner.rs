//! Whose a container, volume or network is: this registry's own (its id on
//! our labels, or compose's config_files naming this state folder's slot
//! file), or another's. The one place that decides what may be removed; the
//! engine module asks it, and lists and removes.

use std::path::{Path, PathBuf};

use crate::engine::{Container, Marks, Removed, Resource};

/// This registry, as its resources show it: its id on our labels, and the
/// slot's compose file that compose names on the containers it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Owner {
    /// None for a registry that never wrote one: nothing carries it.
    pub(crate) registry: Option<String>,
    pub(crate) slot_file: PathBuf,
}

impl Owner {
    /// A container is ours when it carries no other registry's id and either
    /// carries ours or was started from our slot file; one started from other
    /// files (a hand-started project of the same name, a copy of the state
    /// folder) is not.
    pub(crate) fn owns_container(&self, c: &Container) -> bool {
        let by_id = match (&c.marks.registry, &self.registry) {
            (Some(theirs), Some(ours)) if theirs == ours => true,
            (Some(_), _) => return false,
            (None, _) => false,
        };
        if c.marks.config_files.is_empty() {
            return by_id;
        }
        c.marks.config_files.iter().any(|f| self.is_slot_file(f))
    }

    /// A volume or network is ours when it carries our id; one without any
    /// registry id (made before ids, or by a template without our labels) is
    /// ours only when one of `ours`, our containers, uses it.
    pub(crate) fn owns(&self, r: &Resource, kind: Kind, ours: &[&Container]) -> bool {
        match (&r.marks.registry, &self.registry) {
            (Some(theirs), Some(mine)) => theirs == mine,
            (Some(_), None) => false,
            (None, _) => ours.iter().any(|c| match kind {
                Kind::Volume => c.volumes.contains(&r.name),
                _ => c.networks.contains(&r.name),
            }),
        }
    }

    fn is_slot_file(&self, file: &Path) -> bool {
        if file == self.slot_file {
            return true;
        }
        // The same file by another spelling (a symlinked state folder).
        match (file.canonicalize(), self.slot_file.canonicalize()) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Kind {
    Container,
    Volume,
    Network,
}

impl Kind {
    fn noun(self, n: usize) -> String {
        let word = match self {
            Kind::Container => "container",
            Kind::Volume => "volume",
            Kind::Network => "network",
        };
        format!("{n} {word}{}", if n == 1 { "" } else { "s" })
    }
}

/// A container, volume or network of a slot's project that this registry
/// did not start, and so leaves alone.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct LeftAlone {
    pub(crate) kind: Kind,
    pub(crate) name: String,
    /// The registry id it carries; none for a hand-started project.
    pub(crate) registry: Option<String>,
    /// The state folder of the registry that started it, when its compose
    /// file tells (`<state>/slot-N/docker-compose.yml`).
    pub(crate) state_dir: Option<PathBuf>,
    /// The compose files it was started from (containers only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) config_files: Vec<PathBuf>,
}

/// What a project holds, sorted by whose it is.
#[derive(Debug, Clone, Default)]
pub(crate) struct Survey {
    pub(crate) containers: Vec<Container>,
    pub(crate) volumes: Vec<Resource>,
    pub(crate) networks: Vec<Resource>,
    pub(crate) foreign: Vec<LeftAlone>,
}

impl Survey {
    /// Sorts a project's resources into this registry's own and the others.
    pub(crate) fn sort(
        owner: &Owner,
        containers: Vec<Container>,
        volumes: Vec<Resource>,
        networks: Vec<Resource>,
    ) -> Survey {
        let (ours, theirs): (Vec<Container>, Vec<Container>) = containers
            .into_iter()
            .partition(|c| owner.owns_container(c));
        let mut foreign: Vec<LeftAlone> = theirs
            .iter()
            .map(|c| LeftAlone::new(Kind::Container, &c.name, &c.marks))
            .collect();
        let refs: Vec<&Container> = ours.iter().collect();
        let mut keep = |list: Vec<Resource>, kind: Kind| -> Vec<Resource> {
            let (mine, others): (Vec<Resource>, Vec<Resource>) =
                list.into_iter().partition(|r| owner.owns(r, kind, &refs));
            foreign.extend(
                others
                    .iter()
                    .map(|r| LeftAlone::new(kind, &r.name, &r.marks)),
            );
            mine
        };
        let volumes = keep(volumes, Kind::Volume);
        let networks = keep(networks, Kind::Network);
        Survey {
            containers: ours,
            volumes,
            networks,
            foreign,
        }
    }

    /// This registry's own, counted.
    pub(crate) fn ours(&self) -> Removed {
        Removed {
            containers: self.containers.len(),
            volumes: self.volumes.len(),
            networks: self.networks.len(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ours() == Removed::default() && self.foreign.is_empty()
    }
}

impl LeftAlone {
    fn new(kind: Kind, name: &str, marks: &Marks) -> LeftAlone {
        LeftAlone {
            kind,
            name: name.to_owned(),
            registry: marks.registry.clone(),
            state_dir: marks.config_files.iter().find_map(|f| state_dir_of(f)),
            config_files: marks.config_files.clone(),
        }
    }
}

/// `<state>/slot-N/docker-compose.yml` to `<state>`.
pub(crate) fn state_dir_of(file: &Path) -> Option<PathBuf> {
    let slot_dir = file.parent()?;
    let n = slot_dir.file_name()?.to_str()?.strip_prefix("slot-")?;
    (file.file_name()? == "docker-compose.yml" && n.parse::<u32>().is_ok())
        .then(|| slot_dir.parent().map(Path::to_owned))
        .flatten()
}

/// One line (and a hint) on what was left alone of `project`, for people;
/// `None` when nothing was.
pub(crate) fn describe_left_alone(project: &str, left: &[LeftAlone]) -> Option<String> {
    if left.is_empty() {
        return None;
    }
    let counts: Vec<String> = [Kind::Container, Kind::Volume, Kind::Network]
        .into_iter()
        .map(|k| (k, left.iter().filter(|l| l.kind == k).count()))
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| k.noun(n))
        .collect();
    // A registry's state folder, as any of its containers names it.
    let folder = |id: &str| {
        left.iter()
            .filter(|l| l.registry.as_deref() == Some(id))
            .find_map(|l| l.state_dir.clone())
    };
    let mut whose: Vec<String> = Vec::new();
    for l in left {
        let w = match (&l.registry, l.config_files.first()) {
            (Some(id), _) => match folder(id) {
                Some(dir) => format!("another registry (state folder `{}`)", dir.display()),
                None => format!("another registry (id {id})"),
            },
            // Another state folder's slot file, from templates without our
            // labels; else a compose file of someone's own.
            (None, Some(file)) => match &l.state_dir {
                Some(dir) => format!(
                    "the state folder `{}` (its files carry no docker sandbox labels)",
                    dir.display()
                ),
                None => format!(
                    "no registry: a project started by hand or by another tool, from `{}`",
                    file.display()
                ),
            },
            (None, None) => "no registry: they carry no docker sandbox labels".to_owned(),
        };
        if !whose.contains(&w) {
            whose.push(w);
        }
    }
    let names: Vec<&str> = left.iter().map(|l| l.name.as_str()).collect();
    Some(format!(
        "left alone: {} of `{project}` that belong to {}\n\
         hint: docker sandbox removes only what this state folder started; if they are \
         stale, remove them from their own state folder, or by hand ({})",
        join_and(&counts),
        whose.join(" and "),
        names.join(", ")
    ))
}

fn join_and(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctr(name: &str, registry: Option<&str>, files: &[&str], volumes: &[&str]) -> Container {
        Container {
            id: name.into(),
            name: name.into(),
            project: "demo-slot-1".into(),
            service: "db".into(),
            state: "running".into(),
            status: "Up 1 minute".into(),
            ports: vec![],
            marks: Marks {
                registry: registry.map(str::to_owned),
                config_files: files.iter().map(PathBuf::from).collect(),
            },
            volumes: volumes.iter().map(|v| v.to_string()).collect(),
            networks: vec!["demo-slot-1_default".into()],
        }
    }

    fn res(name: &str, registry: Option<&str>) -> Resource {
        Resource {
            id: name.into(),
            name: name.into(),
            project: "demo-slot-1".into(),
            marks: Marks {
                registry: registry.map(str::to_owned),
                config_files: vec![],
            },
        }
    }

    const MINE: &str = "/a/state/slot-1/docker-compose.yml";
    const THEIRS: &str = "/b/state/slot-1/docker-compose.yml";

    fn owner() -> Owner {
        Owner {
            registry: Some("aaaa".into()),
            slot_file: MINE.into(),
        }
    }

    #[test]
    fn a_container_is_ours_by_our_id_or_our_slot_file_and_never_by_its_name() {
        let o = owner();
        assert!(o.owns_container(&ctr("ours", Some("aaaa"), &[MINE], &[])));
        assert!(o.owns_container(&ctr("labels only", Some("aaaa"), &[], &[])));
        // A template without our labels: compose's own label tells.
        assert!(o.owns_container(&ctr("no labels", None, &[MINE], &[])));
        // An adopted pool runs the worktree's files and then the slot file.
        assert!(o.owns_container(&ctr("adopted", None, &["/w/compose.yaml", MINE], &[])));
        assert!(!o.owns_container(&ctr("other registry", Some("bbbb"), &[MINE], &[])));
        assert!(!o.owns_container(&ctr("other folder", None, &[THEIRS], &[])));
        assert!(!o.owns_container(&ctr("hand-started", None, &["/x/compose.yml"], &[])));
        assert!(!o.owns_container(&ctr("copied state folder", Some("aaaa"), &[THEIRS], &[])));
        assert!(!o.owns_container(&ctr("nothing", None, &[], &[])));
        let no_id = Owner {
            registry: None,
            slot_file: MINE.into(),
        };
        assert!(no_id.owns_container(&ctr("old", None, &[MINE], &[])));
        assert!(!no_id.owns_container(&ctr("new", Some("aaaa"), &[MINE], &[])));
    }

    #[test]
    fn volumes_and_networks_are_ours_by_our_id_or_through_our_containers() {
        let o = owner();
        let c = ctr("c", None, &[MINE], &["demo-slot-1_old"]);
        let survey = Survey::sort(
            &o,
            vec![
                c.clone(),
                ctr("theirs", Some("bbbb"), &[THEIRS], &["demo-slot-1_data"]),
            ],
            vec![
                res("demo-slot-1_mine", Some("aaaa")),
                res("demo-slot-1_old", None),
                res("demo-slot-1_data", Some("bbbb")),
                res("demo-slot-1_stray", None),
            ],
            vec![
                res("demo-slot-1_default", None),
                res("demo-slot-1_x", Some("bbbb")),
            ],
        );
        let names = |l: &[Resource]| l.iter().map(|r| r.name.clone()).collect::<Vec<_>>();
        assert_eq!(survey.containers, [c]);
        assert_eq!(
            names(&survey.volumes),
            ["demo-slot-1_mine", "demo-slot-1_old"]
        );
        assert_eq!(names(&survey.networks), ["demo-slot-1_default"]);
        let left: Vec<(Kind, &str, Option<&str>)> = survey
            .foreign
            .iter()
            .map(|l| (l.kind, l.name.as_str(), l.registry.as_deref()))
            .collect();
        assert_eq!(
            left,
            [
                (Kind::Container, "theirs", Some("bbbb")),
                (Kind::Volume, "demo-slot-1_data", Some("bbbb")),
                (Kind::Volume, "demo-slot-1_stray", None),
                (Kind::Network, "demo-slot-1_x", Some("bbbb")),
            ]
        );
        assert_eq!(
            survey.foreign[0].state_dir.as_deref(),
            Some(Path::new("/b/state"))
        );
        let text = describe_left_alone("demo-slot-1", &survey.foreign).unwrap();
        assert!(
            text.starts_with(
                "left alone: 1 container, 2 volumes and 1 network of `demo-slot-1` that belong to \
                 another registry (state folder `/b/state`) and no registry"
            ),
            "{text}"
        );
        assert!(text.contains("\nhint: "), "{text}");
        assert_eq!(describe_left_alone("demo-slot-1", &[]), None);
    }

    #[test]
    fn an_unlabelled_container_of_another_state_folder_is_named_by_that_folder() {
        let survey = Survey::sort(
            &owner(),
            vec![
                ctr("theirs", None, &[THEIRS], &[]),
                ctr("by hand", None, &["/x/compose.yml"], &[]),
            ],
            vec![],
            vec![],
        );
        let text = describe_left_alone("demo-slot-1", &survey.foreign).unwrap();
        assert!(
            text.starts_with(
                "left alone: 2 containers of `demo-slot-1` that belong to the state folder \
                 `/b/state` (its files carry no docker sandbox labels) and no registry: a \
                 project started by hand or by another tool, from `/x/compose.yml`\n"
            ),
            "{text}"
        );
    }
}
