//! One file per subcommand. Each turns its clap args into plain values and calls
//! the domain modules; this file holds what they share.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::claim;
use crate::cli::{Cli, Command, ProfileArg};
use crate::compose::{Compose, Project};
use crate::engine::{Docker, Engine};
use crate::error::fail;
use crate::output;
use crate::plugin::{self, Invocation};
use crate::pool::{self, Environment, GateCheck, Pool, Profile};
use crate::registry::{SlotRecord, Store};
use crate::slot::{COMPOSE_FILE, ENV_FILE, NETWORKS_FILE};
use crate::worktree;

mod adopt;
mod claim_cmd;
mod completion;
mod config;
mod create;
mod destroy;
mod doctor;
mod down;
mod env;
mod gc;
mod init;
mod init_shared;
mod list;
mod logs;
mod provision;
mod push_images;
mod release;
mod run;
mod slots;
mod status;
mod up;
mod version;

/// One engine of the pool and how to reach it.
pub(crate) struct Route {
    pub(crate) spec: crate::engine::EngineSpec,
    pub(crate) docker: Docker,
    pub(crate) engine: Engine,
    /// Where its published ports answer.
    pub(crate) host: String,
}

/// What every command may need, loaded only when asked for.
pub(crate) struct Ctx {
    pub(crate) invocation: Invocation,
    pub(crate) env: Environment,
    /// Found once per run (it runs `compose version`), when first asked for.
    compose: std::cell::OnceCell<Compose>,
}

impl Ctx {
    pub(crate) fn new(invocation: Invocation, env: Environment) -> Ctx {
        Ctx {
            invocation,
            env,
            compose: std::cell::OnceCell::new(),
        }
    }

    /// The pool of the current folder; an adopted one completed from the
    /// compose model of the worktree the command runs in.
    pub(crate) fn pool(&self) -> Result<Pool> {
        let mut pool = pool::load(&self.env)?;
        if pool.adopted().is_some() {
            let top = worktree::current(&self.env.cwd)?;
            pool.model_top = Some(top.clone());
            // A compose file that does not read (or cannot be isolated) stops
            // what needs the model, when it renders a slot; `release`,
            // `down`, `slots` and the rest still work.
            if let Err(e) = pool::adopt::complete(&mut pool, &top, &|| self.compose().cloned()) {
                pool.model_error = Some(std::sync::Arc::new(e));
            }
        }
        Ok(pool)
    }

    pub(crate) fn store(&self, pool: &Pool) -> Store {
        Store::new(pool, self.env.home.as_deref(), show_lock_wait)
    }

    /// `docker sandbox`, or however the plugin was installed, for hints.
    pub(crate) fn cmd_name(&self) -> String {
        format!("docker {}", self.invocation.name)
    }

    pub(crate) fn docker(&self) -> Docker {
        Docker {
            bin: plugin::docker_binary(),
            globals: self.invocation.globals.clone(),
        }
    }

    pub(crate) fn engine(&self) -> Engine {
        Engine::new(&self.docker())
    }

    pub(crate) fn compose(&self) -> Result<&Compose> {
        if let Some(found) = self.compose.get() {
            return Ok(found);
        }
        let found = Compose::discover(&self.docker())?;
        Ok(self.compose.get_or_init(|| found))
    }

    /// How to reach engine `name` of the pool (`None`: the local one).
    pub(crate) fn route(&self, pool: &Pool, name: Option<&str>) -> Result<Route> {
        let spec = crate::engine::placement::find(&pool.engines, name)?.clone();
        let docker = spec.docker(&self.docker());
        Ok(Route {
            engine: Engine::new(&docker),
            host: spec.host(&self.docker()),
            spec,
            docker,
        })
    }

    /// Compose, run against `route`'s engine.
    pub(crate) fn compose_on(&self, route: &Route) -> Result<Compose> {
        Ok(Compose {
            docker: route.docker.clone(),
            ..self.compose()?.clone()
        })
    }

    pub(crate) fn worktree(&self) -> Result<PathBuf> {
        worktree::current(&self.env.cwd)
    }
}

pub(crate) fn profile(p: Option<ProfileArg>) -> Option<Profile> {
    p.map(|p| match p {
        ProfileArg::Light => Profile::Light,
        ProfileArg::Standard => Profile::Standard,
        ProfileArg::Heavy => Profile::Heavy,
    })
}

