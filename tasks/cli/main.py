"""The ``convforge`` command line.

Each module in ``tasks/cli/commands/`` adds one subcommand through
``add_parser(subparsers)``; the parser it adds sets ``func`` (called with the
parsed args, returning an exit code or None). Modules are discovered, so a new
command is a new file.

User mistakes raise ``tasks.core.errors.UserError``: printed as one ``error:`` line,
exit code 2, no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import sys

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # its INFO lines (database set-up) are noise here


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every discovered subcommand."""
    import tasks.cli.commands as commands

    parser = argparse.ArgumentParser(
        prog="convforge",
        description="Convolutional networks: train, evaluate, export and serve, tracked in MLflow.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"tasks.cli.commands.{info.name}")
        module.add_parser(sub)
    return parser


def check_environment() -> None:
    """Settings read from the environment are checked once, as one error line (``CONVFORGE_MAX_PIXELS``)."""
    from pipelines.decode import max_pixels
    from tasks.core.errors import UserError

    try:
        max_pixels()
    except ValueError as err:
        raise UserError(str(err)) from None


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    from tasks.core.errors import UserError
    from tasks.core.quiet_tensorflow import quiet_tensorflow_import

    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "needs_tensorflow", True):  # listings answer at once without it
        quiet_tensorflow_import()
    for name in ("mlflow", "alembic"):  # when mlflow was imported before the env default applied
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        if getattr(args, "needs_tensorflow", True):
            check_environment()
        code = args.func(args)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `convforge recipes | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
