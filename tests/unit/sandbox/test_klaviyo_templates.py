"""The Klaviyo twin's Django-like template renderer and the packaged metric templates."""
from __future__ import annotations

import json

import pytest

from giftsync.sandbox.klaviyo.outbox import Outbox, render_context
from giftsync.sandbox.klaviyo.templates import TEMPLATES_FILE, Template, TemplateError, TemplateSet, render

CTX = {
    "event": {"Code": "ABCD", "Amount": 50.0, "Gift Card Code": "SPACED", "Sender": {"name": "Bob"},
              "Items": [{"title": "Card"}, {"title": "Box"}], "Zero": 0, "Empty": "", "Flag": False,
              "extra": {"note": "n"}},
    "person": {"email": "ann@example.com", "first_name": "Ann", "tier": "gold"},
    "first_name": "Ann",
}


@pytest.mark.parametrize("source, expected", [
    ("{{ event.Code }}", "ABCD"),
    ("{{event.Code}}", "ABCD"),
    ("{{ person.email }} / {{ first_name }}", "ann@example.com / Ann"),
    ("{{ event.Sender.name }}", "Bob"),
    ("{{ event.Items.1.title }}", "Box"),
    ("{{ event.extra.note }}", "n"),
    ("{{ event|lookup:'Gift Card Code' }}", "SPACED"),
    ("{{ person|lookup:'tier' }}", "gold"),
    ("[{{ event.Missing }}]", "[]"),
    ("[{{ event.Code.deeper }}]", "[]"),
    ("{{ event.Missing|default:'there' }}", "there"),
    ("{{ event.Empty|default:'x' }}", "x"),
    ("{{ event.Zero|default:'x' }}", "x"),
    ("{{ event.Zero|default_if_none:'x' }}", "0"),
    ("{{ event.Missing|default:person.first_name }}", "Ann"),
    ("{{ event.Code|lower }}{{ person.first_name|upper }}", "abcdANN"),
    ("{{ event.Amount }}", "50.0"),
    ("{{ event.Amount|floatformat:2 }}", "50.00"),
    ("{{ event.Amount|floatformat }}", "50"),
    ("{{ event.Items|length }}", "2"),
    ("{{ 'lit' }} {{ 3 }}", "lit 3"),
    ("{{ event.Flag }}", "False"),
    ("{% if event.Code %}yes{% else %}no{% endif %}", "yes"),
    ("{% if event.Missing %}yes{% else %}no{% endif %}", "no"),
    ("{% if not event.Missing %}yes{% endif %}", "yes"),
    ("{% if event.Amount > 10 and event.Code == 'ABCD' %}big{% endif %}", "big"),
    ("{% if event.Amount < 10 or event.Flag %}a{% elif event.Zero == 0 %}b{% else %}c{% endif %}", "b"),
    ("{% if event.Flag == False %}f{% endif %}", "f"),
    ("{% if 'AB' in event.Code %}in{% endif %}", "in"),
    ("{% if event.Missing > 3 %}x{% else %}none{% endif %}", "none"),
    ("{% for i in event.Items %}{{ forloop.counter }}.{{ i.title }} {% endfor %}", "1.Card 2.Box "),
    ("{% for i in event.Missing %}x{% empty %}nothing{% endfor %}", "nothing"),
    ("a{# a comment #}b", "ab"),
    ("{{ event.Sender }}", '{"name": "Bob"}'),
])
def test_render(source, expected):
    assert render(source, CTX) == expected


@pytest.mark.parametrize("source", [
    "{{ event.Code|nosuchfilter }}",
    "{% if event.Code %}unclosed",
    "{% endif %}",
    "{% include 'x' %}",
    "{{ }}",
    "{{ __import__('os') }}",
    "{{ event.Code|default:'unterminated }}",
    "{% for in x %}{% endfor %}",
    "{% if event.Code == %}x{% endif %}",
])
def test_bad_templates_are_refused_at_compile_time(source):
    with pytest.raises(TemplateError):
        Template(source)


def test_no_evaluation_of_python():
    # looks like attribute access on Python objects: resolved on dicts/lists only, never getattr
    assert render("{{ event.Code.__class__ }}{{ event.Items.__len__ }}", CTX) == ""