/// The compose project of `slot` run from `directory`, with its env file there
/// when it exists (a claim's worktree) and the slot's own otherwise.
pub(crate) fn project(pool: &Pool, slot: u32, directory: &Path) -> Project {
    let own = directory.join(ENV_FILE);
    let env_file = if own.is_file() {
        own
    } else {
        pool.slot_dir(slot).join(ENV_FILE)
    };
    let file = pool.slot_dir(slot).join(COMPOSE_FILE);
    let networks = Some(pool.slot_dir(slot).join(NETWORKS_FILE)).filter(|n| n.is_file());
    // An override goes after the project's own files, whose `.env` still
    // applies; a materialised copy stands alone.
    let over = pool.adopted().is_some()
        && std::fs::read_to_string(&file).is_ok_and(|t| crate::model::is_override(&t));
    let (base_files, base_env) = if over {
        let env = directory.join(".env");
        (
            crate::pool::adopt::files_in(pool, directory),
            env.is_file().then_some(env),
        )
    } else {
        (Vec::new(), None)
    };
    Project {
        name: pool.project(slot),
        directory: directory.to_owned(),
        env_file,
        file,
        networks,
        base_files,
        base_env,
        pass: pool.secrets.pass.clone(),
    }
}

/// The slot this worktree holds.
pub(crate) struct Held {
    pub(crate) pool: Pool,
    pub(crate) store: Store,
    pub(crate) worktree: PathBuf,
    pub(crate) record: SlotRecord,
}

impl Held {
    pub(crate) fn slot(&self) -> u32 {
        self.record.slot_id
    }

    pub(crate) fn project(&self) -> Project {
        project(&self.pool, self.slot(), &self.worktree)
    }
}

/// The caller's claim. The slot's files are rendered again when the
/// templates or the pool changed, and the worktree's env file is written
/// again when it differs from them (or went missing).
pub(crate) fn held(ctx: &Ctx) -> Result<Held> {
    let worktree = ctx.worktree()?;
    let pool = ctx.pool()?;
    let store = ctx.store(&pool);
    // A moved worktree takes its claim along; its env file is written below.
    let mut id = store.read()?.claim_of(&worktree);
    if id.is_none() {
        id = claim::follow_move(&pool, &store, &worktree)?;
    }
    let Some(id) = id else {
        return Err(fail(
            format!("this worktree holds no slot: `{}`", worktree.display()),
            format!(
                "run `{0} up` to claim one and start it, or `{0} slots` to see who holds what",
                ctx.cmd_name()
            ),
        ));
    };
    let record = crate::slot::ensure(&pool, &store, id, crate::slot::Password::Keep)?.record;
    claim::write_env(&pool, id, &record, &worktree, &ctx.cmd_name())?;
    Ok(Held {
        pool,
        store,
        worktree,
        record,
    })
}

/// Sets the registry's status hint of a slot.
pub(crate) fn mark(store: &Store, slot: u32, status: &str) -> Result<()> {
    store.update(|reg| {
        if let Some(rec) = reg.slots.get_mut(&slot) {
            rec.status = status.to_owned();
        }
        Ok(())
    })
}

/// Where to reach each named port: an `http://` URL for web ports (those the
/// gate checks over HTTP, and the usual UI names), `127.0.0.1:port` otherwise.
pub(crate) fn addresses(
    pool: &Pool,
    ports: &BTreeMap<String, u16>,
    host: &str,
) -> Vec<(String, String)> {
    let http_checked = |name: &str| {
        pool.gate.iter().any(|g| match g {
            GateCheck::Http { port, .. } | GateCheck::HttpCount { port, .. } => port == name,
            GateCheck::Tcp { .. } => false,
        })
    };
    let webby = |name: &str| {
        ["api", "ui", "web", "http", "grafana", "prometheus"]
            .iter()
            .any(|w| name.contains(w))
    };
    pool.ports
        .iter()
        .filter_map(|(name, _)| ports.get(name).map(|p| (name, *p)))
        .map(|(name, port)| {
            let addr = if http_checked(name) || webby(name) {
                format!("http://{host}:{port}")
            } else {
                format!("{host}:{port}")
            };
            (name.clone(), addr)
        })
        .collect()
}

/// What on the engine or in its host's routing table (`host`: this
/// machine's, or what a probe of another engine's host saw) overlaps the
/// blocks of `slots` in `[pool] subnets`, other than this registry's own
/// networks.
pub(crate) fn subnet_conflicts(
    pool: &Pool,
    engine: &Engine,
    host: &crate::claim::Taken,
    registry_id: &str,
    slots: &[u32],
) -> Result<Vec<String>> {
    let blocks = pool.subnets.blocks(slots.iter().copied());
    if blocks.is_empty() {
        return Ok(Vec::new());
    }
    let networks = engine.all_networks()?;
    Ok(pool::subnets::conflicts(
        &blocks,
        &networks,
        &host.routes(),
        registry_id,
    ))
}

