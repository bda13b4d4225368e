//! The command line: argument parsing (clap) and one module per group of commands.

mod cache_cmd;
mod exec_stage;
mod inspect;
mod logging;
mod pipeline_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Exit codes, as documented in `--help`.
pub mod exit {
    /// A stage failed (or `cache verify` found damage).
    pub const FAILED: u8 = 1;
    /// The pipeline file or the command line is invalid.
    pub const INVALID: u8 = 2;
    /// The cache is in use and `--no-wait` was given.
    pub const BUSY: u8 = 3;
    /// Interrupted by Ctrl-C.
    pub const INTERRUPTED: u8 = 130;
}

const ABOUT: &str = "Declarative, content-addressed experiment pipelines for reproducing ELECTRA.";

/// The long description of `--help`: what electra-pipe does, the stage kinds and backends of
/// this build, and typical use.
fn long_about() -> String {
    let kinds = electra_stages::registry().names().join(", ");
    let backends = electra_stages::backend::describe();
    format!(
        "\
electra-pipe runs a pipeline of stages described in a YAML file (see docs/pipeline-format.md):
each stage has a kind ({kinds}; see `electra-pipe kinds` and docs/stage-kinds.md), params,
and may expand over a matrix such as task × seed.
Stages that reference each other's outputs form a DAG; independent stages run in parallel.

Every result is stored in a content-addressed cache keyed by the stage kind, its params and
the digests of its inputs, so an unchanged stage never runs twice and an interrupted run
resumes where it stopped.

The stages that run a model (pretrain, finetune) take `backend:` (or --backend NAME):
{backends}

Typical use:
  electra-pipe --data ../shared/data validate pipelines/data.yaml
  electra-pipe --data ../shared/data plan pipelines/data.yaml --set seed=1
  electra-pipe --data ../shared/data run pipelines/data.yaml -j 2
  electra-pipe --data ../shared/data run pipelines/pretrain-tiny.yaml --backend wgpu
  electra-pipe status                      progress of the current or last run
  electra-pipe show examples               a stage's record, metrics, outputs and log"
    )
}

const EXIT_CODES: &str = "\
Exit codes: 0 success · 1 a stage failed · 2 invalid pipeline or arguments ·
3 cache busy with --no-wait · 130 interrupted (Ctrl-C).

Environment: ELECTRA_PIPE_DATA (data directory), ELECTRA_PIPE_CACHE (cache directory).";

/// Command-line arguments.
#[derive(Debug, Parser)]
#[command(name = "electra-pipe", version, about = ABOUT, long_about = long_about(), after_help = EXIT_CODES)]
pub struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// Flags every command accepts.
#[derive(Debug, Args)]
struct Global {
    /// Cache directory (results, logs, run journals).
    #[arg(
        long,
        global = true,
        env = "ELECTRA_PIPE_CACHE",
        default_value = "cache",
        value_name = "DIR"
    )]
    cache: PathBuf,
    /// Data directory that `${data}` stands for in pipeline files.
    #[arg(
        long,
        global = true,
        env = "ELECTRA_PIPE_DATA",
        default_value = "data",
        value_name = "DIR"
    )]
    data: PathBuf,
    /// More log detail (-v debug, -vv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Only warnings, failures and the final summary.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Pipeline file and variable overrides.
#[derive(Debug, Args)]
struct PipelineArgs {
    /// The pipeline file (YAML).
    pipeline: PathBuf,
    /// Override a pipeline variable: --set seeds=[1,2] --set steps=100.
    #[arg(long = "set", value_name = "NAME=VALUE", value_parser = parse_set)]
    set: Vec<(String, String)>,
    // The help names the backends of this build: `backend_help`.
    #[arg(long, value_name = "NAME", help = backend_help())]
    backend: Option<String>,
    /// Where stages that name no `executor:` run: `local` (this machine, the default) or
    /// `slurm` (each stage a Slurm job; the nodes must share the cache directory and see this
    /// binary at the same path).
    #[arg(long, value_name = "NAME", value_parser = clap::builder::PossibleValuesParser::new(crate::spec::EXECUTORS))]
    executor: Option<String>,
}

/// `--backend`'s help: the backends this build has.
fn backend_help() -> String {
    format!(
        "Backend of the stages that run a model (pretrain, finetune): {} in this build \
         (`electra-pipe kinds` lists every backend). Shorthand for --set backend=NAME, for \
         pipelines whose stages say `backend: ${{backend}}`",
        electra_stages::backend::BACKENDS.join(", ")
    )
}

fn parse_set(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("expected NAME=VALUE, found `{text}`"))
}

