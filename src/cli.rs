//! Command-line definitions (clap derive) and nothing else: commands turn these
//! into plain values before calling the domain.

use clap::{Args, Parser, Subcommand, ValueEnum};

const ABOUT: &str =
    "Run many isolated copies of one Compose stack side by side, one per git worktree";

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  failure (bad project file, unreadable registry, no free slot, no engine, ...)
  2  `up`: the startability gate failed; `create`: git failed; `init`: not
     inside a git repository
  3  a port of the slot is in use by something else; `create`: the folder
     exists
  64 usage error (unknown flag, bad value)
Each command's --help lists its own.";

#[derive(Debug, Parser)]
#[command(
    version,
    about = ABOUT,
    long_about = None,
    arg_required_else_help = true,
    after_help = EXIT_CODES,
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create the pool's slots: a folder, compose file and env file each, and the registry
    #[command(after_help = "\
Idempotent: a complete slot is skipped, a slot with a missing file is repaired,
and a slot whose files were rendered from other templates or another project
file is rendered again (--force: every slot). A slot keeps its database
password until its next claim, and a claimed slot its ports until it is
released. Slots no longer in [slots] are listed as retired; `gc` frees them
once unclaimed.

Exit codes:
  0  every slot exists (created, repaired, re-rendered or skipped)
  1  bad project file or template, unreadable registry, I/O error
  64 usage error")]
    Provision(ProvisionArgs),

    /// List the pool's slots: profile, API port, claim and status
    #[command(after_help = "\
JSON output (--format json) is an object: {\"pool\", \"state_dir\", \"live\", \"slots\": [...]};
each slot has slot, profile, project, path, ports, workers, claimed_by, claimed_at,
orphaned, status, retired, restart_to_apply, pending_ports. The README lists every field.

Exit codes:
  0  listed (an empty pool says to run `provision`)
  1  bad project file, unreadable registry
  64 usage error")]
    Slots(SlotsArgs),

    /// Claim a slot for this worktree (the lightest free one that fits) and write its .env.sandbox
    #[command(after_help = "\
Run inside a git worktree; its top folder is the claim's key. Claiming again
from the same worktree returns the slot it holds. A new claim removes the
slot's old containers and volumes first.

Exit codes:
  0  claimed (or already held)
  1  no free slot, slot taken, not in a git worktree, no engine, lock timeout
  3  a port of the requested slot is in use by something else
  64 usage error")]
    Claim(ClaimArgs),

    /// Start this worktree's slot (claiming one if needed) and wait until it is ready
    #[command(after_help = "\
Runs `compose up -d`, the pool's [[after_up]] steps (`compose exec -T`, also
with --no-wait), then the startability gate: containers running and healthy,
then the pool's checks (TCP, HTTP status, HTTP list length). On failure the
stack is taken down: its containers and networks, and the
volumes this `up` created; volumes that existed before it (a database that
`down` kept) are kept, and so is the claim. So it is on Ctrl-C or SIGTERM
while it starts (a second one exits at once).

Exit codes:
  0    started, and the gate passed (or --no-wait)
  1    compose up failed; a bind mount's source is missing (checked before
       compose runs); no free slot; no engine or compose; not in a worktree
  2    the startability gate or an [[after_up]] step failed (the report
       names it)
  3    a port of the slot is in use by something else
  64   usage error
  130  stopped by Ctrl-C (SIGINT), or by a signal to `docker`; 143: by SIGTERM")]
    Up(UpArgs),

    /// Copy the images this worktree's slot needs to its engine, from the local one (no registry needed)
    #[command(after_help = "\
Which images: the `image:` of each service of the slot's compose model (after
interpolation, profiles as COMPOSE_PROFILES enables them). Each is looked up
on the local engine and on the target by image ID: one the target lacks, or
has under another ID, is copied with `docker save IMAGE | docker --context
CTX load`, streamed from one process to the other. An image a service builds
(`build:`) that the local engine does not have is skipped: compose builds it
on the engine. The target is the engine of this worktree's claim, or
--engine NAME, or --all (every engine of the pool but the local one).

