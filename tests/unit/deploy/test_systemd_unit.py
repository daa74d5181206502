"""The systemd unit: the settings production relies on, and systemd-analyze when present."""
from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[3] / "systemd" / "giftsync.service"


def _unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read_string(UNIT.read_text())
    return parser


def test_unit_runs_the_daemon_as_notify_service_with_watchdog_and_restart():
    svc = _unit()["Service"]
    assert svc["Type"] == "notify"
    assert svc["ExecStart"].split()[1:3] == ["run", "--log-format"]
    assert int(svc["WatchdogSec"]) > 0
    assert svc["Restart"] == "on-failure"
    assert svc["EnvironmentFile"].startswith("/etc/giftsync/")
    assert svc["User"] == "giftsync"
    for key in ("NoNewPrivileges", "ProtectSystem", "PrivateTmp", "ProtectHome"):
        assert key in svc


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_analyze_verify(tmp_path):
    # verify resolves ExecStart: point it at a stand-in binary so only the unit's syntax is judged
    fake = tmp_path / "giftsync"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    unit = tmp_path / "giftsync.service"
    unit.write_text(UNIT.read_text().replace("/opt/giftsync/bin/giftsync", str(fake)))
    out = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    problems = [line for line in (out.stdout + out.stderr).splitlines()
                if str(unit.name) in line and "giftsync.env" not in line]
    assert out.returncode == 0 or not problems, out.stdout + out.stderr
