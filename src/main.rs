//! The `payymo` binary: parse the command line and run it.

/// mimalloc instead of the system allocator: a request allocates and frees many small buffers
/// (headers, JSON, rows) across worker threads, where glibc's malloc spent ~10% of the service's
/// CPU under load (bench/README.md, `api-key-get`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    payymo::cli::main()
}
