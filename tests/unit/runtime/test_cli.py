"""The CLI over the fakes: parser, once, run, status, unlock, exit codes."""
from __future__ import annotations

import io
import json
import os
import signal
import threading
import time
from datetime import timedelta

import pytest

from giftsync import cli
from giftsync.adapters.fakes import FakeCardBook, FakeClock
from giftsync.bootstrap import build_fakes
from giftsync.errors import RetriableError
from giftsync.ports import FormTable, StatusRow
from giftsync.runtime.lease import LEASE_ROW, OFFLINE, ONLINE

from fake_settings import FAKE_ENV, fake_settings

CODE = "ABCDEFGHJKMNPQRS"


@pytest.fixture
def settings():
    return fake_settings()


pytestmark = pytest.mark.usefixtures("clean_giftsync_logging")


def run_cli(argv, app, settings, capsys=None):
    stream = io.StringIO()
    code = cli.main(argv, app_factory=lambda s: app, settings=settings, log_stream=stream)
    return code, stream.getvalue()


def shop_day(app):
    store = app.book.add_store("Downtown", "downtown@example.com")
    app.ledger.add_card(CODE, "50.00")
    rid = app.book.add_redemption("abcd efgh jkmn pqrs", "10", store)
    return store, rid


# -- parser ---------------------------------------------------------------------------------------

def test_parser_has_the_commands_and_common_options_on_both_sides():
    parser = cli.build_parser()
    choices = parser._subparsers._group_actions[0].choices
    assert {"run", "once", "status", "unlock"} <= set(choices)
    args = parser.parse_args(["--log-format", "json", "once", "--prong", "store"])
    assert args.log_format == "json" and args.prong == "store" and args.command == "once"
    args = parser.parse_args(["run", "--log-format", "json", "--log-level", "debug", "--no-wait"])
    assert args.log_format == "json" and args.log_level == "DEBUG" and args.no_wait
    args = parser.parse_args(["status", "--json"])
    assert args.json and args.log_format is None and args.env_file is None


def test_bad_arguments_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        cli.build_parser().parse_args(["once", "--prong", "nope"])
    assert info.value.code == 2
    assert cli.main([]) == 2


def test_help_documents_exit_codes(capsys):
    for argv in (["--help"], ["once", "--help"], ["unlock", "--help"]):
        with pytest.raises(SystemExit):
            cli.main(argv)
        out = capsys.readouterr().out
        assert "exit codes" in out and "78" in out and "  3 " in out


def test_later_commands_plug_in_as_modules():
    assert cli.command_module("no-such-command") is None
    assert cli.command_module("once").run


# -- once -----------------------------------------------------------------------------------------

def test_once_runs_a_cycle_and_releases_the_lease(settings):
    app = build_fakes(settings)
    _, rid = shop_day(app)
    code, out = run_cli(["once"], app, settings)
    assert code == 0
    assert app.book.fields(FormTable.REDEMPTIONS, rid)["Status"] == "Done"
    assert app.book.read_status(LEASE_ROW).state == OFFLINE
    assert app.book.read_status("cursor:store").last_run is not None
    assert CODE not in out and CODE.lower() not in out and "PQRS" in out


def test_once_one_prong_only(settings):
    app = build_fakes(settings)
    _, rid = shop_day(app)
    assert run_cli(["once", "--prong", "shopify-purchases"], app, settings)[0] == 0
    assert app.book.fields(FormTable.REDEMPTIONS, rid).get("Status") in (None, "", "New")


def test_once_refuses_while_another_daemon_holds_the_lease(settings):
    app = build_fakes(settings)
    _, rid = shop_day(app)
    now = app.clock.now()
    app.book.write_status(StatusRow(name=LEASE_ROW, state=ONLINE, holder="other:1:1", heartbeat=now,
                                    lease_until=now + timedelta(seconds=60)))
    code, out = run_cli(["once"], app, settings)
    assert code == 3 and "other:1:1" in out
    assert app.book.fields(FormTable.REDEMPTIONS, rid).get("Status") in (None, "", "New")


class DownBook(FakeCardBook):
    """Airtable answers the lease but every form poll fails."""

    def pending_redemptions(self, limit=100):
        raise RetriableError("airtable", "503 Service Unavailable")


def test_once_exits_1_when_a_step_failed(settings):
    clock = FakeClock()
    book = DownBook(clock)
    app = build_fakes(settings, clock=clock, book=book)
    code, _ = run_cli(["once", "--prong", "store"], app, settings)
    assert code == 1
    assert book.read_status(LEASE_ROW).state == OFFLINE
    assert "error" in book.read_status("cursor:store").details


