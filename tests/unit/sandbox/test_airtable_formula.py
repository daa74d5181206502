"""The Airtable twin's filterByFormula engine: tokenizer, parser, evaluator."""
from __future__ import annotations

from datetime import date, datetime, timezone

import pytest
from hypothesis import given, settings, strategies as st
from pyairtable import formulas as fx

from giftsync.sandbox.airtable.formula import (Context, FormulaError, compile_filter, evaluate, matches, parse,
                                              tokenize)

NOW = datetime(2024, 6, 1, 12, 0, 0, tzinfo=timezone.utc)
ROW = {
    "Code": "ABC",
    "Name": "Contact's Name",
    "Quote": 'Some "Quote" here',
    "Back": "a\\b",
    "Amount": 10,
    "Zero": 0,
    "Empty": None,
    "Done": True,
    "Used": None,           # unchecked checkbox = blank
    "Status": "New",
    "Email": "Ann@Example.com",
    "Created": datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc),
    "Day": datetime(2024, 5, 1, tzinfo=timezone.utc),
    "Store": "Main St, Harbour",   # a link: joined primary values
    "we}ird": "w",
}


def ctx(row: dict | None = None, record_id: str = "recAAAAAAAAAAAAAA") -> Context:
    row = ROW if row is None else row
    lower = {k.lower(): v for k, v in row.items()}
    return Context(record_id, lambda name: lower.get(name.lower()), now=NOW)


def known(name: str) -> bool:
    return name.lower() in {k.lower() for k in ROW}


def run(text, row=None):
    node = compile_filter(str(text), known)
    return evaluate(node, ctx(row))


def keep(text, row=None) -> bool:
    return matches(compile_filter(str(text), known), ctx(row))


# -- pyairtable.formulas output ---------------------------------------------------------
@pytest.mark.parametrize("formula, expected", [
    (fx.match({"Code": "ABC"}), True),
    (fx.match({"Code": "abc"}), False),                      # = on strings is case-sensitive
    (fx.match({"Code": "ABC", "Amount": (">=", 10)}), True),
    (fx.match({"Code": "ABC", "Amount": (">", 10)}), False),
    (fx.match({"Code": "x", "Done": True}, match_any=True), True),
    (fx.AND(fx.EQ(fx.Field("Used"), False), Status="New"), True),
    (fx.NOT(fx.Field("Status").eq("Done")), True),
    ((fx.Field("Amount").gt(1) & fx.Field("Zero").lte(2)) | ~fx.Field("Zero").eq(0), True),
    (fx.EQ(fx.RECORD_ID(), "recAAAAAAAAAAAAAA"), True),
    (fx.EQ(fx.RECORD_ID(), "recBBBBBBBBBBBBBB"), False),
    (fx.EQ(fx.Field("Empty"), fx.BLANK()), True),
    (fx.EQ(fx.Field("Code"), fx.BLANK()), False),
    (fx.IS_AFTER(fx.Field("Created"), fx.NOW()), False),
    (fx.IS_BEFORE(fx.Field("Created"), fx.NOW()), True),
    (fx.EQ(fx.LOWER(fx.Field("Email")), "ann@example.com"), True),
    (fx.EQ(fx.Field("we}ird"), "w"), True),
    (fx.EQ(fx.EQ(fx.Field("Amount"), 10), True), True),
    (fx.match({"Name": "Contact's Name"}), True),
    (fx.match({"Quote": 'Some "Quote" here'}), True),
    (fx.match({"Back": "a\\b"}), True),
    (fx.match({"Created": datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)}), True),
    (fx.match({"Day": date(2024, 5, 1)}), True),
    (fx.GT(fx.DATETIME_DIFF(fx.NOW(), fx.Field("Created"), "days"), 30), True),
])
def test_pyairtable_formulas(formula, expected):
    assert keep(formula) is expected


def test_pyairtable_emits_what_we_parse():
    assert str(fx.match({"Code": "AB'C", "Amount": (">=", 10)})) == "AND({Code}='AB\\'C', {Amount}>=10)"
    parse(str(fx.match({"Code": "AB'C"})))


# -- injection stays literal -----------------------------------------------------------
@pytest.mark.parametrize("value", [
    "x') OR TRUE() OR ('",
    "' OR 1=1 OR '",
    "\\' OR TRUE() OR \\'",
    "}) OR TRUE() OR ({Code",
    "\\",
    "'",
    '"',
    "ABC' & '",
    "\n",
])
def test_injection_strings_stay_literal(value):
    assert keep(fx.match({"Code": value})) is False
    assert keep(fx.match({"Code": value}), {**ROW, "Code": value}) is True


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=30))
def test_any_string_round_trips(value):
    formula = str(fx.match({"Code": value}))
    assert keep(formula, {**ROW, "Code": value}) is True
    assert keep(formula, {**ROW, "Code": value + "x"}) is False


# -- syntax -----------------------------------------------------------------------------
def test_strings_with_both_quotes_and_escapes():
    assert run("'it\\'s'") == "it's"
    assert run('"say \\"hi\\""') == 'say "hi"'
    assert run("'a \"raw\" quote'") == 'a "raw" quote'
    assert run("'back\\\\slash'") == "back\\slash"
    assert run("'line\\nbreak'") == "line\nbreak"