/// Refuses subnets that something else on the engine or the host uses.
pub(crate) fn refuse_subnet_conflicts(pool: &Pool, conflicts: &[String], what: &str) -> Result<()> {
    if conflicts.is_empty() {
        return Ok(());
    }
    Err(fail(
        format!(
            "{what} of `[pool] subnets` (`{}`) overlap {}",
            pool.subnets,
            conflicts.join(", ")
        ),
        format!(
            "set `[pool] subnets` in {} to a range nothing else uses (such as `10.214.0.0/16`), or to \"{}\" to let the engine choose",
            pool.origin(),
            pool::subnets::ENGINE
        ),
    ))
}

/// Fails at once when the engine a claim will use does not answer: the one
/// the worktree's claim is on, else the one asked for, else the local one
/// when it is the pool's only engine. A new claim among several engines
/// passes over one that does not answer.
pub(crate) fn ping_for_claim(
    ctx: &Ctx,
    pool: &Pool,
    store: &Store,
    worktree: &Path,
    requested: Option<&str>,
) -> Result<()> {
    // An engine the pool does not name is refused before anything is made.
    if let Some(r) = requested
        && !pool.engines.iter().any(|e| e.name == r)
    {
        crate::engine::placement::candidates(&pool.engines, requested, &BTreeMap::new())?;
    }
    let registry = store.read()?;
    let held = registry
        .claim_of(worktree)
        .map(|id| registry.slots[&id].engine.clone());
    let name = match (held, requested) {
        (Some(on), _) => on,
        (None, Some(r)) => Some(r.to_owned()),
        (None, None) if pool.engines.len() == 1 => None,
        (None, None) => return Ok(()),
    };
    match ctx.route(pool, name.as_deref()) {
        Ok(route) => route.engine.ping(),
        // An unknown engine is said by the claim, with the pool's engines.
        Err(_) => Ok(()),
    }
}

/// The containers of every engine of the pool, each asked once, all at the
/// same time; the engines that did not answer are named (and warned of).
pub(crate) struct Live {
    pub(crate) containers: Vec<crate::engine::Container>,
    pub(crate) down: std::collections::BTreeSet<String>,
}

impl Live {
    /// The state of a slot whose engine did not answer is unknown.
    pub(crate) fn reached(&self, rec: &SlotRecord) -> bool {
        !self
            .down
            .contains(rec.engine.as_deref().unwrap_or(crate::engine::LOCAL))
    }
}

/// `ask` of every engine of `pool`, all at the same time: each engine's name
/// and answer, in the pool's order.
pub(crate) fn each_engine<T: Send>(
    ctx: &Ctx,
    pool: &Pool,
    ask: impl Fn(&Engine) -> Result<T> + Sync,
) -> Vec<(String, Result<T>)> {
    each_route(ctx, pool, |route| ask(&route.engine))
}

/// `ask` of the route to every engine of `pool`, all at the same time: each
/// engine's name and answer, in the pool's order.
pub(crate) fn each_route<T: Send>(
    ctx: &Ctx,
    pool: &Pool,
    ask: impl Fn(&Route) -> Result<T> + Sync,
) -> Vec<(String, Result<T>)> {
    let routes: Vec<(String, Result<Route>)> = pool
        .engines
        .iter()
        .map(|spec| (spec.name.clone(), ctx.route(pool, Some(&spec.name))))
        .collect();
    std::thread::scope(|s| {
        let asks: Vec<_> = routes
            .iter()
            .map(|(name, route)| {
                (
                    name,
                    s.spawn(|| match route {
                        Ok(route) => ask(route),
                        Err(e) => Err(anyhow::anyhow!("{e:#}")),
                    }),
                )
            })
            .collect();
        asks.into_iter()
            .map(|(name, h)| {
                let answer = h
                    .join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("the query panicked")));
                (name.clone(), answer)
            })
            .collect()
    })
}

/// Asks each engine of `pool` for its containers; `None` when none answers.
/// With the local engine alone, `alone` says its failure.
pub(crate) fn ask_engines(ctx: &Ctx, pool: &Pool, alone: &dyn Fn(&anyhow::Error)) -> Option<Live> {
    let answers = each_engine(ctx, pool, |engine| engine.containers(None));
    let mut live = Live {
        containers: Vec::new(),
        down: std::collections::BTreeSet::new(),
    };
    let several = answers.len() > 1;
    for (name, answer) in answers {
        match answer {
            Ok(list) => live.containers.extend(list),
            Err(e) => {
                let why = format!("{e:#}")
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                if several {
                    output::note(&format!(
                        "warning: engine `{name}` does not answer, its slots' state is unknown: {why}"
                    ));
                } else {
                    alone(&e);
                }
                live.down.insert(name);
            }
        }
    }
    (live.down.len() < pool.engines.len()).then_some(live)
}

