"""The CLI's subcommands, one module each: ``add_parser(subparsers)`` and ``run(args) -> int``.

``giftsync.cli`` lists the command names in ``COMMANDS`` and loads each module that exists
(``init-base`` → ``giftsync/commands/init_base.py``). Shared here: exit codes, the common
options every subcommand also accepts, and how a command gets its Settings, logging and App.
"""
from __future__ import annotations

import argparse
from typing import Any, Callable

EXIT_OK = 0            # done
EXIT_FAILED = 1        # a prong cycle failed, a check failed, or an outside service refused (auth, validation)
EXIT_USAGE = 2         # bad command line (argparse)
EXIT_LEASE_HELD = 3    # another live daemon holds the lease (run --no-wait, once, unlock without --force)
EXIT_UNAVAILABLE = 75  # an outside service could not be reached (EX_TEMPFAIL): try again later
EXIT_CONFIG = 78       # a missing or malformed setting (EX_CONFIG)
EXIT_INTERRUPTED = 130  # interrupted; a second SIGTERM/SIGINT exits at once with 128 + signal number

EXIT_CODES_HELP = """exit codes:
  0    done (run: stopped cleanly; doctor: every check passed; init-base: the base is ready)
  1    a prong cycle failed, an outside service refused a request (auth, validation), a doctor
       check failed, or init-base found differences that need a person
  2    bad command line (init-base: Airtable refused the token or the base)
  3    the lease is held by another live daemon (run --no-wait, once, unlock without --force)
  75   an outside service could not be reached; try again later
  78   configuration error: a setting is missing or malformed (the message names each)
  130  interrupted (Ctrl-C); a second SIGTERM/SIGINT exits at once with 128 + signal number"""

LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def add_common_options(parser: argparse.ArgumentParser, *, top_level: bool) -> None:
    """``--env-file``, ``--log-format``, ``--log-level``: accepted before or after the
    subcommand (``giftsync --log-format json run`` and ``giftsync run --log-format json``)."""
    default: Any = None if top_level else argparse.SUPPRESS
    parser.add_argument("--env-file", metavar="PATH", default=default,
                        help="read settings from this .env file (default: ./.env when present); "
                             "the environment wins over the file")
    parser.add_argument("--log-format", choices=LOG_FORMATS, default=default,
                        help="one text line per event, or JSON lines (default: GIFTSYNC_LOG_FORMAT or text)")
    parser.add_argument("--log-level", choices=LOG_LEVELS, type=str.upper, default=default,
                        help="default: GIFTSYNC_LOG_LEVEL or INFO")


def common_parent() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    add_common_options(parent, top_level=False)
    return parent


def add_command(subparsers: Any, name: str, *, help: str, description: str = "",
                epilog: str = EXIT_CODES_HELP) -> argparse.ArgumentParser:
    """A subcommand parser with the common options and the exit codes in its help (the
    description is wrapped to the terminal's width by paragraph; the epilog is kept as is)."""
    return subparsers.add_parser(name, help=help, description=_wrap(description or help), epilog=epilog,
                                 parents=[common_parent()],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)


def _wrap(text: str) -> str:
    import shutil
    import textwrap
    width = max(40, min(shutil.get_terminal_size((80, 24)).columns, 80) - 2)
    return "\n\n".join(textwrap.fill(" ".join(p.split()), width) for p in text.split("\n\n"))


# -- what a command needs ------------------------------------------------------------------------

AppFactory = Callable[[Any], Any]     # Settings -> giftsync.bootstrap.App


def load_settings(args: argparse.Namespace):
    from ..config import Settings
    overrides = {}
    if getattr(args, "log_format", None):
        overrides["GIFTSYNC_LOG_FORMAT"] = args.log_format
    if getattr(args, "log_level", None):
        overrides["GIFTSYNC_LOG_LEVEL"] = args.log_level
    return Settings.load(env_file=getattr(args, "env_file", None), overrides=overrides)


def setup_logging(args: argparse.Namespace, settings: Any = None, stream: Any = None) -> None:
    from ..runtime import logs
    fmt = getattr(args, "log_format", None) or (settings.log_format if settings else "text")
    level = getattr(args, "log_level", None) or (settings.log_level if settings else "INFO")
    logs.setup(fmt=fmt, level=level, stream=stream if stream is not None else getattr(args, "_log_stream", None))
    if settings is not None:
        logs.register_settings_secrets(settings)


def settings_and_logging(args: argparse.Namespace):
    """Settings (the injected ones in tests), with logging set up from them."""
    settings = getattr(args, "_settings", None)
    if settings is None:
        settings = load_settings(args)
    setup_logging(args, settings)
    return settings


def make_app(args: argparse.Namespace, settings: Any, *, one_off: bool = False):
    """The App: ``args._app_factory(settings)`` when the caller injected one (tests:
    ``giftsync.bootstrap.build_fakes``), else ``giftsync.bootstrap.build_app``. ``one_off``:
    a short command that may run next to the daemon (status, unlock, doctor) and so takes a
    smaller share of Airtable's 5 requests/s."""
    factory = getattr(args, "_app_factory", None)
    if factory is not None:
        return factory(settings)
    from ..bootstrap import build_app
    return build_app(settings, one_off=one_off)