/// How `run` talks to Slurm, for pipelines with Slurm stages.
#[derive(Debug, Args)]
struct SlurmArgs {
    /// With Slurm stages: poll the controller at most every SECONDS (one `squeue` for
    /// every job of the run; polls start at 0.5 s after a submission and slow down to this).
    #[arg(long, default_value_t = 5.0, value_name = "SECONDS")]
    slurm_poll: f64,
    /// With Slurm stages: stages ready together (and with the same resources) are submitted
    /// as one job array; at most N of its tasks run at once (`--array=...%N`). `-j` still
    /// bounds the stages in the queue.
    #[arg(long, default_value_t = 100, value_name = "N")]
    slurm_array_limit: usize,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a pipeline: reuse cached results, run the rest in parallel.
    Run {
        #[command(flatten)]
        pipeline: PipelineArgs,
        /// Most stages running at once.
        #[arg(short, long, default_value_t = 2, value_name = "N")]
        jobs: usize,
        /// CPUs the running stages may occupy together (default: this machine's).
        #[arg(long, value_name = "N")]
        cpus: Option<usize>,
        /// Re-run a stage (a name like `train`, or one cell like `ft[task=sst2,seed=1]`) even if cached. Repeatable.
        #[arg(long, value_name = "STAGE")]
        force: Vec<String>,
        /// Fail at once if another process is using the cache, instead of waiting.
        #[arg(long)]
        no_wait: bool,
        #[command(flatten)]
        slurm: SlurmArgs,
    },
    /// Dry run: show each stage's status (cached / will run / blocked) and why.
    Plan {
        #[command(flatten)]
        pipeline: PipelineArgs,
        /// Show what --force STAGE would do.
        #[arg(long, value_name = "STAGE")]
        force: Vec<String>,
        /// Fail at once if another process is using the cache.
        #[arg(long)]
        no_wait: bool,
    },
    /// Check a pipeline file (syntax, stage kinds and their params, references, cycles).
    Validate {
        #[command(flatten)]
        pipeline: PipelineArgs,
    },
    /// Print the stage graph in Graphviz dot or Mermaid syntax.
    Graph {
        #[command(flatten)]
        pipeline: PipelineArgs,
        /// Output syntax.
        #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
        format: GraphFormat,
        /// One node per stage instead of one per matrix cell.
        #[arg(long)]
        stages: bool,
    },
    /// Progress of the current or last run (from its journal; never waits for the cache).
    Status,
    /// A stage's cached record, its outputs' paths and the end of its log.
    Show {
        /// A stage name (all its cells) or one instance such as `ft[task=sst2,seed=1]`.
        stage: String,
        /// Only this pipeline's results (its `pipeline:` name or file stem).
        #[arg(long)]
        pipeline: Option<String>,
        /// How many log lines to print.
        #[arg(long, default_value_t = 15)]
        log_lines: usize,
    },
    /// Inspect and maintain the cache.
    #[command(subcommand)]
    Cache(CacheCommand),
    /// List the stage kinds and the backends this build knows.
    Kinds,
    /// Find the device each backend would run on (a GPU, its driver and libraries): what a
    /// `backend:` stage will use, or what is missing (exit 1).
    Devices {
        /// Backends to look at (default: every backend of this build).
        backends: Vec<String>,
    },
    /// Run one staged stage from its task file: what a Slurm job runs on its node.
    #[command(hide = true)]
    ExecStage {
        /// The `task.json` in the job's staging directory.
        task: PathBuf,
    },
}

/// Graph output syntax.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GraphFormat {
    /// Graphviz.
    Dot,
    /// Mermaid flowchart.
    Mermaid,
}

#[derive(Debug, Subcommand)]
enum CacheCommand {
    /// List stored results, oldest first.
    Ls,
    /// Disk usage of the cache by area and by stage.
    Du,
    /// Re-hash every stored object; report missing or corrupt ones (exit 1 if any).
    Verify,
    /// Delete results, objects, logs and checkpoints the given pipelines no longer reference.
    Gc {
        /// Pipelines whose current results to keep.
        #[arg(required = true)]
        pipelines: Vec<PathBuf>,
        /// Override pipeline variables (applies to every pipeline given).
        #[arg(long = "set", value_name = "NAME=VALUE", value_parser = parse_set)]
        set: Vec<(String, String)>,
        /// Say what would be deleted, delete nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Parses arguments, runs the command, and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.global.verbose, cli.global.quiet, cli.global.log_format);
    let result = match cli.command {
        Command::Run {
            pipeline,
            jobs,
            cpus,
            force,
            no_wait,
            slurm,
        } => pipeline_cmd::run(&cli.global, &pipeline, jobs, cpus, &force, no_wait, &slurm),
        Command::Plan {
            pipeline,
            force,
            no_wait,
        } => pipeline_cmd::plan(&cli.global, &pipeline, &force, no_wait),
        Command::Validate { pipeline } => pipeline_cmd::validate(&cli.global, &pipeline),
        Command::Graph {
            pipeline,
            format,
            stages,
        } => inspect::graph(&cli.global, &pipeline, format, stages),
        Command::Status => inspect::status(&cli.global),
        Command::Show {
            stage,
            pipeline,
            log_lines,
        } => inspect::show(&cli.global, &stage, pipeline.as_deref(), log_lines),
        Command::Cache(command) => cache_cmd::dispatch(&cli.global, command),
        Command::ExecStage { task } => exec_stage::run(&task),
        Command::Devices { backends } => inspect::devices(&backends),
        Command::Kinds => {
            let registry = electra_stages::registry();
            let width = registry.names().iter().map(|n| n.len()).max().unwrap_or(0);
            for kind in registry.kinds() {
                println!(
                    "{:<width$} v{:<3} {}",
                    kind.name(),
                    kind.version(),
                    kind.summary()
                );
            }
            println!(
                "\nbackends of the stages that run a model (`backend:`, --backend):\n{}",
                electra_stages::backend::describe()
            );
            Ok(ExitCode::SUCCESS)
        }
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            let code = if let Some(crate::cache::CacheError::Busy { .. }) = error.downcast_ref() {
                exit::BUSY
            } else if error.downcast_ref::<crate::spec::LoadError>().is_some()
                || error.downcast_ref::<Invalid>().is_some()
            {
                exit::INVALID
            } else {
                exit::FAILED
            };
            eprintln!("{}", render_error(&error));
            ExitCode::from(code)
        }
    }
}

fn render_error(error: &anyhow::Error) -> String {
    match error.downcast_ref::<crate::spec::LoadError>() {
        Some(crate::spec::LoadError::Invalid(diags)) => diags.to_string(),
        _ => format!("error: {error:#}"),
    }
}

/// An invalid command line (exit code 2), such as `--force` naming no stage.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);
