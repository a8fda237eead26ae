//! The `layerwise` command line; everything it does is in the library's [`layerwise::cli`].

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(layerwise::cli::main(std::env::args_os()))
}
