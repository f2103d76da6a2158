//! The registry: `<state>/registry.json`, schema v2. Reading (with v1 migration),
//! and every read-modify-write under an exclusive lock on `registry.lock`, written
//! by atomic replace. It decides nothing about slots beyond picking a free one,
//! and prints nothing: a wait for a lock is told to the command's `OnLockWait`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{UserError, code, fail};
use crate::fsutil;
use crate::pool::{Pool, Profile, WorkerCounts};

pub(crate) const VERSION: u64 = 2;
pub(crate) const FILE: &str = "registry.json";
const LOCK_FILE: &str = "registry.lock";
const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(30);

/// The whole registry as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Registry {
    pub(crate) version: u64,
    pub(crate) pool: String,
    /// Stable and random, made on the first write: every container, volume
    /// and network a slot starts carries it (`org.docker-sandbox.registry`),
    /// so that this registry removes only its own, never another state
    /// folder's of the same pool name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) id: Option<String>,
    #[serde(default)]
    pub(crate) slots: BTreeMap<u32, SlotRecord>,
    /// Instances of the v1 registry, kept as they were.
    #[serde(default)]
    pub(crate) instances: serde_json::Map<String, Value>,
    #[serde(default)]
    pub(crate) local_prod: Value,
}

/// One provisioned slot and who holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct SlotRecord {
    pub(crate) slot_id: u32,
    pub(crate) infrastructure_path: PathBuf,
    pub(crate) profile: Profile,
    pub(crate) workers: WorkerCounts,
    pub(crate) ports: BTreeMap<String, u16>,
    pub(crate) claimed_by: Option<PathBuf>,
    pub(crate) claimed_at: Option<DateTime<Utc>>,
    /// A hint (`stopped`, `running`): what runs is asked of the engine.
    pub(crate) status: String,
    /// The engine the claim runs on; absent for the local one (and in
    /// registries written before engines).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) engine: Option<String>,
}

impl SlotRecord {
    /// A claim whose worktree no longer exists.
    pub(crate) fn is_orphaned(&self) -> bool {
        self.claimed_by.as_deref().is_some_and(|p| !p.exists())
    }
}

impl Registry {
    pub(crate) fn empty(pool: &str) -> Registry {
        Registry {
            version: VERSION,
            pool: pool.to_owned(),
            id: None,
            slots: BTreeMap::new(),
            instances: serde_json::Map::new(),
            local_prod: Value::Null,
        }
    }

    /// The registry's id, made now if it has none (saved with the change
    /// that `Store::update` is making).
    pub(crate) fn ensure_id(&mut self) -> Result<String> {
        if self.id.is_none() {
            self.id = Some(new_id()?);
        }
        Ok(self.id.clone().expect("just set"))
    }

    /// How many claims each engine holds, by name (`local` for records
    /// without one).
    pub(crate) fn claims_per_engine(&self) -> BTreeMap<String, u32> {
        let mut counts = BTreeMap::new();
        for rec in self.slots.values().filter(|r| r.claimed_by.is_some()) {
            let name = rec
                .engine
                .clone()
                .unwrap_or_else(|| crate::engine::LOCAL.to_owned());
            *counts.entry(name).or_insert(0) += 1;
        }
        counts
    }

    /// The slot `worktree` holds, if any.
    pub(crate) fn claim_of(&self, worktree: &Path) -> Option<u32> {
        self.slots
            .values()
            .find(|s| s.claimed_by.as_deref() == Some(worktree))
            .map(|s| s.slot_id)
    }

    /// The lightest unclaimed slot whose profile is at least `min` and that
    /// `usable` accepts; among equals, the lowest id. `usable` (a port probe)
    /// is asked in that order and only until one slot passes.
    pub(crate) fn pick_free(
        &self,
        min: Profile,
        usable: impl Fn(&SlotRecord) -> bool,
    ) -> Option<u32> {
        let mut free: Vec<&SlotRecord> = self
            .slots
            .values()
            .filter(|s| s.claimed_by.is_none() && s.profile >= min)
            .collect();
        free.sort_by_key(|s| (s.profile, s.slot_id));
        free.into_iter().find(|s| usable(s)).map(|s| s.slot_id)
    }
}