def test_bare_field_refs_and_case_insensitive_functions():
    assert keep("Amount = 10")
    assert keep("and(Amount > 5, lower(Code) = 'abc')")
    assert keep("Status != 'Done'")


def test_numbers_and_arithmetic():
    assert run("1 + 2 * 3") == 7
    assert run("(1 + 2) * 3") == 9
    assert run("-2 + 5") == 3
    assert run("10 / 4") == 2.5
    assert run("1.5 * 2") == 3.0
    assert run("{Empty} + 1") == 1          # blank is 0 in arithmetic
    assert keep("1 / 0") is False            # error → record excluded
    assert run("'a' & 1 & {Empty} & 'b'") == "a1b"


def test_blank_rules():
    assert keep("{Empty} = 0")
    assert keep("{Empty} = ''")
    assert keep("{Zero} = BLANK()")
    assert keep("{Zero} = ''")                # 0 == "" like blank
    assert keep("{Used} = FALSE()")
    assert keep("NOT({Used})")
    assert keep("{Done} = TRUE()")
    assert keep("{Done} = 1")
    assert keep("{Empty}") is False
    assert keep("{Zero}") is False


def test_logic():
    assert keep("OR(FALSE(), 0, '', BLANK(), 1)")
    assert keep("AND(1, 'x', TRUE())")
    assert not keep("AND(1, 0)")
    assert keep("XOR(1, 0, 0)")
    assert not keep("XOR(1, 1)")
    assert run("IF({Amount} > 5, 'big', 'small')") == "big"
    assert run("IF(0, 'x')") is None
    assert keep("NOT(0)")


def test_text_functions():
    assert run("LEN('héllo')") == 5
    assert run("UPPER('ab')") == "AB"
    assert run("TRIM('  a b  ')") == "a b"
    assert run("FIND('B', 'ABC')") == 2
    assert run("FIND('b', 'ABC')") == 0
    assert run("SEARCH('b', 'ABC')") == 2
    assert run("SEARCH('z', 'ABC')") is None
    assert run("FIND('A', 'ABCA', 2)") == 4
    assert keep("FIND('Harbour', {Store})")     # links are joined primary values
    assert keep("{Store} = 'Main St, Harbour'")


def test_dates():
    assert keep("FIND('2024-05-01', {Created})")
    assert keep("{Created} = DATETIME_PARSE('2024-05-01T12:00:00.000Z')")
    assert keep("IS_SAME({Created}, '2024-05-01', 'day')")
    assert not keep("IS_SAME({Created}, '2024-05-02', 'day')")
    assert run("DATETIME_DIFF('2024-05-03', '2024-05-01', 'days')") == 2
    assert run("DATETIME_DIFF(NOW(), {Created}, 'minutes')") == 31 * 24 * 60
    assert run("DATETIME_DIFF('2024-05-01T00:00:30Z', '2024-05-01')") == 30
    assert run("DATETIME_DIFF('2024-03-01', '2024-01-15', 'months')") == 1
    assert keep("IS_AFTER(DATEADD({Created}, 40, 'days'), NOW())")
    assert keep("IS_SAME(DATEADD({Created}, 1, 'months'), NOW())")
    assert run("DATETIME_PARSE('01/02/2024', 'DD/MM/YYYY')") == datetime(2024, 2, 1, tzinfo=timezone.utc)
    assert run("TODAY()") == datetime(2024, 6, 1, tzinfo=timezone.utc)
    assert keep("IS_AFTER({Empty}, NOW())") is False
    assert keep("DATETIME_PARSE('not a date')") is False


# -- errors -----------------------------------------------------------------------------
@pytest.mark.parametrize("text", [
    "AND(", "{Code", "'open", "FOO(1)", "1 +", "{Code} == 'a'", "NOT()", "IF(1)", "()", "{Code} 'x'",
    "@", "{}", "AND(1,,2)", "(" * 3000 + "1" + ")" * 3000,
])
def test_bad_syntax(text):
    with pytest.raises(FormulaError) as exc:
        compile_filter(text, known)
    assert exc.value.message == ("The formula for filtering records is invalid: "
                                 "Invalid formula. Please check your formula text.")


def test_unknown_fields_listed_lower_cased():
    with pytest.raises(FormulaError) as exc:
        compile_filter("OR({id}='x', {RecYaaPRK}=1, Code='a', {ID}=2)", known)
    assert exc.value.message == "The formula for filtering records is invalid: Unknown field names: id, recyaaprk"


def test_empty_formula_keeps_everything():
    assert compile_filter("", known) is None
    assert matches(None, ctx())


def test_tokenizer_never_evaluates_python():
    toks = tokenize("__import__('os')")
    assert toks[0].kind == "ident"
    for text in ("__import__('os')", "__import__('os').system('x')", "{Code}.__class__"):
        with pytest.raises(FormulaError):
            compile_filter(text, known)
