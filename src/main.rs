//! The `masterz` command.

/// mimalloc instead of glibc's malloc: under webhook load glibc's allocator took about 16 % of
/// the server's CPU samples (`_int_malloc`, `_int_free`, `malloc_consolidate`, …).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    masterz::cli::main()
}
