//! The `masterz` command.

fn main() -> std::process::ExitCode {
    masterz::cli::main()
}