/// What a command does while another process holds a lock it needs (told
/// the lock file's path once the lock has been busy for a moment): the
/// command, not the registry, decides what the user sees.
pub(crate) type OnLockWait = fn(&Path);

/// Where the registry of a pool lives, and how to read and change it.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    pub(crate) path: PathBuf,
    lock: PathBuf,
    /// The v1 registry of the original tool (`~/.<pool>/sandbox/instances.json`).
    legacy: Option<PathBuf>,
    pool: String,
    lock_timeout: Duration,
    slot_lock_timeout: Duration,
    on_lock_wait: OnLockWait,
}

/// A slot's lifecycle lock may be held through a whole `up` and its gate.
const DEFAULT_SLOT_LOCK_TIMEOUT: Duration = Duration::from_secs(900);
const SLOT_LOCK_FILE: &str = ".lifecycle.lock";

impl Store {
    pub(crate) fn new(pool: &Pool, home: Option<&Path>, on_lock_wait: OnLockWait) -> Store {
        // A bad value was refused before the command started.
        let wait = fsutil::lock_timeout().ok().flatten();
        Store {
            path: pool.state_dir.join(FILE),
            lock: pool.state_dir.join(LOCK_FILE),
            legacy: home.map(|h| {
                h.join(format!(".{}", pool.name))
                    .join("sandbox")
                    .join("instances.json")
            }),
            pool: pool.name.clone(),
            lock_timeout: wait.unwrap_or(DEFAULT_LOCK_TIMEOUT),
            slot_lock_timeout: wait.unwrap_or(DEFAULT_SLOT_LOCK_TIMEOUT),
            on_lock_wait,
        }
    }

    /// The lifecycle lock of one slot, held by `up`, `down` and `release` while
    /// they change the slot's stack, so that two of them on one slot run one
    /// after the other. Taken before the registry lock, never after.
    pub(crate) fn slot_lock(&self, slot_dir: &Path) -> Result<fsutil::LockGuard> {
        fsutil::create_dir_all(slot_dir)?;
        lock_file(
            &slot_dir.join(SLOT_LOCK_FILE),
            self.slot_lock_timeout,
            self.on_lock_wait,
        )
    }

    /// The registry as it is now, without locking: writes are atomic renames, so
    /// a reader sees a whole file. Missing is empty (or the migrated v1 file).
    pub(crate) fn read(&self) -> Result<Registry> {
        match std::fs::read(&self.path) {
            Ok(bytes) => parse(&bytes, &self.path, &self.pool),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => match &self.legacy {
                Some(legacy) if legacy.is_file() => {
                    let bytes = std::fs::read(legacy)
                        .with_context(|| format!("failed to read `{}`", legacy.display()))?;
                    parse(&bytes, legacy, &self.pool)
                }
                _ => Ok(Registry::empty(&self.pool)),
            },
            Err(e) => {
                Err(e).with_context(|| format!("failed to read registry `{}`", self.path.display()))
            }
        }
    }

    /// Runs `change` on the registry under the exclusive lock and saves the result
    /// if it changed. An error from `change` saves nothing.
    pub(crate) fn update<T>(&self, change: impl FnOnce(&mut Registry) -> Result<T>) -> Result<T> {
        let dir = self.path.parent().expect("registry path has a folder");
        fsutil::create_dir_all(dir)?;
        let lock = self.lock()?;
        // Under the lock no writer runs: a temp file left is a dead writer's.
        fsutil::sweep_temp_files(&self.path);
        let before = self.read()?;
        let mut registry = before.clone();
        let out = change(&mut registry)?;
        if registry != before {
            // An older registry gets its id on its next write, and keeps it.
            registry.ensure_id()?;
            self.save(&registry)?;
        }
        drop(lock);
        Ok(out)
    }

