"""Issue 25, no wrong answer at the edges of case input.

CSV: a quote never closed is the error of the row it opens, and every physical
line after that row's first is read again as a row of its own (an error naming
its line where it is one), never swallowed; a quoted cell closed after the size
limit is one error, and the lines inside it never become cases.

JSON: a document that gives `cases` twice is refused whole, as a duplicate key
is everywhere else, with no case of it evaluated.
"""

import os
import threading

import pytest
from helpers import results_of, written
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ISSUE = 'id,diagnosis,walks_unaided,weight_kg\na,gbs,no,70\nb,"gbs,no,70\nc,gbs,no,70\nd,mmn,,60\n'
LIMIT = 1_000_000  # caseio.MAX_CASE_CHARS


def seen(results):
    """(id, status, line) of each result, the id cut short."""
    return [(r["id"][:20], r["status"], r["line"]) for r in results]


def message(result):
    return result["error"]["message"]


# -- a quote never closed -------------------------------------------------------------


def test_the_rows_after_a_quote_never_closed_are_read(run_cli, tmp_path):
    path = written(tmp_path, ISSUE)
    results = results_of(run_cli, path)
    assert seen(results) == [("a", "ok", 2), ("cases.csv:2", "error", 3), ("c", "ok", 4), ("d", "ok", 5)]
    assert "never closed" in message(results[1]) and results[1]["error"]["source"] == str(path)
    assert "rows of their own" in message(results[1])


def test_the_rows_after_a_quote_never_closed_are_read_from_standard_input(run_cli):
    results = results_of(run_cli, "-", input=ISSUE)
    assert [(r["status"], r["line"]) for r in results] == [("ok", 2), ("error", 3), ("ok", 4), ("ok", 5)]


@pytest.mark.parametrize(
    "variant, text",
    [
        ("crlf", ISSUE.replace("\n", "\r\n")),
        ("bom", "\ufeff" + ISSUE),
        ("bom and crlf", "\ufeff" + ISSUE.replace("\n", "\r\n")),
    ],
)
def test_line_ends_and_a_byte_order_mark_change_nothing(run_cli, tmp_path, variant, text):
    results = results_of(run_cli, written(tmp_path, text))
    assert [(r["status"], r["line"]) for r in results] == [("ok", 2), ("error", 3), ("ok", 4), ("ok", 5)], variant


def test_a_blank_line_after_the_bad_row_is_no_case(run_cli, tmp_path):
    text = 'id,diagnosis\na,gbs\nb,"gbs\n\n   \nc,mmn\n'
    assert seen(results_of(run_cli, written(tmp_path, text))) == [
        ("a", "ok", 2),
        ("cases.csv:2", "error", 3),
        ("c", "ok", 6),
    ]


def test_a_quote_on_the_last_line_without_a_newline_is_that_rows_error(run_cli, tmp_path):
    results = results_of(run_cli, written(tmp_path, 'id,diagnosis\na,gbs\nb,mmn\nc,"als'))
    assert seen(results) == [("a", "ok", 2), ("b", "ok", 3), ("cases.csv:3", "error", 4)]
    assert "never closed" in message(results[2])


def test_each_later_line_that_opens_a_quote_too_is_its_own_error(run_cli, tmp_path):
    """Lines inside the unclosed quote that open a quote themselves can never be closed either."""
    text = 'id,diagnosis\nb,"gbs\nc,mmn\nx","y\nd,als\n'
    results = results_of(run_cli, written(tmp_path, text))
    assert [(r["status"], r["line"]) for r in results] == [("error", 2), ("ok", 3), ("error", 4), ("ok", 5)]
    assert "never closed" in message(results[2])


def test_a_stray_quote_ends_the_row_it_opens_and_the_line_it_is_on_is_read_again(run_cli, tmp_path):
    """b's quote runs on until the quote of line 5, which is not a closing one: b is the error, naming
    line 5; c is read, and line 5 starts a row whose quoted cell legitimately spans two lines."""
    text = 'id,diagnosis\na,gbs\nb,"gbs\nc,mmn\n"multi\nline",als\ne,cidp\n'
    results = results_of(run_cli, written(tmp_path, text))
    assert seen(results) == [
        ("a", "ok", 2),
        ("cases.csv:2", "error", 3),
        ("c", "ok", 4),
        ("multi\nline", "ok", 5),
        ("e", "ok", 7),
    ]
    assert "line 5" in message(results[1])


