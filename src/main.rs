//! The `layerwise` command line; everything it does is in the library's [`layerwise::cli`].

fn main() -> std::process::ExitCode {
    // A closed pipe (`layerwise ... | head`) ends the command quietly, as it does other tools,
    // instead of failing the next print.
    // SAFETY: setting a signal's disposition to the default, before any thread starts.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    std::process::ExitCode::from(layerwise::cli::main(std::env::args_os()))
}