JSON output (--format json) is an object: {\"slot\", \"project\", \"engines\":
[{\"engine\", \"images\": [{\"image\", \"services\", \"result\", \"size\",
\"seconds\"}]}]}, `result` one of copied, replaced, already-there,
built-on-engine, pinned (named by digest: only a registry gives an engine
that), missing.

Exit codes:
  0  every image is on the target (copied or already there), or is built there
  1  an image is on neither engine (the others are copied); this worktree
     holds no slot; --engine names no engine of the pool; an engine does not
     answer; compose cannot read the files; a copy failed
  64 usage error")]
    PushImages(PushImagesArgs),

    /// Stop this worktree's slot; the claim is kept
    #[command(after_help = "\
Exit codes:
  0  stopped
  1  this worktree holds no slot; compose failed
  64 usage error")]
    Down(DownArgs),

    /// Show this worktree's slot: URLs, and each container's state and health
    #[command(after_help = "\
The slot is `running` when every container runs and every service of the
compose model has one, `partial` when not (a container stopped, or removed:
`up` recreates it), `stopped` when none runs. The exit code does not depend
on it.

Exit codes:
  0  shown
  1  this worktree holds no slot; no engine
  64 usage error")]
    Status(StatusArgs),

    /// Show the logs of this worktree's stack (compose logs)
    #[command(after_help = "\
SIGINT and SIGTERM go on to compose, which is waited for.

Exit codes: compose's own exit code passes through (128+N when killed by
signal N); 1 when this worktree holds no slot; 64 for a usage error.")]
    Logs(LogsArgs),

    /// Stop a slot, remove its containers and volumes, and free its claim
    #[command(after_help = "\
Without SLOT: this worktree's slot. A slot held by another worktree that
still exists is refused unless --force; an orphaned claim (its worktree is
gone) is released freely. Only this registry's own containers, volumes and
networks are removed: what another state folder or a person started under
the slot's project name is left alone and listed.

Exit codes:
  0  released (or nothing to release)
  1  held by another existing worktree (without --force); no engine
  64 usage error")]
    Release(ReleaseArgs),

    /// Free orphaned claims and retired slots, and remove this pool's compose projects that no claim owns
    #[command(after_help = "\
Projects of this registry only: one of the same name that another state
folder or a person started is reported as left alone, never removed.
A retired slot ([slots] no longer lists it) is freed once unclaimed: its
folder, registry entry, containers, volumes and networks are removed.

Exit codes:
  0  cleaned up (or nothing to do)
  1  no engine; an engine call failed
  64 usage error")]
    Gc(GcArgs),

    /// Create a git worktree beside the main checkout (<repo>--NAME) and claim a slot for it
    #[command(after_help = "\
The branch is --branch if given (checked out if it exists, else created
from HEAD), else a new branch NAME. Nothing is created when no slot is free.

Exit codes:
  0  created (and, with --up, started)
  1  no free slot, or a port conflict; with --up, as `up`
  2  git failed (for example: the branch is checked out elsewhere)
  3  the folder already exists
  64 usage error")]
    Create(CreateArgs),

    /// Claim a slot for this existing clone or worktree
    #[command(after_help = "\
Exit codes:
  0  initialised
  1  already initialised (this worktree holds a slot); no free slot
  2  not inside a git repository
  3  a port of the requested slot is in use
  64 usage error")]
    Init(InitArgs),

    /// Release this worktree's slot, then remove the worktree
    #[command(after_help = "\
A worktree with uncommitted changes is refused unless --force; the main
checkout is never removed (use --keep-worktree to release its slot). The
branch is kept.

Exit codes:
  0  destroyed
  1  uncommitted changes (without --force); the main checkout; git failed
  64 usage error")]
    Destroy(DestroyArgs),

    /// List worktrees with their slots, URLs and state
    #[command(after_help = "\
Exit codes:
  0  listed
  1  bad project file, unreadable registry
  64 usage error")]
    List(ListArgs),

    /// Print this worktree's slot environment, for `eval "$(docker sandbox env)"`
    #[command(after_help = "\
Exit codes:
  0  printed
  1  this worktree holds no slot
  64 usage error")]
    Env(EnvArgs),

    /// Run a command with this worktree's slot environment
    #[command(after_help = "\
Example: docker sandbox run -- pytest tests/e2e

SIGINT and SIGTERM (also those sent to `docker`) go on to the command, which
is waited for, as with `cargo run`.

Exit codes: the command's own exit code (128+N when killed by signal N);
127 when it cannot be started; 1 when this worktree holds no slot; 64 for a
usage error.")]
    Run(RunArgs),

    /// Create the shared data folders (data, models, strategies) and fill them from a checkout
    #[command(after_help = "\
Copies from --from PATH, else from this checkout's own folders of those
names; --minimal creates the empty folders only. Existing files are kept.

Exit codes:
  0  done
  1  --from PATH does not exist; I/O error
  64 usage error")]
    InitShared(InitSharedArgs),

    /// Adopt the project's own compose files: derive each slot's ports and write docker-sandbox.toml
    #[command(after_help = "\
Run in a git repository. FILE defaults to the standard compose file at the top
level (compose.yaml, compose.yml, docker-compose.yaml, docker-compose.yml).
Compose reads the model (`config`); every published host port becomes a named
slot port (base = the file's port, one stride for the pool). The port table
per slot and every warning are printed, and docker-sandbox.toml is written at
the top level (not with --dry-run; an existing one only with --force).

JSON output (--format json) is an object: {\"pool\", \"files\", \"slots\": [{\"slot\",
\"ports\"}], \"ports\": [{\"name\", \"service\", \"target\", \"protocol\", \"base\",
\"stride\", \"env\"}], \"warnings\", \"written\"}.

Exit codes:
  0  adopted (or shown, with --dry-run)
  1  not in a git repository, no compose file, compose rejects it, a service
     cannot be isolated (host networking), docker-sandbox.toml exists
  64 usage error")]
    Adopt(AdoptArgs),

    /// Print the compose model a slot runs, as compose's own `config` prints it
    #[command(after_help = "\
The slot is this worktree's claim, or --slot N. It runs compose's `config` on
the command line `up` uses, so what it prints is what runs: the project's own
files and the slot's override (or, for template pools and older compose, the
slot's file). No engine is needed. --format json prints compose's JSON (legacy
docker-compose 1.29 has none: its YAML is converted).

Exit codes:
  0  printed
  1  this worktree holds no slot (and no --slot), the slot is not provisioned,
     compose failed
  64 usage error")]
    Config(ConfigArgs),

    /// Check the engine, compose, the plugin's installation, the registry, ports and templates
    #[command(after_help = "\
Exit codes:
  0  no problem found (warnings allowed)
  1  at least one check failed
  64 usage error")]
    Doctor(DoctorArgs),

    /// Print a shell completion script for the docker-sandbox binary
    #[command(after_help = "\
Example: docker-sandbox completion bash > ~/.local/share/bash-completion/completions/docker-sandbox

`docker sandbox <TAB>` needs no script of ours: docker's own completion
(`docker completion bash|zsh|fish`, Docker CLI 23 and later) asks the plugin.")]
    Completion(CompletionArgs),

    /// Print the plugin's version
    #[command(after_help = "\
JSON output (--format json) is an object: {\"name\", \"version\"}.

Exit codes:
  0  printed
  64 usage error")]
    Version(VersionArgs),
}

impl Command {
    /// Whether the command was asked for JSON: its errors are JSON too.
    pub(crate) fn json(&self) -> bool {
        let format = match self {
            Command::Provision(a) => a.format,
            Command::Slots(a) => a.format,
            Command::Claim(a) => a.format,
            Command::Up(a) => a.format,
            Command::PushImages(a) => a.format,
            Command::Down(a) => a.format,
            Command::Status(a) => a.format,
            Command::Release(a) => a.format,
            Command::Gc(a) => a.format,
            Command::Create(a) => a.format,
            Command::Init(a) => a.format,
            Command::Destroy(a) => a.format,
            Command::List(a) => a.format,
            Command::Doctor(a) => a.format,
            Command::Adopt(a) => a.format,
            Command::Config(a) => return a.format == ConfigFormat::Json,
            Command::Version(a) => a.format,
            Command::Env(a) => return a.format == EnvFormat::Json,
            Command::Logs(_)
            | Command::Run(_)
            | Command::InitShared(_)
            | Command::Completion(_) => {
                return false;
            }
        };
        format == Format::Json
    }
}

/// Whether a command line that did not parse asked for JSON (`--format json`
/// or `--format=json`), so that its usage error is JSON too.
pub(crate) fn asks_for_json(args: &[std::ffi::OsString]) -> bool {
    args.windows(2)
        .any(|w| w[0] == "--format" && w[1] == "json")
        || args.iter().any(|a| a == "--format=json")
}

/// A worktree name: lowercase letters, digits, `.`, `_` and `-`, at most 63.
fn worktree_name(s: &str) -> Result<String, String> {
    let why = if s.is_empty() {
        "it is empty"
    } else if s.len() > 63 {
        "it is longer than 63 characters"
    } else if s.contains('/') {
        // Most likely a branch name: the worktree is named after its last part.
        let last: String = s
            .rsplit('/')
            .find(|p| !p.is_empty())
            .unwrap_or("name")
            .to_ascii_lowercase()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "._-".contains(c) {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        return Err(format!(
            "`{s}` is not a worktree name: it contains `/`; for branch `{s}`, run `create {last} --branch {s}`"
        ));
    } else if s.contains("..") {
        "it contains `..`"
    } else if s.chars().any(char::is_whitespace) {
        "it contains a space"
    } else if s.chars().any(|c| c.is_ascii_uppercase()) {
        "it contains upper case"
    } else if !s
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
    {
        "only a-z, 0-9, `.`, `_` and `-` are allowed"
    } else if !s.as_bytes()[0].is_ascii_alphanumeric() {
        "it must start with a letter or a digit"
    } else {
        return Ok(s.to_owned());
    };
    Err(format!("`{s}` is not a worktree name: {why}"))
}

#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    /// The worktree's name: the folder is <repo>--NAME beside the main checkout
    #[arg(value_parser = worktree_name)]
    pub(crate) name: String,
    /// The branch to check out (default: a new branch NAME)
    #[arg(long)]
    pub(crate) branch: Option<String>,
    /// The lightest profile that will do
    #[arg(long, value_enum)]
    pub(crate) profile: Option<ProfileArg>,
    /// This slot and no other
    #[arg(long, value_parser = slot_id, allow_hyphen_values = true)]
    pub(crate) slot: Option<u32>,
    /// The engine to claim on (a name of the pool's `[engines.NAME]`, or
    /// `local`); by default the local one, else the first with room
    #[arg(long, value_name = "NAME")]
    pub(crate) engine: Option<String>,
    /// Start the stack too (as `up`)
    #[arg(long)]
    pub(crate) up: bool,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub(crate) format: Format,
}

#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    /// This slot and no other
    #[arg(long, value_parser = slot_id, allow_hyphen_values = true)]
    pub(crate) slot: Option<u32>,
    /// The lightest profile that will do
    #[arg(long, value_enum)]
    pub(crate) profile: Option<ProfileArg>,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub(crate) format: Format,
}

#[derive(Debug, Args)]
pub(crate) struct DestroyArgs {
    /// Release the slot but keep the worktree folder
    #[arg(long)]
    pub(crate) keep_worktree: bool,
    /// Remove the worktree even with uncommitted changes
    #[arg(long)]
    pub(crate) force: bool,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub(crate) format: Format,
}

#[derive(Debug, Args)]
pub(crate) struct VersionArgs {
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub(crate) format: Format,
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub(crate) format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum EnvFormat {
    Shell,
    Json,
}

#[derive(Debug, Args)]
pub(crate) struct EnvArgs {
    /// Output format: `export` lines, or a JSON object
    #[arg(long, value_enum, default_value_t = EnvFormat::Shell)]
    pub(crate) format: EnvFormat,
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// The command and its arguments (after `--`)
    #[arg(required = true, num_args = 1.., trailing_var_arg = true, allow_hyphen_values = true, value_name = "CMD", value_hint = clap::ValueHint::CommandName)]
    pub(crate) command: Vec<std::ffi::OsString>,
}

#[derive(Debug, Args)]
pub(crate) struct InitSharedArgs {
    /// A checkout to copy data, models and strategies from
    #[arg(long, value_name = "PATH", value_hint = clap::ValueHint::DirPath)]
    pub(crate) from: Option<std::path::PathBuf>,
    /// Create the empty folders only
    #[arg(long, conflicts_with = "from")]
    pub(crate) minimal: bool,
}

#[derive(Debug, Args)]
pub(crate) struct AdoptArgs {
    /// The compose files to adopt, in `-f` order (default: the standard one at the top level)
    #[arg(value_name = "FILE")]
    pub(crate) files: Vec<std::path::PathBuf>,
    /// How many slots the pool has
    #[arg(long, default_value_t = 6, value_parser = slot_id)]
    pub(crate) slots: u32,
    /// Show the ports and warnings; write nothing
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Write docker-sandbox.toml even when one exists
    #[arg(long)]
    pub(crate) force: bool,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub(crate) format: Format,
}

#[derive(Debug, Args)]
pub(crate) struct ConfigArgs {
    /// The slot to show (default: this worktree's)
    #[arg(long, value_parser = slot_id, allow_hyphen_values = true)]
    pub(crate) slot: Option<u32>,
    /// Output format: compose's YAML, or its JSON
    #[arg(long, value_enum, default_value_t = ConfigFormat::Yaml)]
    pub(crate) format: ConfigFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ConfigFormat {
    Yaml,
    Json,
}

#[derive(Debug, Args)]
pub(crate) struct DoctorArgs {
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub(crate) format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ShellArg {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Args)]
pub(crate) struct CompletionArgs {
    /// The shell
    #[arg(value_enum)]
    pub(crate) shell: ShellArg,
}

/// A slot number, 1 to `MAX_SLOT`.
fn slot_id(s: &str) -> Result<u32, String> {
    use crate::pool::MAX_SLOT;
    match s.parse::<u32>() {
        Ok(n) if (1..=MAX_SLOT).contains(&n) => Ok(n),
        _ => Err(format!(
            "`{s}` is not a slot number: slots are numbered 1 to {MAX_SLOT}"
        )),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ProfileArg {
    Light,
    Standard,
    Heavy,
}

#[derive(Debug, Args)]
pub(crate) struct ClaimArgs {
    /// The lightest profile that will do
    #[arg(long, value_enum)]
    pub(crate) profile: Option<ProfileArg>,
    /// This slot and no other
    #[arg(long, value_parser = slot_id, allow_hyphen_values = true)]
    pub(crate) slot: Option<u32>,
    /// The engine to claim on (a name of the pool's `[engines.NAME]`, or
    /// `local`); by default the local one, else the first with room
    #[arg(long, value_name = "NAME")]
    pub(crate) engine: Option<String>,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub(crate) format: Format,
}

#[derive(Debug, Args)]
pub(crate) struct UpArgs {
    /// Build images before starting (compose up --build)
    #[arg(long)]
    pub(crate) build: bool,
    /// Do not wait for the startability gate
    #[arg(long)]
    pub(crate) no_wait: bool,
    /// Seconds the gate may take in all, at least 1 (default: the pool's gate_timeout, 120 s unless set)
    #[arg(long, value_name = "S", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) timeout: Option<u64>,
    /// When claiming: the lightest profile that will do
    #[arg(long, value_enum)]
    pub(crate) profile: Option<ProfileArg>,
    /// When claiming: the engine to claim on (a name of the pool's `[engines.NAME]`, or
    /// `local`); by default the local one, else the first with room
    #[arg(long, value_name = "NAME")]
    pub(crate) engine: Option<String>,
    /// On an engine other than the local one: first copy the images the stack needs
    /// that it lacks from the local engine (as `push-images`)
    #[arg(long)]
    pub(crate) push_images: bool,
    /// Show compose's own progress (by default only on a terminal, or when compose fails)
    #[arg(long, short = 'v')]
    pub(crate) verbose: bool,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub(crate) format: Format,
}

#[derive(Debug, Args)]
pub(crate) struct PushImagesArgs {
    /// The engine to copy to (a name of the pool's `[engines.NAME]`); by
    /// default the engine of this worktree's claim
    #[arg(long, value_name = "NAME", conflicts_with = "all")]
    pub(crate) engine: Option<String>,
    /// Copy to every engine of the pool but the local one
    #[arg(long)]
    pub(crate) all: bool,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub(crate) format: Format,
}

#[derive(Debug, Args)]
pub(crate) struct DownArgs {
    /// Also remove the stack's volumes (the database)
    #[arg(long, short = 'v')]
    pub(crate) volumes: bool,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub(crate) format: Format,
}

#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub(crate) format: Format,
}

#[derive(Debug, Args)]
pub(crate) struct LogsArgs {
    /// One service only
    pub(crate) service: Option<String>,
    /// Follow the logs
    #[arg(long, short = 'f')]
    pub(crate) follow: bool,
    /// Lines from the end of each log
    #[arg(long, short = 'n', value_name = "N")]
    pub(crate) tail: Option<u32>,
}

#[derive(Debug, Args)]
pub(crate) struct ReleaseArgs {
    /// The slot (default: this worktree's)
    #[arg(value_parser = slot_id, allow_hyphen_values = true)]
    pub(crate) slot: Option<u32>,
    /// Release a slot held by another worktree that still exists
    #[arg(long)]
    pub(crate) force: bool,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub(crate) format: Format,
}

#[derive(Debug, Args)]
pub(crate) struct GcArgs {
    /// Show what would be cleaned up; change nothing
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub(crate) format: Format,
}

#[derive(Debug, Args)]
pub(crate) struct ProvisionArgs {
    /// Show what would be created or repaired; touch nothing on disk
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Render every slot's files again, even those that are up to date
    #[arg(long)]
    pub(crate) force: bool,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub(crate) format: Format,
}

#[derive(Debug, Args)]
pub(crate) struct SlotsArgs {
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub(crate) format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    Table,
    Json,
}