def test_a_quoted_cell_over_several_lines_is_still_one_cell_and_lines_stay_physical(run_cli, tmp_path):
    text = 'id,diagnosis,walks_unaided\r\n"p\r\n1",gbs,"\nno\n"\r\np2,"mm"""\r\nq,"\nr\n"\r\n'
    results = results_of(run_cli, written(tmp_path, text))
    assert [(r["id"], r["line"]) for r in results] == [("p\r\n1", 2), ("p2", 6), ("q", 7)]
    assert results[1]["error"] is None or results[1]["error"]["line"] == 6
    assert results[2]["error"] is None or results[2]["error"]["line"] == 7


def test_a_bad_byte_inside_a_quoted_cell_costs_its_row_not_the_rows_after(run_cli, tmp_path):
    text = b'id,diagnosis\na,"one\ntw\xffo\nmore",mmn\nc,als\n'
    results = results_of(run_cli, written(tmp_path, text))
    assert seen(results) == [("cases.csv:1", "error", 2), ("c", "ok", 5)]  # no case 'more"'
    assert "not UTF-8" in message(results[0]) and "line 3" in message(results[0])


# -- cells and rows over the size limits ------------------------------------------------


@pytest.mark.parametrize(
    "cell, words",
    [
        ("x" * 200_000 + "\nmore", "at most 100,000"),  # beyond csv's own field limit
        ("x" * (LIMIT + 100_000) + "\nmore", "more than 1,000,000"),  # a line beyond a case's limit
        (("x" * 999 + "\n") * 1_100 + "more", "more than 1,000,000"),  # many lines beyond it
    ],
)
def test_a_quoted_cell_over_the_limit_leaves_no_phantom_case(run_cli, tmp_path, cell, words):
    text = 'id,diagnosis,walks_unaided\na,gbs,no\nb,gbs,"' + cell + '"\nc,gbs,no\n'
    results = results_of(run_cli, written(tmp_path, text))
    assert [(r["id"], r["status"]) for r in results] == [("a", "ok"), ("cases.csv:2", "error"), ("c", "ok")]
    assert results[1]["line"] == 3 and words in message(results[1])
    assert results[2]["line"] == text.count("\n")


@pytest.mark.parametrize("cell", ["x" * (LIMIT + 100_000), "\n".join(["x" * 999] * 1_100)])
def test_a_huge_cell_whose_quote_never_closes_gives_the_rows_after_it(run_cli, tmp_path, cell):
    text = 'id,diagnosis\na,gbs\nb,"' + cell + "\nc,mmn\nd,als\n"
    last = text.count("\n")
    results = results_of(run_cli, written(tmp_path, text))
    assert seen(results)[0] == ("a", "ok", 2)
    assert results[1]["line"] == 3 and "never closed" in message(results[1])
    assert seen(results)[-2:] == [("c", "ok", last - 1), ("d", "ok", last)]
    # the lines of x: each a row of its own, an error (no diagnosis) naming its line
    assert [(r["status"], r["line"]) for r in results[2:-2]] == [("error", n) for n in range(4, last - 1)]


def test_a_huge_unclosed_cell_on_standard_input_gives_the_rows_after_it(run_cli):
    text = 'id,diagnosis\nb,"' + "\n".join(["x" * 999] * 1_100) + "\nc,mmn\n"
    results = results_of(run_cli, "-", input=text)
    assert results[0]["line"] == 2 and "never closed" in message(results[0])
    assert seen(results)[-1] == ("c", "ok", text.count("\n")) and len(results) == 1 + 1_099 + 1


# -- every line accounted for ----------------------------------------------------------

LINES = st.lists(
    st.one_of(
        st.tuples(st.just("good"), st.sampled_from(["mmn", "als", "gbs,no"])),
        st.tuples(st.just("bad"), st.sampled_from(['"mmn', 'x,"mmn', 'mmn,"no'])),
        st.tuples(st.just("blank"), st.sampled_from(["", " ", ","])),
    ),
    max_size=25,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=LINES, newline=st.sampled_from(["\n", "\r\n"]), bom=st.booleans(), last_newline=st.booleans())
