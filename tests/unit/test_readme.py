"""The README's operator sections match the code: scopes, exit codes, Receipts activities,
alert subjects, commands."""
from __future__ import annotations

import re
from pathlib import Path

from giftsync import cli
from giftsync.commands import EXIT_CODES_HELP
from giftsync.commands.doctor import AIRTABLE_INIT_SCOPE, AIRTABLE_SCOPES, KLAVIYO_SCOPES, SHOPIFY_SCOPES
from giftsync.domain.ledger import Activity

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start:end if end != -1 else None]


def test_production_setup_names_every_scope_giftsync_checks():
    setup = section("Production setup")
    for scope in (*SHOPIFY_SCOPES, *AIRTABLE_SCOPES, AIRTABLE_INIT_SCOPE, *KLAVIYO_SCOPES):
        assert f"`{scope}`" in setup, scope
    table = [line for line in setup.splitlines() if line.startswith("| `")]
    assert [re.match(r"\| `([a-z_]+)`", line).group(1) for line in table] == list(SHOPIFY_SCOPES)
    for step in ("giftsync init-base", "giftsync doctor", "systemctl enable --now giftsync",
                 "systemd/giftsync.service", "#emails-klaviyo-metrics"):
        assert step in setup, step


def test_exit_codes_table_matches_the_cli():
    codes = re.findall(r"^  (\d+) ", EXIT_CODES_HELP, re.M)
    table = re.findall(r"^\| (\d+) \|", section("Exit codes"), re.M)
    assert table == codes


def test_every_receipts_activity_is_explained():
    receipts = section("Operations").split("### Reading Receipts")[1].split("###")[0]
    explained = re.findall(r"^\| `([A-Z_]+)` \|", receipts, re.M)
    assert sorted(explained) == sorted(a.value for a in Activity)


def test_every_alert_the_code_sends_is_explained():
    subjects = set()
    for path in (ROOT / "giftsync" / "prongs").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        subjects |= set(re.findall(r"\.alert\(\s*f?\"[^\"]*\",\s*\"([^\"]+)\"", text))
        subjects |= set(re.findall(r"_alert_once\(\s*\w+,\s*\"([^\"]+)\"", text))
    assert len(subjects) >= 6
    alerts = section("Operations").split("### Alerts")[1]
    explained = set(re.findall(r"^\| ([A-Z][^|]+?) \|", alerts, re.M)) - {"Subject"}
    assert explained == subjects


def test_operations_covers_the_operator_commands():
    ops = section("Operations")
    for name in ("status", "unlock", "doctor", "once", "trace"):
        assert cli.command_module(name) is not None
        assert f"giftsync {name}" in ops, name
