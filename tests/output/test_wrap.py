"""Text for a person wraps to the terminal: wrap.wrap itself, and `ivig
evaluate` in a real pseudo-terminal of 80 columns against the same command
writing to a pipe (one line per item, unwrapped)."""

import os
import pickle
import re
import shlex
import sys
import tempfile
import unicodedata

import pexpect
import pytest
from helpers import ROOT

from ivig_advisor.engine.output.render import Formatter
from ivig_advisor.engine.output.wrap import wrap

CONTROL = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
TREE = set("│├└─")


def columns(text: str) -> int:
    """Display columns, independently of the renderer: wide and fullwidth characters take two."""
    text = CONTROL.sub("", text)
    return sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def words(text: str):
    """The words of a text, without the tree's glyphs (a wrapped chain line repeats them)."""
    return [w for w in CONTROL.sub("", text).split() if not set(w) <= TREE]


# -- wrap.wrap -----------------------------------------------------------------------

LONG = (
    "    WARNING  aseptic-meningitis: Aseptic meningitis is a moderate reaction to IVIG, seen especially, "
    "but not only, in patients with a history of migraine (ref 81)."
)


@pytest.mark.parametrize("width", [36, 47, 80])
def test_wrap_fits_the_width_breaks_only_at_spaces_and_keeps_the_hanging_indent(width):
    lines = wrap(LONG, width, " " * 13).split("\n")
    assert len(lines) > 1 and all(columns(line) <= width for line in lines)
    assert words("\n".join(lines)) == LONG.split()
    assert lines[0].startswith("    WARNING  ") and all(re.match(r" {13}\S", line) for line in lines[1:])


def test_wrap_leaves_text_alone_without_a_width_or_when_it_fits():
    assert wrap(LONG, None, "  ") == LONG
    assert wrap("short line", 80, "  ") == "short line"


def test_wide_characters_take_two_columns_and_break_between_themselves():
    text = "  The translation says 血小板減少症、これは長い日本語の文章です。Unverified in English."
    lines = wrap(text, 24, "    ").split("\n")
    assert all(columns(line) <= 24 for line in lines) and max(columns(line) for line in lines) >= 22
    assert "".join(line.strip() for line in lines).replace(" ", "") == text.replace(" ", "")
    assert not any(line.strip().startswith(("、", "。")) for line in lines)  # no line starts with closing punctuation


def test_wide_text_fills_the_line_rather_than_moving_whole():
    assert wrap("  The translation says 血小板減少症です", 30, "    ").split("\n") == [
        "  The translation says 血小板",
        "    減少症です",
    ]


def test_styles_take_no_columns_and_are_never_split():
    bold, reset = "\x1b[1m", "\x1b[0m"
    text = "  " + bold + "Dose:" + reset + " " + " ".join(["0.4 g/kg/day"] * 8)
    lines = wrap(text, 30, " " * 8).split("\n")
    assert all(columns(line) <= 30 for line in lines) and len(lines) > 2
    assert "\n".join(lines).count(bold) == 1 and "\n".join(lines).count(reset) == 1
    assert CONTROL.sub("", lines[0]) == "  Dose: 0.4 g/kg/day 0.4"  # as full as the visible columns allow


def test_escaped_input_is_text_the_wrapper_measures_and_never_turns_into_a_code():
    """Input reaches the wrapper escaped (escape.for_terminal): '\\e[2J' is five visible characters."""
    text = "  error: " + " ".join([r"p1\e[2J\nFAKE"] * 6)
    out = wrap(text, 30, "    ")
    assert "\x1b" not in out and out.count(r"\e[2J") == 6
    assert all(columns(line) <= 30 for line in out.split("\n"))


def test_only_a_word_longer_than_any_line_is_broken():
    path = "  source: /data/" + "x" * 70 + ".yaml and more"
    lines = wrap(path, 40, "    ").split("\n")
    assert all(columns(line) <= 40 for line in lines)
    assert "".join(line.strip() for line in lines).replace(" ", "") == path.replace(" ", "")
    assert lines[-1].strip().endswith("and more")


@pytest.mark.parametrize("width", [40, 80])
def test_a_link_is_never_broken(width):
    """A link that does not fit after the hang starts its line at the first column, and one wider
    than the terminal is left whole: a broken link can be neither opened nor copied."""
    link = "http://www.fda.gov/BiologicsBloodVaccines/SafetyAvailability/ucm375096.htm"
    dim, reset = "\x1b[2m", "\x1b[0m"
    line = f"             Source: US FDA Safety Communication (2013), {dim}{link}{reset} and after"
    lines = wrap(line, width, " " * 13).split("\n")
    at = next(i for i, x in enumerate(lines) if link in CONTROL.sub("", x))  # whole, on one line
    assert CONTROL.sub("", lines[at]).startswith(link)  # from the first column: it did not fit after the hang
    assert all(columns(x) <= width for x in lines if link not in x)
    assert words("\n".join(lines)) == words(line)


