"""``giftsync`` / ``python -m giftsync``: the command line.

Each subcommand lives in ``giftsync/commands/<name>.py`` with ``add_parser(subparsers)`` and
``run(args) -> int``; ``COMMANDS`` lists them in help order and a module that does not exist
yet is simply left out, so later commands (sandbox, init-base, doctor, trace) plug in
without touching this file. Exit codes: ``giftsync.commands`` (and ``giftsync --help``).
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from types import ModuleType
from typing import Any, Sequence

from . import __version__
from .commands import (EXIT_CODES_HELP, EXIT_CONFIG, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_UNAVAILABLE,
                       add_common_options)
from .errors import ConfigError, FatalError, RetriableError

COMMANDS = ("run", "once", "sandbox", "init-base", "doctor", "status", "unlock", "trace")


def command_module(name: str) -> ModuleType | None:
    module_name = f"giftsync.commands.{name.replace('-', '_')}"
    if importlib.util.find_spec(module_name) is None:
        return None
    return importlib.import_module(module_name)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="giftsync",
        description="giftsync: one gift card, one balance, across Shopify and an Airtable base; "
                    "every email through Klaviyo.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"giftsync {__version__}")
    add_common_options(parser, top_level=True)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = command_module(name)
        if module is None:
            continue
        sub = module.add_parser(subparsers)
        sub.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None, *, app_factory: Any = None, settings: Any = None,
         log_stream: Any = None) -> int:
    """Run a command and return its exit code. ``app_factory`` / ``settings`` / ``log_stream``
    let tests run commands over the fakes (``giftsync.bootstrap.build_fakes``)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help(sys.stderr)
        return 2
    args._app_factory = app_factory
    args._settings = settings
    args._log_stream = log_stream
    try:
        return int(args._run(args) or 0)
    except ConfigError as exc:
        print(f"giftsync: {exc}", file=sys.stderr)
        print("giftsync: see config/example.env for every setting", file=sys.stderr)
        return EXIT_CONFIG
    except RetriableError as exc:
        print(f"giftsync: {_safe(exc)} — try again later", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except FatalError as exc:
        print(f"giftsync: {_safe(exc)}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("giftsync: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _safe(exc: BaseException) -> str:
    from .runtime.logs import redact
    return redact(str(exc))


def entry() -> None:  # pragma: no cover - the console script
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    entry()
