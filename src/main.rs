//! The `payymo` binary: parse the command line and run it.

fn main() -> std::process::ExitCode {
    payymo::cli::main()
}