/// The host a slot's ports answer on, by its engine: the engine's address,
/// else the host of its context, else this machine.
pub(crate) fn host_of(ctx: &Ctx, pool: &Pool, rec: &SlotRecord) -> String {
    crate::engine::placement::find(&pool.engines, rec.engine.as_deref())
        .map_or_else(|_| "127.0.0.1".to_owned(), |spec| spec.host(&ctx.docker()))
}

/// Says why a command seems to hang: another one holds the lock it needs.
fn show_lock_wait(lock: &Path) {
    output::note(&format!("waiting for lock on `{}`...", lock.display()));
}

/// The pool's slots for completion: the number, then the profile and who
/// holds it. Nothing when the pool cannot be read: completion never fails.
pub(crate) fn slot_candidates() -> Vec<(String, Option<String>)> {
    let Ok(env) = Environment::from_process() else {
        return Vec::new();
    };
    let Ok(pool) = pool::load(&env) else {
        return Vec::new();
    };
    // Completion only reads, and reading takes no lock.
    let registry = Store::new(&pool, env.home.as_deref(), |_| {}).read().ok();
    pool.slots
        .iter()
        .map(|(&id, profile)| {
            let holder = registry
                .as_ref()
                .and_then(|r| r.slots.get(&id))
                .and_then(|r| r.claimed_by.as_ref());
            let what = match holder {
                Some(p) => format!("{profile}, claimed by {}", p.display()),
                None => format!("{profile}, free"),
            };
            (id.to_string(), Some(what))
        })
        .collect()
}

/// Runs `dispatch`'s command; returns its exit code.
pub(crate) fn dispatch(cli: Cli, invocation: Invocation) -> Result<u8> {
    let ctx = Ctx::new(invocation, Environment::from_process()?);
    match cli.command {
        Command::Provision(args) => provision::exec(&ctx, args.dry_run, args.force, args.format),
        Command::Slots(args) => slots::exec(&ctx, args.format),
        Command::Claim(args) => claim_cmd::exec(
            &ctx,
            profile(args.profile),
            args.slot,
            args.engine.as_deref(),
            args.format,
        ),
        Command::Up(args) => up::exec(
            &ctx,
            up::Options {
                build: args.build,
                wait: !args.no_wait,
                timeout: args.timeout,
                profile: profile(args.profile),
                engine: args.engine,
                format: args.format,
                verbose: args.verbose,
                push_images: args.push_images,
                print_json: None,
            },
        ),
        Command::PushImages(args) => push_images::exec(
            &ctx,
            push_images::Options {
                engine: args.engine,
                all: args.all,
                format: args.format,
            },
        ),
        Command::Down(args) => down::exec(&ctx, args.volumes, args.format),
        Command::Status(args) => status::exec(&ctx, args.format),
        Command::Logs(args) => logs::exec(&ctx, args.service.as_deref(), args.follow, args.tail),
        Command::Release(args) => release::exec(&ctx, args.slot, args.force, args.format),
        Command::Gc(args) => gc::exec(&ctx, args.dry_run, args.format),
        Command::Create(args) => create::exec(
            &ctx,
            create::Options {
                name: args.name,
                branch: args.branch,
                profile: profile(args.profile),
                slot: args.slot,
                engine: args.engine,
                up: args.up,
                format: args.format,
            },
        ),
        Command::Init(args) => init::exec(&ctx, args.slot, profile(args.profile), args.format),
        Command::Destroy(args) => destroy::exec(&ctx, args.keep_worktree, args.force, args.format),
        Command::List(args) => list::exec(&ctx, args.format),
        Command::Env(args) => env::exec(&ctx, args.format),
        Command::Run(args) => run::exec(&ctx, &args.command),
        Command::InitShared(args) => init_shared::exec(&ctx, args.from, args.minimal),
        Command::Doctor(args) => doctor::exec(&ctx, args.format),
        Command::Adopt(args) => adopt::exec(
            &ctx,
            &adopt::Options {
                files: args.files,
                slots: args.slots,
                dry_run: args.dry_run,
                force: args.force,
                format: args.format,
            },
        ),
        Command::Config(args) => config::exec(&ctx, args.slot, args.format),
        Command::Completion(args) => completion::exec(&ctx, args.shell),
        Command::Version(args) => version::exec(args.format),
    }
}
