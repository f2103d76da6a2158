//! Command-line definitions (clap derive) and nothing else: commands turn these
//! into plain values before calling the domain.

use clap::{Args, Parser, Subcommand, ValueEnum};

const ABOUT: &str =
    "Run many isolated copies of one Compose stack side by side, one per git worktree";

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  failure (bad project file, unreadable registry, I/O error, ...)
  2  usage error";

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
Idempotent: a complete slot is skipped, a slot with a missing file is repaired.

Exit codes:
  0  every slot exists (created, repaired or skipped)
  1  bad project file or template, unreadable registry, I/O error
  2  usage error")]
    Provision(ProvisionArgs),

    /// List the pool's slots: profile, API port, claim and status
    #[command(after_help = "\
JSON output (--format json) is an object: {\"pool\", \"state_dir\", \"slots\": [...]};
each slot has slot, profile, project, path, ports, workers, claimed_by, claimed_at,
orphaned, status. The README lists every field.

Exit codes:
  0  listed (an empty pool says to run `provision`)
  1  bad project file, unreadable registry
  2  usage error")]
    Slots(SlotsArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ProvisionArgs {
    /// Show what would be created or repaired; touch nothing on disk
    #[arg(long)]
    pub(crate) dry_run: bool,
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
