"""The ``layerwise`` command of the Python package: the command line of the Rust engine,
run in this process (its exit status is the command's)."""

import sys

from . import _native


def main() -> None:
    """Runs ``layerwise`` with this process's arguments and exits with its status."""
    sys.exit(_native.cli(sys.argv))


if __name__ == "__main__":
    main()