def test_once_exits_75_when_the_status_table_is_unreachable(settings):
    app = build_fakes(settings)
    app.book.fail_next("read_status", RetriableError("airtable", "timeout"))
    assert run_cli(["once"], app, settings)[0] == 75


def test_configuration_errors_exit_78_and_name_the_setting(tmp_path, capsys, monkeypatch):
    for name in FAKE_ENV:
        monkeypatch.delenv(name, raising=False)
    env_file = tmp_path / "bad.env"
    env_file.write_text("GIFTSYNC_CODE_SECRET=tooshort\nGIFTSYNC_LEASE_SECONDS=soon\n")
    assert cli.main(["--env-file", str(env_file), "once"]) == 78
    err = capsys.readouterr().err
    assert "GIFTSYNC_CODE_SECRET" in err and "GIFTSYNC_LEASE_SECONDS" in err and "AIRTABLE_TOKEN" in err
    assert "tooshort" not in err


# -- run ------------------------------------------------------------------------------------------

def test_run_no_wait_exits_3_when_the_lease_is_held(settings):
    app = build_fakes(settings)
    now = app.clock.now()
    app.book.write_status(StatusRow(name=LEASE_ROW, state=ONLINE, holder="other:1:1", heartbeat=now,
                                    lease_until=now + timedelta(seconds=60)))
    code, out = run_cli(["run", "--no-wait"], app, settings)
    assert code == 3 and "other=other:1:1" in out


def test_run_processes_then_stops_cleanly_on_sigterm(settings):
    app = build_fakes(settings)
    _, rid = shop_day(app)
    old = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}

    def stop_when_done():
        deadline = time.monotonic() + 10
        while app.book.read_status("cursor:store") is None and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=stop_when_done, daemon=True).start()
    try:
        code, out = run_cli(["run"], app, settings)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    assert code == 0
    assert app.book.fields(FormTable.REDEMPTIONS, rid)["Status"] == "Done"
    assert app.book.read_status(LEASE_ROW).state == OFFLINE
    assert "signal received" in out and CODE not in out


# -- status / unlock ------------------------------------------------------------------------------

def test_status_shows_lease_prongs_and_backlog(settings, capsys):
    app = build_fakes(settings)
    shop_day(app)
    app.book.add_balance_check("XXXX", "a@example.com")
    app.lease.acquire()
    assert run_cli(["status"], app, settings)[0] == 0
    out = capsys.readouterr().out
    assert "held by fake:1:0000" in out
    assert "store" in out and "never" in out
    assert "Store Redemptions" in out and "1 to process" in out
    assert run_cli(["status", "--json"], app, settings)[0] == 0
    data = json.loads(capsys.readouterr().out)
    assert data["lease"]["holder"] == "fake:1:0000" and data["lease"]["active"]
    assert data["backlog"]["Balance Checks"]["pending"] == 1
    assert set(data["prongs"]) == {"store", "shopify-purchases", "shopify-redemptions", "reconcile"}


def test_unlock_refuses_a_live_lease_and_forces_it(settings, capsys):
    app = build_fakes(settings)
    now = app.clock.now()
    app.book.write_status(StatusRow(name=LEASE_ROW, state=ONLINE, holder="other:1:1", heartbeat=now,
                                    lease_until=now + timedelta(seconds=60)))
    assert run_cli(["unlock"], app, settings)[0] == 3
    assert "refused" in capsys.readouterr().out
    assert app.book.read_status(LEASE_ROW).state == ONLINE
    assert run_cli(["unlock", "--force", "--json"], app, settings)[0] == 0
    assert json.loads(capsys.readouterr().out)["ended"] is True
    assert app.book.read_status(LEASE_ROW).state == OFFLINE


def test_unlock_ends_an_expired_lease_without_force(settings, capsys):
    app = build_fakes(settings)
    now = app.clock.now()
    app.book.write_status(StatusRow(name=LEASE_ROW, state=ONLINE, holder="dead:1:1",
                                    heartbeat=now - timedelta(seconds=200),
                                    lease_until=now - timedelta(seconds=110)))
    assert run_cli(["unlock"], app, settings)[0] == 0
    assert app.book.read_status(LEASE_ROW).state == OFFLINE


def test_once_runs_the_interval_prongs_and_reconcile_only_on_demand(settings):
    app = build_fakes(settings)
    shop_day(app)
    assert run_cli(["once"], app, settings)[0] == 0
    for name in ("store", "shopify-purchases", "shopify-redemptions"):
        assert app.book.read_status(f"cursor:{name}").last_run is not None, name
    assert app.book.read_status("cursor:reconcile") is None
    assert run_cli(["once", "--prong", "reconcile"], app, settings)[0] == 0
    assert app.book.read_status("cursor:reconcile").last_run is not None