    fn lock(&self) -> Result<fsutil::LockGuard> {
        lock_file(&self.lock, self.lock_timeout, self.on_lock_wait)
    }

    fn save(&self, registry: &Registry) -> Result<()> {
        let mut text =
            serde_json::to_string_pretty(registry).context("failed to serialise the registry")?;
        text.push('\n');
        fsutil::write_atomic(&self.path, text.as_bytes(), 0o644)
    }
}

/// A new registry id: 128 random bits in hex.
pub(crate) fn new_id() -> Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("failed to get random bytes: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// An exclusive lock on `path`, telling `on_wait` when it has to wait; a
/// clear error when it waited `timeout` in vain.
fn lock_file(path: &Path, timeout: Duration, on_wait: OnLockWait) -> Result<fsutil::LockGuard> {
    match fsutil::lock_exclusive(path, timeout, || on_wait(path))? {
        Ok(guard) => Ok(guard),
        Err(t) => Err(UserError::new(
            code::FAILURE,
            format!(
                "timed out after {:.1}s waiting for the lock on `{}`",
                t.waited.as_secs_f64(),
                t.path.display()
            ),
        )
        .hint(format!(
            "another docker sandbox command holds it; `fuser {}` shows which. \
             DOCKER_SANDBOX_LOCK_TIMEOUT sets the wait in seconds",
            t.path.display()
        ))
        .into()),
    }
}

/// Parses a registry file of any known version into v2.
fn parse(bytes: &[u8], path: &Path, pool: &str) -> Result<Registry> {
    // The usual case, a v2 file, in one pass; anything else (v1, newer,
    // broken) goes the long way, which says what is wrong with it.
    if let Ok(registry) = serde_json::from_slice::<Registry>(bytes)
        && registry.version == VERSION
    {
        return check_pool_name(registry, path, pool);
    }
    let keep_hint =
        "fix the file or move it away: docker sandbox never overwrites a registry it cannot read";
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        fail(
            format!(
                "registry `{}` is not valid JSON ({e}); it was left as it is",
                path.display()
            ),
            keep_hint,
        )
    })?;
    let version = match value.get("version") {
        None => 1,
        Some(v) => v.as_u64().ok_or_else(|| {
            fail(
                format!(
                    "registry `{}`: `version` is {v}, not a whole number; it was left as it is",
                    path.display()
                ),
                keep_hint,
            )
        })?,
    };
    if version > VERSION {
        return Err(fail(
            format!(
                "registry `{}` has schema version {version}; this docker sandbox {} reads up to {VERSION}",
                path.display(),
                env!("CARGO_PKG_VERSION")
            ),
            "upgrade the plugin (./install.sh from a newer checkout); the file was left as it is",
        ));
    }
    let registry = if version == VERSION {
        serde_json::from_value::<Registry>(value).map_err(|e| {
            fail(
                format!(
                    "registry `{}` does not match schema v2 ({e}); it was left as it is",
                    path.display()
                ),
                keep_hint,
            )
        })?
    } else {
        migrate_v1(value, path, pool)?
    };
    check_pool_name(registry, path, pool)
}

fn check_pool_name(registry: Registry, path: &Path, pool: &str) -> Result<Registry> {
    if registry.pool != pool {
        return Err(fail(
            format!(
                "registry `{}` belongs to pool `{}`, not `{pool}`",
                path.display(),
                registry.pool
            ),
            "give each pool its own state folder ([pool] state_dir, or DOCKER_SANDBOX_HOME)",
        ));
    }
    Ok(registry)
}

