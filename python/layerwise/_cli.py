"""The ``layerwise`` command of the Python package: the command line of the Rust engine,
run in this process (its exit status is the command's)."""

import signal
import sys

from . import _native


def main() -> None:
    """Runs ``layerwise`` with this process's arguments and exits with its status."""
    # Ctrl-C ends a command at once, as it ends a native program (Python's handler would only
    # raise once the engine returns); `layerwise run` installs its own, which stops after the
    # batch in progress.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    # A closed pipe (`layerwise ... | head`) ends it quietly, as it ends the native command.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(_native.cli(sys.argv))


if __name__ == "__main__":
    main()
