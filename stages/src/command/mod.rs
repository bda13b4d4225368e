//! The `command` stage kind: a shell command with declared input paths and output paths,
//! in the manner of a DVC stage.
//!
//! ```yaml
//! count:
//!   kind: command
//!   params:
//!     cmd: wc -w < "$text" > count.txt
//!     inputs: { text: "@slice/slice.txt" }   # exported to the command as $text
//!     outputs: [count.txt]                  # relative to the working directory
//! ```
//!
//! The command runs with `sh -e -c` in an empty output directory; every declared output must
//! exist when it exits with status 0. Each input is exported as an environment variable of
//! its name (a list of paths is joined by newlines), alongside `EP_STAGE`, `EP_WORK_DIR`,
//! `EP_CHECKPOINT_DIR` and `EP_CPUS`.

mod params;
mod process;

use electra_pipe_api::{
    Metrics, ParamError, Params, StageContext, StageError, StageKind, StagePlan,
};

pub use params::CommandParams;

/// The `command` stage kind.
#[derive(Debug, Default, Clone, Copy)]
pub struct Command;

impl StageKind for Command {
    fn name(&self) -> &'static str {
        "command"
    }

    fn version(&self) -> u32 {
        1
    }

    fn summary(&self) -> &'static str {
        "a shell command with declared input paths and output files or directories"
    }

    fn plan(&self, params: &Params) -> Result<StagePlan, ParamError> {
        let params = CommandParams::parse(params)?;
        Ok(StagePlan {
            inputs: params.input_paths().map(str::to_owned).collect(),
            outputs: params.outputs.clone(),
            ..StagePlan::default()
        })
    }

    fn run(&self, params: &Params, ctx: &StageContext<'_>) -> Result<Metrics, StageError> {
        let params = CommandParams::parse(params)?;
        process::run(&params, ctx)?;
        Ok(Metrics::new())
    }
}
