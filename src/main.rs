fn main() -> std::process::ExitCode {
    docker_sandbox::run(std::env::args_os())
}
