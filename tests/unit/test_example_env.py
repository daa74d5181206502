"""config/example.env explains every setting of giftsync/config.py, and only those; the
values it shows are the defaults the code uses; filled in, it loads."""
from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

from giftsync.config import SHOP_DOMAIN_SUFFIX, Settings, check_each, default_value, env_names

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "example.env"
ASSIGNMENT = re.compile(r"^([A-Z][A-Z0-9_]*)=(.*)$")


def assignments() -> dict[str, tuple[int, str]]:
    out = {}
    for number, line in enumerate(EXAMPLE.read_text(encoding="utf-8").splitlines()):
        m = ASSIGNMENT.match(line)
        if m:
            assert m.group(1) not in out, f"{m.group(1)} twice"
            out[m.group(1)] = (number, m.group(2))
    return out


def test_every_setting_is_in_example_env_and_nothing_else():
    settings = set(env_names().values())
    listed = set(assignments())
    assert settings - listed == set(), "settings missing from config/example.env"
    assert listed - settings == set(), "config/example.env lists variables giftsync does not read"


def test_every_setting_is_explained_by_a_comment_above_it():
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    for name, (number, _) in assignments().items():
        i = number - 1
        while i >= 0 and ASSIGNMENT.match(lines[i]):
            i -= 1          # settings explained together (e.g. the three intervals)
        assert i >= 0 and lines[i].startswith("#") and len(lines[i].strip("#- ")) > 3, f"{name} has no explanation"


def test_the_values_shown_are_the_defaults():
    shown = {name: value for name, (_, value) in assignments().items() if value}
    values, problems = check_each({**shown, "AIRTABLE_TOKEN": "x" * 20})
    by_env = {f.metadata["env"]: f.name for f in fields(Settings)}
    for name, value in shown.items():
        assert name not in problems, (name, problems.get(name))
        assert values[by_env[name]] == default_value(by_env[name]), f"{name}={value} is not the default"


def test_filled_in_it_loads(tmp_path):
    text = EXAMPLE.read_text(encoding="utf-8")
    filled = {"AIRTABLE_TOKEN": "patExample0000000.0123456789abcdef", "AIRTABLE_BASE_ID": "appExample0000000",
              "SHOPIFY_SHOP": "example-shop", "SHOPIFY_ACCESS_TOKEN": "shpat_0123456789abcdef",
              "KLAVIYO_API_KEY": "pk_0123456789abcdef0123", "GIFTSYNC_CODE_SECRET": "k" * 48,
              "GIFTSYNC_ADMIN_EMAIL": "admin@example.com"}
    for name, value in filled.items():
        text = re.sub(rf"^{name}=.*$", f"{name}={value}", text, flags=re.M)
    path = tmp_path / "giftsync.env"
    path.write_text(text, encoding="utf-8")
    settings = Settings.load({}, env_file=path)
    assert settings.shopify_shop == "example-shop" + SHOP_DOMAIN_SUFFIX and settings.airtable_api_url is None
