fn main() -> std::process::ExitCode {
    portvakt::cli::main()
}