def test_every_line_after_a_quote_never_closed_is_accounted_for(tmp_path_factory, lines, newline, bom, last_newline):
    """Rows without a quote and rows that open one that nothing closes (a later such row's quote
    is a stray quote inside the earlier one): each good row is its case, on its line; each bad row
    is its error, on its line; a blank line is nothing."""
    from ivig_advisor.engine.io.cases import read_cases

    rows = ["diagnosis,walks_unaided"] + [text for _, text in lines]
    text = ("\ufeff" if bom else "") + newline.join(rows) + (newline if last_newline else "")
    path = tmp_path_factory.mktemp("csv") / "cases.csv"
    path.write_bytes(text.encode("utf-8"))
    got = [(r.line, r.error is None) for r in read_cases([str(path)])]
    wanted = [(number, kind == "good") for number, (kind, _) in enumerate(lines, start=2) if kind != "blank"]
    assert got == (wanted or [(None, False)])  # no row at all: the file's one error


# -- JSON: `cases` given twice ---------------------------------------------------------

TWICE = '{"cases": [\n  {"diagnosis": "mmn"}\n],\n "cases": [\n  {"diagnosis": "als"}\n]}\n'


def test_a_json_file_with_cases_twice_is_refused_whole(run_cli, tmp_path):
    (result,) = results_of(run_cli, written(tmp_path, TWICE, "c.json"))
    assert result["status"] == "error" and result["error"]["field"] == "cases" and result["line"] == 4
    assert "duplicate key 'cases'" in message(result) and "line 1" in message(result) and "line 4" in message(result)


def test_a_long_json_list_before_a_second_cases_is_refused_whole_too(run_cli, tmp_path):
    """The first list, longer than a case may be, is passed over, not held, to find the second key."""
    cases = ",\n".join(['{"diagnosis": "mmn", "note": "%s"}' % ("x" * 95_000)] * 12)
    text = '{"cases": [\n' + cases + '\n],\n"note": 1,\n"cases": []}'
    assert len(text) > LIMIT
    (result,) = results_of(run_cli, written(tmp_path, text, "c.json"))
    assert "duplicate key 'cases'" in message(result) and "again on line 16" in message(result)


def test_a_json_file_with_another_key_beside_cases_is_refused_whole(run_cli, tmp_path):
    text = '{"cases": [{"diagnosis": "mmn"}, {"diagnosis": "als"}],\n "diagnosis": "gbs"}'
    (result,) = results_of(run_cli, written(tmp_path, text, "c.json"))
    assert "'cases' must be the only key" in message(result) and result["line"] == 2


def test_a_json_cases_list_still_streams_its_cases(run_cli, tmp_path):
    text = '{"cases": [\n{"diagnosis": "mmn"},\n{"diagnosis": "als"}\n]}'
    assert seen(results_of(run_cli, written(tmp_path, text, "c.json"))) == [
        ("c.json:1", "ok", 2),
        ("c.json:2", "ok", 3),
    ]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes")
def test_a_json_file_that_is_a_pipe_with_cases_twice_is_refused_whole(run_cli, tmp_path):
    """A pipe cannot be read twice: its document is read whole, and refused whole the same."""
    path = tmp_path / "c.json"
    os.mkfifo(path)
    writer = threading.Thread(target=lambda: path.write_text(TWICE), daemon=True)
    writer.start()
    try:
        (result,) = results_of(run_cli, path)
    finally:
        writer.join(timeout=60)
    assert "duplicate key 'cases'" in message(result) and result["line"] == 4


@pytest.mark.parametrize(
    "name, text, line",
    [
        ("c.yaml", "cases:\n- {diagnosis: mmn}\ncases:\n- {diagnosis: als}\n", 3),
        ("c.jsonl", '{"cases": [{"diagnosis": "mmn"}], "cases": [{"diagnosis": "als"}]}\n', 1),
    ],
)
def test_cases_twice_in_yaml_or_json_lines_is_refused_whole(run_cli, tmp_path, name, text, line):
    (result,) = results_of(run_cli, written(tmp_path, text, name))
    assert "duplicate key 'cases'" in message(result) and result["line"] == line


def test_cases_twice_on_standard_input_is_refused_whole(run_cli):
    (result,) = results_of(run_cli, "-", input=TWICE)
    assert "duplicate key 'cases'" in message(result) and result["line"] == 4