def test_an_arrow_stays_with_the_rule_it_points_to():
    line = "    warning = renal-failure  ← renal-disease-without-known-depletion [assumption]"
    lines = wrap(line, 50, "    │     ").split("\n")
    assert not lines[0].rstrip().endswith("←") and "← renal-disease-without-known-depletion" in "\n".join(lines)


# -- `ivig evaluate` at a terminal and into a pipe ------------------------------------------


def terminal(*args, cwd=ROOT, colour=False):
    """`ivig ...` with its standard output in a pseudo-terminal of 80 columns (its
    width from the pty alone): what the terminal showed, and the exit status.
    Standard error goes to a file: the text for a person is the subject here.
    Without `colour`, NO_COLOR is set."""
    env = dict(os.environ, TERM="xterm", NO_COLOR="1")
    for name in ("COLUMNS", "LINES", *(["NO_COLOR"] if colour else [])):
        env.pop(name, None)
    with tempfile.TemporaryDirectory() as folder:
        command = " ".join(shlex.quote(a) for a in (sys.executable, "-m", "ivig_advisor.cli", *args))
        out, status = pexpect.run(
            "/bin/sh",
            args=["-c", f"exec {command} 2>{shlex.quote(folder)}/stderr"],
            cwd=str(cwd),
            env=env,
            encoding="utf-8",
            timeout=120,
            dimensions=(24, 80),
            withexitstatus=True,
        )
    return out.replace("\r\n", "\n"), status


def test_evaluate_wraps_at_a_terminal_and_writes_one_line_per_item_to_a_pipe(run_cli):
    shown, status = terminal("evaluate", "-q", "examples/")
    piped = run_cli("evaluate", "-q", "examples/").stdout
    assert status == 0
    assert max(columns(line) for line in shown.splitlines()) <= 80
    assert max(columns(line) for line in piped.splitlines()) > 100  # not a terminal: not wrapped
    assert words(shown) == words(piped)  # the same words, none broken
    lines = shown.splitlines()
    for line, nxt in zip(lines, lines[1:]):
        if re.match(r" {4}(WARNING|CRITICAL|INFO) ", line):  # continued under its message, or the next item
            assert nxt == "" or re.match(r" {4}(WARNING|CRITICAL|INFO) | {2}\S| {13}\S", nxt), (line, nxt)
        if line.startswith("  Dose: ") and columns(line) > 70:  # continued under the regimen, or the note
            assert re.match(r" {8}\S| {4}\S", nxt), (line, nxt)


def test_the_width_travels_with_the_formatter_to_workers():
    """Workers render what they evaluate; a worker started by spawn gets the formatter pickled."""
    assert pickle.loads(pickle.dumps(Formatter("text", width=80))).width == 80


def test_evaluate_is_the_same_with_workers_at_a_terminal():
    one, _ = terminal("evaluate", "-q", "-j", "1", "examples/")
    two, _ = terminal("evaluate", "-q", "-j", "2", "examples/")
    assert one == two and max(columns(line) for line in two.splitlines()) <= 80


def test_wide_characters_and_escapes_from_input_fit_the_terminal(tmp_path):
    """A case from a Japanese ward: its id, and a value the schema refuses (the
    error quotes it), both wider than they are long; an id holding a screen-clearing
    escape. Measured as the terminal shows them."""
    ward = "神経内科病棟の患者" * 6
    (tmp_path / "cases.yaml").write_text(
        f"id: {ward}\ndiagnosis: gbs\nwalks_unaided: false\nweight_kg: 60\n---\n"
        f"id: p2\ndiagnosis: {'重症筋無力症の疑いがある患者' * 5}\n---\n"
        f'id: "p3\\e[2J\\nFAKE {"x" * 20} {"y " * 40}"\ndiagnosis: mmn\n',
        encoding="utf-8",
    )
    shown, status = terminal("evaluate", "-q", "cases.yaml", cwd=tmp_path)
    lines = shown.splitlines()
    assert status == 1  # the second case is an error
    assert max(columns(line) for line in lines) <= 80
    assert max(columns(line) for line in lines) > max(len(line) for line in lines if "患者" in line)  # wide indeed
    assert ward in "".join(line.strip() for line in lines)  # the id whole, broken only between its characters
    assert "\x1b" not in shown and r"p3\e[2J\nFAKE" in shown  # escaped before wrapping, and kept whole
