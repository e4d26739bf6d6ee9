"""Command-line plumbing shared by the binaries: user mistakes end in one line, Ctrl-C in status 130.

absl and ml_collections report some mistakes with a traceback: an unknown
``--config.KEY`` is resolved when the flag is *defined* (at import, before
absl's error handling), and a config file that raises is reported with its
traceback embedded in the flag error. These helpers turn each into one
``error: ...`` line on stderr and exit status 2.
"""

from __future__ import annotations

import os
import sys

from absl import flags
from ml_collections import config_flags

from gauss2d.errors import Gauss2dError


def one_line(message: object) -> str:
    """A message with its whitespace (newlines included) collapsed."""
    return " ".join(str(message).split())


def fail(message: object) -> None:
    """Prints ``error: message`` on one line and exits with status 2."""
    print(f"error: {one_line(message)}", file=sys.stderr)
    sys.exit(2)


def exit_interrupted() -> None:
    """Ends the process with status 130 after Ctrl-C, without the interpreter's teardown.

    A SIGINT that lands while XLA compiles or runs a computation leaves its
    threads mid-flight, and the normal exit (``sys.exit``) then crashed in
    teardown with a segmentation fault after our message (seen in
    tests/test_cli_fit.py's Ctrl-C test). Nothing is lost by skipping it:
    results and checkpoints are written atomically and complete before the
    interrupt reaches this point, so only the streams need flushing.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(130)


# What ml_collections raises for an override key the config does not have.
_OVERRIDE_ERRORS = (AttributeError, KeyError, TypeError, ValueError)


def _bad_override(err: Exception, argv: list[str]) -> None:
    overrides = [a for a in argv[1:] if a.startswith("--config.")]
    fail(f"invalid config override ({err}): no such key, among {overrides}")


def overridden_keys(argv: list[str]) -> frozenset[str]:
    """The dotted keys given as ``--config.KEY=VALUE`` or ``--config.KEY VALUE`` (what a preset keeps)."""
    keys = (a[len("--config.") :].split("=", 1)[0] for a in argv if a.startswith("--config."))
    return frozenset(keys)


def define_config(default: str) -> flags.FlagHolder:
    """``DEFINE_config_file("config", default, lock_config=True)``; an unknown override key is one line."""
    try:
        return config_flags.DEFINE_config_file("config", default, "Config file.", lock_config=True)
    except _OVERRIDE_ERRORS as err:  # the default config, overridden from sys.argv at definition
        _bad_override(err, sys.argv)


def load_config(holder: flags.FlagHolder):
    """The config; a file that could not be loaded becomes a ``Gauss2dError``."""
    config = holder.value
    try:
        config["seed"]  # ml_collections defers a file's loading error to the first access
    except Exception as err:  # whatever the config file raised
        raise Gauss2dError(f"cannot load the --config file: {err}") from None
    return config


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing for ``app.run(flags_parser=...)``, errors in one line.

    The first line of a flag error names the flag; the last holds the cause
    (for a config file that raised, its exception, after a traceback).
    """
    try:
        return flags.FLAGS(argv)
    except flags.Error as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()] or ["bad flags"]
        fail(lines[0] if len(lines) == 1 else f"{lines[0]} {lines[-1]}")
    except _OVERRIDE_ERRORS as err:  # a --config=FILE given: its overrides are resolved here
        _bad_override(err, argv)


def default_workdir(config_path: str, fallback: str) -> str:
    """runs/kodak_codec for configs/kodak_codec.py, runs/kodak_codec_smoke for its :smoke."""
    stem = config_path.rsplit("/", 1)[-1].replace(".py", "").replace(":", "_")
    return f"runs/{stem or fallback}"