/// v1 (`{"instances": {...}, "allocated_slots": [...]}`) to v2: instances and
/// `local_prod` are kept; slots come from `provision`.
fn migrate_v1(value: Value, path: &Path, pool: &str) -> Result<Registry> {
    let Value::Object(mut map) = value else {
        return Err(fail(
            format!(
                "registry `{}` is not a JSON object; it was left as it is",
                path.display()
            ),
            "fix the file or move it away",
        ));
    };
    let instances = match map.remove("instances") {
        None | Some(Value::Null) => serde_json::Map::new(),
        Some(Value::Object(m)) => m,
        Some(_) => {
            return Err(fail(
                format!(
                    "registry `{}`: `instances` is not an object; it was left as it is",
                    path.display()
                ),
                "fix the file or move it away",
            ));
        }
    };
    Ok(Registry {
        version: VERSION,
        pool: pool.to_owned(),
        id: None,
        slots: BTreeMap::new(),
        instances,
        local_prod: map.remove("local_prod").unwrap_or(Value::Null),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: u32, profile: Profile) -> SlotRecord {
        SlotRecord {
            slot_id: id,
            infrastructure_path: format!("/s/slot-{id}").into(),
            profile,
            workers: WorkerCounts::new(),
            ports: BTreeMap::from([("api".into(), 8000 + id as u16)]),
            claimed_by: None,
            claimed_at: None,
            status: "stopped".into(),
            engine: None,
        }
    }

    #[test]
    fn a_slot_keeps_its_engine_and_older_records_read_as_local() {
        let mut r = registry(&[
            (1, Profile::Light),
            (2, Profile::Light),
            (3, Profile::Light),
        ]);
        for (id, engine) in [(1, None), (2, Some("far")), (3, Some("far"))] {
            let rec = r.slots.get_mut(&id).unwrap();
            rec.claimed_by = Some(format!("/w{id}").into());
            rec.engine = engine.map(str::to_owned);
        }
        let text = serde_json::to_string(&r).unwrap();
        // The local engine's records are written as before engines.
        let json: Value = serde_json::from_str(&text).unwrap();
        assert!(json["slots"]["1"].get("engine").is_none(), "{json}");
        assert_eq!(json["slots"]["2"]["engine"], "far");
        let back: Registry = serde_json::from_str(&text).unwrap();
        assert_eq!(back, r);
        assert_eq!(
            back.claims_per_engine(),
            BTreeMap::from([("local".to_owned(), 1), ("far".to_owned(), 2)])
        );
    }

    fn registry(profiles: &[(u32, Profile)]) -> Registry {
        let mut r = Registry::empty("ktrdr");
        for &(id, p) in profiles {
            r.slots.insert(id, record(id, p));
        }
        r
    }

    #[test]
    fn round_trip_keeps_everything() {
        let mut r = registry(&[
            (1, Profile::Light),
            (10, Profile::Heavy),
            (2, Profile::Standard),
        ]);
        r.slots.get_mut(&2).unwrap().claimed_by = Some("/w/a".into());
        r.slots.get_mut(&2).unwrap().claimed_at = Some(Utc::now());
        r.instances
            .insert("x".into(), serde_json::json!({"slot": 2}));
        let text = serde_json::to_string_pretty(&r).unwrap();
        assert!(text.contains("\"version\": 2"));
        let back = parse(text.as_bytes(), Path::new("/r.json"), "ktrdr").unwrap();
        assert_eq!(back, r);
        let ids: Vec<u32> = back.slots.keys().copied().collect();
        assert_eq!(ids, [1, 2, 10], "slots sort by number, not text");
    }

    #[test]
    fn pick_prefers_the_lightest_fitting_slot_then_the_lowest_id() {
        use Profile::*;
        let mut r = registry(&[
            (1, Light),
            (2, Light),
            (3, Standard),
            (4, Heavy),
            (5, Standard),
        ]);
        assert_eq!(r.pick_free(Light, |_| true), Some(1));
        assert_eq!(r.pick_free(Standard, |_| true), Some(3));
        assert_eq!(r.pick_free(Heavy, |_| true), Some(4));
        r.slots.get_mut(&1).unwrap().claimed_by = Some("/w".into());
        assert_eq!(r.pick_free(Light, |_| true), Some(2));
        assert_eq!(
            r.pick_free(Light, |s| s.slot_id != 2),
            Some(3),
            "an unusable slot is skipped"
        );
        // Slots are probed lightest first, and no further than the first
        // one that passes.
        let asked = std::cell::RefCell::new(Vec::new());
        let pick = r.pick_free(Light, |s| {
            asked.borrow_mut().push(s.slot_id);
            s.slot_id != 2
        });
        assert_eq!((pick, asked.into_inner()), (Some(3), vec![2, 3]));
        r.slots.get_mut(&4).unwrap().claimed_by = Some("/v".into());
        assert_eq!(r.pick_free(Heavy, |_| true), None);
        assert_eq!(r.claim_of(Path::new("/v")), Some(4));
        assert_eq!(r.claim_of(Path::new("/nobody")), None);
    }

    #[test]
    fn an_old_registry_gets_an_id_on_its_next_write_and_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let old =
            r#"{"version": 2, "pool": "ktrdr", "slots": {}, "instances": {}, "local_prod": null}"#;
        std::fs::write(&path, old).unwrap();
        let env = crate::pool::Environment {
            home: Some(dir.path().into()),
            cwd: "/".into(),
            ..crate::pool::Environment::default()
        };
        let mut pool = crate::pool::from_toml("", None, &env).unwrap();
        pool.state_dir = dir.path().to_owned();
        let store = Store::new(&pool, None, |_| {});
        assert_eq!(store.read().unwrap().id, None);
        // A write that changes nothing writes nothing, not even an id.
        store.update(|_| Ok(())).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), old);
        store
            .update(|r| {
                r.slots.insert(1, record(1, Profile::Light));
                Ok(())
            })
            .unwrap();
        let id = store.read().unwrap().id.expect("an id on the first write");
        assert_eq!(id.len(), 32);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"version\": 2"), "{text}");
        store
            .update(|r| {
                r.slots.remove(&1);
                assert_eq!(r.ensure_id().unwrap(), id);
                Ok(())
            })
            .unwrap();
        assert_eq!(store.read().unwrap().id.as_deref(), Some(id.as_str()));
        assert_ne!(new_id().unwrap(), id, "ids are random");
    }

    #[test]
    fn v1_migrates_keeping_instances() {
        let v1 = br#"{"instances": {"ktrdr--a": {"slot": 2, "path": "/a"}}, "allocated_slots": [2], "local_prod": {"x": 1}}"#;
        let r = parse(v1, Path::new("/i.json"), "ktrdr").unwrap();
        assert_eq!(r.version, 2);
        assert_eq!(r.instances["ktrdr--a"]["slot"], 2);
        assert_eq!(r.local_prod["x"], 1);
        assert!(r.slots.is_empty());
    }

    #[test]
    fn corrupt_newer_and_foreign_files_are_errors_naming_the_file() {
        for (bytes, needle) in [
            (&b""[..], "not valid JSON"),
            (
                &b"{\"version\": 2, \"pool\": \"ktrdr\", \"slots\": {"[..],
                "not valid JSON",
            ),
            (
                &b"{\"version\": 3, \"pool\": \"ktrdr\"}"[..],
                "schema version 3",
            ),
            (&b"{\"version\": \"2\"}"[..], "not a whole number"),
            (
                &b"{\"version\": 2, \"pool\": \"other\"}"[..],
                "belongs to pool `other`",
            ),
            (
                &b"{\"version\": 2, \"pool\": \"ktrdr\", \"slots\": []}"[..],
                "does not match schema v2",
            ),
        ] {
            let msg = format!(
                "{:#}",
                parse(bytes, Path::new("/st/registry.json"), "ktrdr").unwrap_err()
            );
            assert!(
                msg.contains("/st/registry.json") && msg.contains(needle),
                "{msg}"
            );
        }
    }
}