def test_packaged_templates_load_and_mark_crm_only_metrics():
    data = json.loads(TEMPLATES_FILE.read_text())
    ts = TemplateSet(data)
    for name in ("Gift Card Delivered", "Gift Card Activated", "Gift Card Purchase Confirmed",
                 "Store Card Request Processed", "Store Redemption Processed", "Balance Check Answered",
                 "giftsync Alert"):
        assert ts.get(name).email is True, name
    for name in ("Gift Card Issued", "Gift Card Redeemed"):
        assert ts.get(name).email is False, name


def _deliver(metric, props, profile=None, templates=None, unknown=False):
    ts = TemplateSet()
    if templates:
        ts.update(templates)
    box = Outbox(ts, unknown_metrics=unknown)
    profile = profile or {"id": "P1", "email": "ann@example.com", "first_name": "Ann", "properties": {}}
    event = {"id": "E1", "metric": metric, "properties": props, "unique_id": "u", "value": None}
    return box.deliver(event, profile), box.items


def test_every_email_metric_renders_with_typical_properties():
    # the property names giftsync's prongs send (README, "Emails (Klaviyo metrics)")
    props = {"Code": "ABCD2345EFGH6789", "Card": "•••• •••• •••• 6789", "Amount": "25.00", "Currency": "USD",
             "Balance After": "20.00", "Balance": "20.00", "Store": "Main St", "Record": "recX", "Outcome": "Redeemed",
             "Order": "#1001", "Quantity": 1, "Kind": "Digital", "Cards": ["•••• •••• •••• 1111"],
             "Subject": "hi", "Details": "details", "Recipient Email": "rita@example.com"}
    for metric in ("Gift Card Delivered", "Gift Card Activated", "Gift Card Purchase Confirmed",
                   "Store Card Request Processed", "Store Redemption Processed", "Balance Check Answered",
                   "giftsync Alert"):
        (oid, status), items = _deliver(metric, props)
        assert status == "sent" and oid == items[0]["id"]
        mail = items[0]
        assert mail["to"] == "ann@example.com" and mail["subject"] and mail["body"]
        assert "{{" not in mail["body"] and "{%" not in mail["subject"]
        if metric == "Gift Card Delivered":
            assert "ABCD2345EFGH6789" in mail["body"]
        elif metric != "giftsync Alert":  # only the delivery email carries the whole code
            assert "ABCD2345EFGH6789" not in mail["body"] + mail["subject"]
    (_, items) = _deliver("Store Card Request Processed", props)
    assert "- •••• •••• •••• 1111" in items[0]["body"]
    (_, items) = _deliver("Store Redemption Processed", props)
    assert "Balance after: 20.00 USD" in items[0]["body"]


def test_if_tag_reads_a_property_with_spaces_through_lookup():
    src = "{% if event|lookup:'Balance After' %}{{ event|lookup:'Balance After' }}{% else %}none{% endif %}"
    assert render(src, {"event": {"Balance After": "9.00"}}) == "9.00"
    assert render(src, {"event": {}}) == "none"
    assert render("{% if event|lookup:'A B' == 'x y' and not event.C %}yes{% endif %}",
                  {"event": {"A B": "x y"}}) == "yes"


def test_outbox_skips_and_fallback():
    assert _deliver("Gift Card Issued", {})[0] == (None, "metric sends no email")
    assert _deliver("Unknown", {})[0] == (None, "no template for this metric")
    assert _deliver("Gift Card Delivered", {}, profile={"id": "P", "email": None, "properties": {}})[0] == \
        (None, "profile has no email")
    (_, status), items = _deliver("Unknown", {"A": 1, "$extra": {"x": 1}}, unknown=True)
    assert status == "sent" and items[0]["subject"] == "Unknown" and "A: 1" in items[0]["body"]
    assert "$extra" not in items[0]["body"]
    # a listed metric with email=true and no subject/body uses the fallback
    (_, status), items = _deliver("Listed", {"K": "v"}, templates={"Listed": {"email": True}})
    assert status == "sent" and "K: v" in items[0]["body"]


def test_render_context_exposes_value_and_profile_properties():
    ctx = render_context("M", {"properties": {"$extra": {"a": 1}}, "value": 9.5, "value_currency": "EUR",
                               "unique_id": "u"},
                         {"id": "P", "email": "e@example.com", "first_name": "E", "properties": {"vip": True}})
    assert ctx["event"]["$value"] == 9.5 and ctx["event"]["extra"] == {"a": 1}
    assert ctx["person"]["vip"] is True and ctx["email"] == "e@example.com" and ctx["metric"] == "M"
