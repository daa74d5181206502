"""Every command's --help reads well: a one-line summary in `giftsync --help`, a description,
the exit codes, and --json where a script reads the result."""
from __future__ import annotations

import pytest

from giftsync import cli
from giftsync.commands import EXIT_CODES_HELP

JSON_COMMANDS = {"status", "unlock", "doctor", "init-base", "trace"}


def commands():
    parser = cli.build_parser()
    return parser._subparsers._group_actions[0].choices


def test_top_level_help_lists_every_command_with_a_summary_and_the_exit_codes(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert {"run", "once", "init-base", "doctor", "status", "unlock"} <= set(commands())
    for name in commands():
        assert f"    {name}" in out
    for code in ("0", "1", "2", "3", "75", "78", "130"):
        assert f"\n  {code} " in out


@pytest.mark.parametrize("name", sorted(commands()))
def test_each_command_has_help_a_description_and_exit_codes(name, capsys):
    sub = commands()[name]
    action = next(a for a in cli.build_parser()._subparsers._group_actions[0]._choices_actions if a.dest == name)
    assert action.help and len(action.help) < 90, "a one-line summary"
    with pytest.raises(SystemExit) as info:
        cli.main([name, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert len(sub.description or "") > 40, "a description of what it does"
    assert "exit codes:" in out and "\n  0 " in out
    assert max(len(line) for line in out.splitlines()) <= 100, "wrapped for a terminal"
    assert ("--json" in out) == (name in JSON_COMMANDS)
    for option in ("--env-file", "--log-format", "--log-level"):
        assert option in out


def test_init_base_and_doctor_document_their_own_exit_codes(capsys):
    for name, wanted in (("init-base", ("differs", "refused")), ("doctor", ("check failed", "one by one"))):
        with pytest.raises(SystemExit):
            cli.main([name, "--help"])
        epilog = capsys.readouterr().out.split("exit codes:")[1]
        assert all(w in epilog for w in wanted)
    assert "doctor" in EXIT_CODES_HELP and "init-base" in EXIT_CODES_HELP
