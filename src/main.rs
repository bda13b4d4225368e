//! The `electra-pipe` command.

fn main() -> std::process::ExitCode {
    electra_pipe::cli::main()
}
