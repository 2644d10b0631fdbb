"""Attacks on the later-evidence file (issue 28), as a hostile or careless reviewer editing
rules/later-evidence.yaml would make them: every one is a load error naming the file, the line
and the field (RuleBaseInvalid; `ivig evaluate` exits 2 with it, `ivig audit check` reports it
as a finding), never a crash, a hang or a traceback; what the file may hold reaches no output
unescaped, and an entry's link is never anything but an http(s) address.

Each attack edits an entry of its own (ENTRY), added after the shipped ones, so that the tests
do not depend on the shipped entries' words.
"""

import csv
import dataclasses
import io
import json
import re

import click
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ivig_advisor.engine import Advisor, RuleBase
from ivig_advisor.engine.base.errors import RuleBaseInvalid
from ivig_advisor.engine.core import laterfile
from ivig_advisor.engine.output.render import TextRenderer
from ivig_advisor.engine.service.cards import CardMaker
from ivig_advisor.engine.service.cdshooks import CdsServices

FILE = "later-evidence.yaml"
SHIPPED = RuleBase.load().later
HARM_ENTRY = next(e for e in SHIPPED.entries if e.harm)

ENTRY = """\
  - id: attack-entry
    title: A made-up trial that reports harm
    topic: gbs
    when:
      all:
        - diagnosis: gbs
        - incomplete_recovery_after_ivig: true
    kind: controlled-trial
    relation: reports-harm
    year: 2022
    citation: Doe J, et al. Made-up J 2022;1:1-2
    pmid: 12345678
    doi: 10.1000/made-up.1
    speaks_to: [gbs-second-course]
    finding: A made-up finding, for the attacks on the file.
    source:
      quote: A made-up sentence.
      read_at: https://example.org/made-up
      checked: "2025-01-02"
    harm:
      code: later-attack-harm
      severity: warning
      summary: A made-up harm
      message: A made-up harm message.
      action: Read the made-up source.
    changes:
      - 2025-01-02, made up for the tests.
"""
CASE = {"id": "p1", "diagnosis": "gbs", "incomplete_recovery_after_ivig": True, "walks_unaided": False, "age": 70}
# C0 and C1 controls (a tab or line break is whitespace, joined on load), and the marks that
# hide or reorder text (bidi overrides and isolates, zero-width characters)
UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u00ad\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")
# written as YAML double-quoted text: an escape that clears the screen, red, a bidi override, a
# zero-width space, a bell and a C1 control sequence introducer
HIDDEN = r"\e[2J\e[31mFAKE\u202eTXET\u200b\a\x9b31m"
# what a Markdown or HTML reader would run or follow, were it not escaped
MARKUP = "[x](javascript:alert(1)) <script>alert(1)</script> <img src=x onerror=alert(1)> =1+2"


def add_entry(rules_copy, text: str) -> int:
    """The copy of the rules with the entry `text` after the shipped entries; the line it starts on."""
    path = rules_copy / FILE
    shipped = path.read_text(encoding="utf-8")
    start = shipped.index("\ngaps:") + 1
    path.write_text(shipped[:start] + text + shipped[start:], encoding="utf-8")
    return shipped[:start].count("\n") + 1


def with_entry(rules_copy, old: str = "", new: str = "", at: str = "") -> int:
    """The copy of the rules with ENTRY, its `old` replaced by `new`; the line in the file of `at`
    (default: `new`), or of the entry."""
    text = ENTRY
    if old:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    mark = at or new
    return add_entry(rules_copy, text) + (text[: text.index(mark)].count("\n") if mark else 0)


def load_errors(rules_copy) -> list:
    with pytest.raises(RuleBaseInvalid) as caught:
        RuleBase.load(rules_copy)
    return [str(e) for e in caught.value.errors]


def assert_refused(rules_copy, run_cli, line, field, said):
    """The load fails with an error at `line` of the file naming `field` and saying `said`; the
    CLI says it too: `evaluate` exits 2 with it, `audit check` reports it as a finding."""
    where = f"{FILE}:{line}:" if line else f"{FILE}:"
    errors = load_errors(rules_copy)
    hits = [e for e in errors if where in e and said in e and (field is None or f"[{field}]" in e)]
    assert hits, errors
    assert all(len(e) < 600 for e in errors), "an error message stays short, whatever the value"
    evaluated = run_cli("evaluate", "--rules", str(rules_copy), "examples/")
    assert evaluated.exit_code == 2 and "internal error" not in evaluated.output, evaluated.output
    assert where in evaluated.output and said in evaluated.output
    checked = run_cli("audit", "check", "--rules", str(rules_copy), "--format", "json")
    assert checked.exit_code == 1, checked.output
    findings = json.loads(checked.stdout)["findings"]
    assert any(f["file"].endswith(FILE) and (not line or f["line"] == line) and said in f["message"] for f in findings)


def test_the_attack_entry_as_written_loads_and_attaches(rules_copy):
    """The baseline: the entry every attack edits is a good one, so that what fails is the attack."""
    with_entry(rules_copy)
    rules = RuleBase.load(rules_copy)
    assert rules.later.by_id["attack-entry"].link == "https://pubmed.ncbi.nlm.nih.gov/12345678/"
    advisor = Advisor(rules, cache=0)
    result = advisor.evaluate(advisor.validate(CASE))
    assert "later-attack-harm" in [w["code"] for w in result.warnings]


# -- 1. hostile YAML in an entry ------------------------------------------------------------------

FACTS = ("migraine", "diabetes", "renal_disease", "volume_depletion", "thrombocytosis", "iga_deficiency")
ALTERNATIVES = ", ".join(f"{{any: [{{{f}: true}}, {{{f}: false}}]}}" for f in FACTS)  # 2^6
BOOLEANS = ("walks_unaided", "needs_ventilation", "previously_treated", "refractory", "aggressive") + FACTS


def when(condition: str):
    """An attack on the situation: `when` written as the flow mapping `condition`."""
    return (
        "    when:\n      all:\n        - diagnosis: gbs\n        - incomplete_recovery_after_ivig: true\n",
        f"    when: {condition}\n",
    )


ATTACKS = [
    # (old, new, the field the error names, what it says)
    pytest.param("  - id: attack-entry\n", "  - id: Attack-Entry\n", "Attack-Entry.id", "lower-case", id="id-capitals"),
    pytest.param("  - id: attack-entry\n", "  - id: attack-éntry\n", "attack-éntry.id", "lower-case", id="id-unicode"),
    pytest.param("  - id: attack-entry\n", '  - id: "attack-entry\\n"\n', None, "lower-case", id="id-line-break"),
    pytest.param(
        "  - id: attack-entry\n",
        "  - id: gbs-second-course\n",
        "gbs-second-course.id",
        "id of a rule",
        id="id-of-a-rule",
    ),
    pytest.param(
        "  - id: attack-entry\n", f"  - id: {SHIPPED.entries[0].id}\n", None, "duplicate entry id", id="duplicate-id"
    ),
    pytest.param("    topic: gbs\n", "    topic: gbz\n", "attack-entry.topic", "unknown topic", id="topic-unknown"),
    pytest.param("    topic: gbs\n", "    topic: [gbs]\n", "attack-entry.topic", "topic is the topic", id="topic-list"),
    pytest.param(
        "    topic: gbs\n", "    topic: {gbs: 1}\n", "attack-entry.topic", "topic is the topic", id="topic-mapping"
    ),
    pytest.param(
        "    kind: controlled-trial\n",
        "    kind: [controlled-trial]\n",
        "attack-entry.kind",
        "kind must be",
        id="kind-list",
    ),
    pytest.param("    year: 2022\n", "    year: 070\n", "attack-entry.year", "not '70'", id="year-070-is-seventy"),
    pytest.param("    year: 2022\n", "    year: 0x7E6\n", "attack-entry.year", "not '0x7E6'", id="year-hex"),
    pytest.param("    year: 2022\n", "    year: 2022.0\n", "attack-entry.year", "year must be", id="year-decimal"),
    pytest.param("    pmid: 12345678\n", "    pmid: 0x1F\n", "attack-entry.pmid", "not '0x1F'", id="pmid-hex"),
    pytest.param(
        "    pmid: 12345678\n", '    pmid: "12345678\\n"\n', "attack-entry.pmid", "a PMID is", id="pmid-line-break"
    ),
    pytest.param("    pmid: 12345678\n", "    pmid: true\n", "attack-entry.pmid", "a PMID is", id="pmid-boolean"),
    pytest.param(
        "    doi: 10.1000/made-up.1\n", '    doi: "10.1000/x\\n"\n', "attack-entry.doi", "a DOI is", id="doi-line-break"
    ),
    pytest.param(
        "    doi: 10.1000/made-up.1\n",
        '    doi: "10.1000/x\\nFAKE"\n',
        "attack-entry.doi",
        "a DOI is",
        id="doi-inner-break",
    ),
    pytest.param(
        "    doi: 10.1000/made-up.1\n", '    doi: "10.1000/\\e[2J"\n', "attack-entry.doi", "a DOI is", id="doi-escape"
    ),
    pytest.param(
        "    doi: 10.1000/made-up.1\n", '    doi: "10.1000/\\u202ex"\n', "attack-entry.doi", "a DOI is", id="doi-bidi"
    ),
    pytest.param(
        "    speaks_to: [gbs-second-course]\n",
        "    speaks_to: [no-such-rule]\n",
        "attack-entry.speaks_to",
        "no rule 'no-such-rule'",
        id="speaks-to-nothing",
    ),
    pytest.param(
        "    speaks_to: [gbs-second-course]\n",
        "    speaks_to: [1, 2]\n",
        "attack-entry.speaks_to",
        "speaks_to is a list",
        id="speaks-to-numbers",
    ),
    pytest.param(
        "    speaks_to: [gbs-second-course]\n",
        "    speaks_to: gbs-second-course\n",
        "attack-entry.speaks_to",
        "speaks_to is a list",
        id="speaks-to-text",
    ),
    pytest.param(
        "    kind: controlled-trial\n",
        "    status: approved\n    kind: controlled-trial\n",
        "attack-entry.status",
        "approval is a reviewer's sign-off",
        id="status-approved",
    ),
    pytest.param(
        "    source:\n      quote:",
        "    source:\n    - quote:",
        "attack-entry.source",
        "source is a mapping",
        id="source-list",
    ),
    pytest.param(
        '      checked: "2025-01-02"\n',
        "      checked: 2026-02-30\n",
        "attack-entry.source.checked",
        "not '2026-02-30'",
        id="checked-february-30",
    ),
    pytest.param(
        '      checked: "2025-01-02"\n',
        '      checked: "2025-01-02\\n"\n',
        "attack-entry.source.checked",
        "is a date",
        id="checked-line-break",
    ),
    *[
        pytest.param(
            "      read_at: https://example.org/made-up\n",
            f"      read_at: {address}\n",
            "attack-entry.source.read_at",
            "source.read_at must be",
            id=f"read-at-{name}",
        )
        for name, address in [
            ("javascript", "javascript:alert(1)"),
            ("file", "file:///etc/passwd"),
            ("data", "'data:text/html,<script>alert(1)</script>'"),
            ("no-dot", "http://x"),
            ("upper-case-scheme", "HTTPS://example.org/"),
            ("line-break", '"https://example.org/x\\n"'),
            ("escape", '"https://example.org/\\e[2J"'),
            ("bidi", '"https://example.org/\\u202ex"'),
            ("quote", "'https://example.org/\"onmouseover=alert(1)'"),
            ("angle", "'https://example.org/<script>'"),
            ("space", "'https://example.org/a b'"),
            ("backslash", "'https://example.org\\@evil.org/'"),
            ("unicode-host", "https://exаmple.org/"),  # a Cyrillic a
        ]
    ],
    pytest.param(
        "      code: later-attack-harm\n",
        "      evil: 1\n      code: later-attack-harm\n",
        "attack-entry.harm.evil",
        "unknown harm key 'evil'",
        id="harm-extra-key",
    ),
    pytest.param(
        "      message: A made-up harm message.\n",
        "      message:\n",
        "attack-entry.harm.message",
        "needs a message",
        id="harm-null-message",
    ),
    pytest.param(
        "      summary: A made-up harm\n",
        "      summary: null\n",
        "attack-entry.harm.summary",
        "needs a summary",
        id="harm-null-summary",
    ),
    pytest.param(
        "      message: A made-up harm message.\n",
        "      message: [a, b]\n",
        "attack-entry.harm.message",
        "is text",
        id="harm-message-list",
    ),
    pytest.param(
        "      action: Read the made-up source.\n",
        "      action: {a: b}\n",
        "attack-entry.harm.action",
        "is text",
        id="harm-action-mapping",
    ),
    pytest.param(
        "      code: later-attack-harm\n",
        "      code: general-precautions\n",
        "attack-entry.harm.code",
        "later-",
        id="harm-code-of-the-engine",
    ),
    pytest.param(
        "      code: later-attack-harm\n",
        "      code: '=cmd'\n",
        "attack-entry.harm.code",
        "lower-case words",
        id="harm-code-formula",
    ),
    pytest.param(
        "      code: later-attack-harm\n",
        '      code: "later-attack-harm\\n"\n',
        "attack-entry.harm.code",
        "lower-case words",
        id="harm-code-line-break",
    ),
    pytest.param(
        "      code: later-attack-harm\n",
        f"      code: {HARM_ENTRY.harm['code']}\n",
        "attack-entry.harm.code",
        f"also entry '{HARM_ENTRY.id}'",
        id="harm-code-of-another-entry",
    ),
    pytest.param(
        "    title: A made-up trial that reports harm\n",
        "    title: [a, b]\n",
        "attack-entry.title",
        "is text",
        id="title-list",
    ),
    pytest.param(
        "    title: A made-up trial that reports harm\n",
        "    title: {a: b}\n",
        "attack-entry.title",
        "is text",
        id="title-mapping",
    ),
    pytest.param(
        "    title: A made-up trial that reports harm\n",
        "    title: '   '\n",
        "attack-entry.title",
        "the entry has no",
        id="title-blank",
    ),
    pytest.param(
        "    citation: Doe J, et al. Made-up J 2022;1:1-2\n",
        "    citation: true\n",
        "attack-entry.citation",
        "is text",
        id="citation-true",
    ),
    pytest.param(
        "    finding: A made-up finding, for the attacks on the file.\n",
        "    finding: [a]\n",
        "attack-entry.finding",
        "is text",
        id="finding-list",
    ),
    pytest.param(
        "    changes:\n      - 2025-01-02, made up for the tests.\n",
        "    changes: 5\n",
        "attack-entry.changes",
        "changes is a list",
        id="changes-number",
    ),
    pytest.param(
        "    changes:\n      - 2025-01-02, made up for the tests.\n",
        "    changes: made up\n",
        "attack-entry.changes",
        "changes is a list",
        id="changes-text",
    ),
    pytest.param(
        "    changes:\n      - 2025-01-02, made up for the tests.\n",
        "    changes: [[a]]\n",
        "attack-entry.changes",
        "changes is a list",
        id="changes-nested",
    ),
    pytest.param(
        "  - id: attack-entry\n",
        "  - [1, 2]\n  - id: attack-entry\n",
        None,
        "an entry must be a mapping",
        id="entry-list",
    ),
    pytest.param(*when("hello"), None, "a condition must be a non-empty mapping", id="when-text"),
    pytest.param(*when("{" * 60 + "diagnosis: gbs" + "}" * 60), None, "nested more than", id="when-too-deep"),
    # an `all` of `any`s is as many alternatives as their product (2^n), each a rule of its own on
    # the engine: 2^14 took 90 s a case; an `all` of a thousand tests overflowed the stack
    pytest.param(
        *when("{all: [{diagnosis: gbs}, " + ALTERNATIVES + "]}"),
        "attack-entry.when",
        "alternatives",
        id="when-too-many-alternatives",
    ),
    pytest.param(
        *when("{all: [{diagnosis: gbs}, " + ", ".join(f"{{age: {{gt: {i}}}}}" for i in range(200)) + "]}"),
        "attack-entry.when",
        "tests",
        id="when-too-many-tests",
    ),
    # the audit's reachability walk is the product of each fact's values: 3^10 x 15 diagnoses
    pytest.param(
        *when("{all: [{diagnosis: gbs}, " + ", ".join(f"{{{f}: true}}" for f in BOOLEANS) + "]}"),
        "attack-entry.when",
        "facts",
        id="when-too-many-facts",
    ),
]


@pytest.mark.parametrize("old, new, field, said", ATTACKS)
def test_an_attack_on_an_entry_is_a_load_error_at_its_line(rules_copy, run_cli, old, new, field, said):
    line = with_entry(rules_copy, old, new)
    assert_refused(rules_copy, run_cli, line, field, said)


@pytest.mark.parametrize(
    "old, new, field",
    [
        ("    title: A made-up trial that reports harm\n", "title", "attack-entry.title"),
        ("    citation: Doe J, et al. Made-up J 2022;1:1-2\n", "citation", "attack-entry.citation"),
        ("    finding: A made-up finding, for the attacks on the file.\n", "finding", "attack-entry.finding"),
        ("      quote: A made-up sentence.\n", "quote", "attack-entry.source.quote"),
        ("      summary: A made-up harm\n", "summary", "attack-entry.harm.summary"),
        ("      message: A made-up harm message.\n", "message", "attack-entry.harm.message"),
        ("      action: Read the made-up source.\n", "action", "attack-entry.harm.action"),
        ("      - 2025-01-02, made up for the tests.\n", "-", "attack-entry.changes"),
    ],
)
def test_a_hidden_character_in_an_entrys_text_is_a_load_error_at_its_line(rules_copy, run_cli, old, new, field):
    """An escape sequence, a bidi override or a zero-width space has no place in a quote or a
    finding: what a clinician reads would not be what the file says."""
    indent = old[: len(old) - len(old.lstrip())]
    line = with_entry(rules_copy, old, f'{indent}{new}{"" if new == "-" else ":"} "x {HIDDEN} y"\n')
    assert_refused(rules_copy, run_cli, line, field, "\\e")


# -- 1. hostile YAML in the file as a whole -------------------------------------------------------


def test_an_alias_bomb_is_refused(rules_copy, run_cli):
    bomb = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for name, before in zip("bcdefgh", "abcdefg"):
        bomb.append(f"{name}: &{name} [{', '.join([f'*{before}'] * 9)}]")
    (rules_copy / FILE).write_text("\n".join(bomb) + "\nentries: [*h]\n", encoding="utf-8")
    assert_refused(rules_copy, run_cli, None, None, "alias bomb")


def test_a_five_megabyte_quote_is_refused_in_a_short_message(rules_copy, run_cli):
    line = with_entry(rules_copy, "      quote: A made-up sentence.\n", f"      quote: {'x' * 5_000_000}\n")
    assert_refused(rules_copy, run_cli, line, None, "characters")


def test_bytes_that_are_not_utf8_are_refused_at_their_line(rules_copy, run_cli):
    line = with_entry(rules_copy)
    path = rules_copy / FILE
    path.write_bytes(path.read_bytes().replace(b"  - id: attack-entry\n", b"  - id: attack-\xe9ntry\n"))
    assert_refused(rules_copy, run_cli, line, None, "not UTF-8")


def test_a_byte_order_mark_is_read_and_the_lines_stay_right(rules_copy, run_cli):
    line = with_entry(rules_copy, "    topic: gbs\n", "    topic: gbz\n")
    path = rules_copy / FILE
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert_refused(rules_copy, run_cli, line, "attack-entry.topic", "unknown topic")


def test_a_tab_that_indents_is_refused_at_its_line(rules_copy, run_cli):
    line = with_entry(rules_copy, "    topic: gbs\n", "\ttopic: gbs\n")
    assert_refused(rules_copy, run_cli, line, None, "tab")


def test_a_duplicate_key_is_refused_at_its_line(rules_copy, run_cli):
    line = with_entry(rules_copy, "    topic: gbs\n", "    topic: gbs\n    topic: cidp\n", at="    topic: cidp")
    assert_refused(rules_copy, run_cli, line, "topic", "duplicate key 'topic'")


def file_edit(rules_copy, old: str, new: str) -> int:
    """An edit to the top of the later-evidence file; the line of `new`."""
    path = rules_copy / FILE
    text = path.read_text(encoding="utf-8")
    start = text.index(old)
    path.write_text(text[:start] + new + text[start + len(old) :], encoding="utf-8")
    return text[:start].count("\n") + 1


@pytest.mark.parametrize(
    "old, new, field, said",
    [
        ("entries:\n", "entries: {a: 1}\nshipped:\n", "entries", "needs an 'entries' list"),
        ("entries:\n", "entries: hello\nshipped:\n", "entries", "needs an 'entries' list"),
        ("defaults: {status: draft}", "defaults: [1]", "defaults", "defaults is a mapping"),
        ("defaults: {status: draft}", "defaults: {topic: gbs}", "defaults", "unknown default 'topic'"),
        ("defaults: {status: draft}", "defaults: {status: approved}", "defaults.status", "sign-off"),
        ("maintenance: {", "maintenance: [1]\nold_maintenance: {", "maintenance", "maintenance is a mapping"),
        ("title: ", "title: [1]\nold_title: ", "title", "is text"),
        ("title: ", 'title: "\\e[2J"\nold_title: ', "title", "\\e"),
        ("gaps:\n", "gaps: {a: 1}\nold_gaps:\n", "gaps", "'gaps' is a list"),
    ],
)
def test_an_attack_on_the_file_is_a_load_error_at_its_line(rules_copy, run_cli, old, new, field, said):
    line = file_edit(rules_copy, old, new)
    assert_refused(rules_copy, run_cli, line, field, said)


@pytest.mark.parametrize(
    "gap, below, field, said",
    [
        ("  - lead: a lead\n    citation: a citation\n", 0, "gaps.why", "this one has no 'why'"),
        ("  - lead: a lead\n    citation: [a]\n    why: why\n", 1, "gaps.citation", "is text"),
        ('  - lead: "a \\u202e lead"\n    citation: a citation\n    why: why\n', 0, "gaps.lead", "\\u202e"),
        ("  - lead: a lead\n    citation: a citation\n    why: why\n    whom: x\n", 3, "gaps.whom", "unknown gap key"),
    ],
)
def test_a_wrong_gap_is_a_load_error_naming_what_is_wrong(rules_copy, run_cli, gap, below, field, said):
    """The gap's line, or the line `below` it of the key at fault."""
    line = file_edit(rules_copy, "gaps:\n", "gaps:\n" + gap) + 1 + below
    assert_refused(rules_copy, run_cli, line, field, said)


@pytest.mark.parametrize(
    "old, new, field",
    [
        ("    topic: gbs\n", f'    topic: "{"t" * 50_000}"\n', "attack-entry.topic"),
        ("    topic: gbs\n", f'    ? "{"k" * 90_000}"\n    : 1\n    topic: gbs\n', None),
        ("    speaks_to: [gbs-second-course]\n", f'    speaks_to: ["{"s" * 90_000}"]\n', "attack-entry.speaks_to"),
    ],
)
def test_a_huge_value_makes_a_short_error(rules_copy, run_cli, old, new, field):
    """A value or key of tens of thousands of characters is named, cut short."""
    line = with_entry(rules_copy, old, new)
    assert_refused(rules_copy, run_cli, line, field, "characters)")


# -- 2. what the file may hold, in every output -----------------------------------------------------


@pytest.fixture
def marked(rules_copy):
    """The rules with an entry whose every text holds Markdown and HTML that would run or link,
    and whose DOI (no PMID) holds a Markdown link's end and a script: allowed, and escaped."""
    text = ENTRY.replace("    pmid: 12345678\n", "")
    text = text.replace("    doi: 10.1000/made-up.1\n", "    doi: '10.1000/x](javascript:alert(1))<script>'\n")
    for old in ("made-up trial", "Made-up J", "made-up finding", "made-up sentence", "made-up harm message"):
        text = text.replace(old, f"{old} {MARKUP}")
    add_entry(rules_copy, text)
    return rules_copy


def test_markup_in_an_entry_loads_and_its_link_is_the_doi_percent_encoded(marked):
    entry = RuleBase.load(marked).later.by_id["attack-entry"]
    assert MARKUP in entry.title and MARKUP in entry.harm["message"]
    assert entry.link.startswith("https://doi.org/10.1000/x")
    assert not re.search(r"[\s\"'<>\[\]\\`]", entry.link), entry.link


def test_markup_in_an_entry_never_becomes_a_link_or_html_in_a_card(marked):
    rules = RuleBase.load(marked)
    advisor = Advisor(rules, cache=0)
    cards = CardMaker(CdsServices.load(), rules).cards(advisor.evaluate(advisor.validate(CASE)), [], 70.0, [])
    shown = json.dumps(cards)
    assert "attack-entry" in shown and "javascript:alert" in shown
    for card in cards:
        urls = re.findall(r"\]\(([^)]*)\)", card.get("detail", ""))
        urls += [card["source"].get("url", "")] + [link["url"] for link in card.get("links", [])]
        assert all(url.startswith(("https://", "http://")) for url in urls if url), urls
        assert not re.search(r"(?<!\\)<(script|img)", card.get("detail", ""))  # \<script\> is Markdown's literal
        assert not re.search(r"(?<!\\)\]\(javascript", card.get("detail", ""))


def test_markup_in_an_entry_is_escaped_in_audit_evidence_and_the_report(marked, run_cli, tmp_path):
    markdown = run_cli("audit", "evidence", "--rules", str(marked), "--format", "markdown")
    assert markdown.exit_code == 0 and "attack-entry" in markdown.output
    assert "<script" not in markdown.output and "<img" not in markdown.output
    assert not re.search(r"(?<!\\)\]\(javascript", markdown.output)
    report = tmp_path / "report.html"
    assert run_cli("audit", "report", "--rules", str(marked), "-o", str(report)).exit_code == 0
    html = report.read_text(encoding="utf-8")
    assert "attack-entry" in html and "&lt;script&gt;" in html
    assert "<script" not in html and "<img" not in html
    assert all(href.startswith(("#", "https://", "http://")) for href in re.findall(r'href="([^"]*)"', html))


def test_a_harm_code_or_entry_id_never_starts_a_formula_in_the_csv(marked, run_cli, tmp_path):
    case = tmp_path / "p1.json"
    case.write_text(json.dumps(CASE))
    out = run_cli("evaluate", "-q", "--rules", str(marked), "--format", "csv", str(case))
    row = next(csv.DictReader(io.StringIO(out.stdout)))
    assert "later-attack-harm" in row["warnings"] and "attack-entry" in row["later_evidence"]
    assert not any(str(cell).startswith(("=", "+", "-", "@")) for cell in row.values())


@pytest.fixture
def hidden(rules_copy, monkeypatch):
    """The rules with an entry whose every text holds hidden characters, read with the load's
    refusal of them turned off: what each output would show of them, were they let through."""
    text = ENTRY
    for key in ("title", "citation", "finding", "quote", "summary", "message", "action"):
        text = re.sub(rf"^(\s+{key}): (.*)$", lambda m: f'{m[1]}: "{m[2]} {HIDDEN}"', text, flags=re.M)
    add_entry(rules_copy, text)
    monkeypatch.setattr(laterfile, "hidden_character", lambda text: None)
    entry = RuleBase.load(rules_copy).later.by_id["attack-entry"]
    assert "\x1b[2J" in entry.title and "\u202e" in entry.harm["message"]
    (rules_copy.parent / "p1.json").write_text(json.dumps(CASE))
    return rules_copy


def test_hidden_characters_are_refused_by_default(hidden, monkeypatch):
    monkeypatch.undo()
    with pytest.raises(RuleBaseInvalid):
        RuleBase.load(hidden)


@pytest.mark.parametrize("form", ["csv", "json", "jsonl"])
def test_hidden_characters_let_through_are_escaped_in_the_results(hidden, run_cli, form):
    out = run_cli("evaluate", "-q", "--rules", str(hidden), "--format", form, str(hidden.parent / "p1.json"))
    assert "attack-entry" in out.stdout and not UNSAFE.search(out.stdout.replace("\n", "").replace("\r", ""))


@pytest.mark.parametrize("colour", [False, True])
def test_hidden_characters_let_through_are_escaped_in_the_text(hidden, run_cli, colour):
    if colour:  # at a terminal: the renderer with click's styles, as the CLI makes it for a tty
        rules = RuleBase.load(hidden)
        advisor = Advisor(rules, cache=0)
        text = TextRenderer(rules, click.style, chain=True, width=None).render(advisor.evaluate(advisor.validate(CASE)))
        text = re.sub(r"\x1b\[[0-9;]*m", "", text)  # colours, the styles' (a [2J or a bidi mark stays)
    else:
        text = run_cli("evaluate", "-q", "--rules", str(hidden), str(hidden.parent / "p1.json")).stdout
    assert "attack-entry" in text or "later-attack-harm" in text
    assert not UNSAFE.search(text.replace("\n", "")), [line for line in text.splitlines() if UNSAFE.search(line)]


@pytest.mark.parametrize("form", ["text", "markdown", "json"])
def test_hidden_characters_let_through_are_escaped_in_audit_evidence(hidden, run_cli, form):
    out = run_cli("audit", "evidence", "--rules", str(hidden), "--format", form)
    assert out.exit_code == 0 and "attack-entry" in out.stdout
    assert not UNSAFE.search(out.stdout.replace("\n", ""))


def test_hidden_characters_let_through_are_escaped_in_the_report(hidden, run_cli, tmp_path):
    report = tmp_path / "report.html"
    assert run_cli("audit", "report", "--rules", str(hidden), "-o", str(report)).exit_code == 0
    html = report.read_text(encoding="utf-8")
    assert "attack-entry" in html and not UNSAFE.search(html.replace("\n", ""))


def test_hidden_characters_let_through_are_escaped_in_the_cards(hidden):
    rules = RuleBase.load(hidden)
    advisor = Advisor(rules, cache=0)
    cards = CardMaker(CdsServices.load(), rules).cards(advisor.evaluate(advisor.validate(CASE)), [], 70.0, [])
    strings = []

    def walk(node):
        if isinstance(node, dict):
            [walk(v) for v in node.values()]
        elif isinstance(node, list):
            [walk(v) for v in node]
        elif isinstance(node, str):
            strings.append(node)

    walk(cards)
    assert any("later-attack-harm" in s or "attack-entry" in s for s in strings)
    assert not [s for s in strings if UNSAFE.search(s.replace("\n", ""))]


# -- the link is an http(s) address, whatever an entry holds ----------------------------------------

SAFE_LINK = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]+)?(/[A-Za-z0-9\-._~:/?#@!$&'()*+,;=%]*)?")


@given(pmid=st.none() | st.text(max_size=12), doi=st.none() | st.text(max_size=30), read_at=st.text(max_size=40))
def test_a_link_is_never_anything_but_an_http_address(pmid, doi, read_at):
    entry = dataclasses.replace(SHIPPED.entries[0], pmid=pmid, doi=doi, read_at=read_at)
    assert entry.link == "" or SAFE_LINK.fullmatch(entry.link), entry.link


@pytest.mark.parametrize(
    "read_at", ["javascript:alert(1)", "file:///etc/passwd", "data:,x", "//evil.org/", " https://a.org/"]
)
def test_a_link_from_a_page_that_is_no_http_address_is_none(read_at):
    entry = dataclasses.replace(SHIPPED.entries[0], pmid=None, doi=None, read_at=read_at)
    assert entry.link == ""


# -- 3. the manifest's later_evidence ---------------------------------------------------------------


def manifest_names(rules_copy, value: str) -> int:
    path = rules_copy / "rulebase.yaml"
    text = path.read_text(encoding="utf-8")
    old = re.search(r"^later_evidence: .*$", text, re.M)
    path.write_text(text[: old.start()] + f"later_evidence: {value}" + text[old.end() :], encoding="utf-8")
    return text[: old.start()].count("\n") + 1


@pytest.mark.parametrize(
    "value, said",
    [
        ("../x.yaml", "outside the rule directory"),
        ("/etc/passwd", "outside the rule directory"),
        ("out.yaml", "leads outside the rule directory"),
        ("missing.yaml", "No such file"),
        ("folder", "Is a directory"),
        ("5", "a file name must be text"),
        ("[later-evidence.yaml]", "a file name must be text"),
        ("''", "a file name must be text"),
    ],
)
def test_a_later_evidence_file_that_cannot_be_read_is_an_error_at_the_manifest_line(rules_copy, run_cli, value, said):
    (rules_copy / "folder").mkdir()
    (rules_copy / "out.yaml").symlink_to("/etc/passwd")
    line = manifest_names(rules_copy, value)
    with pytest.raises(RuleBaseInvalid) as caught:
        RuleBase.load(rules_copy)
    assert any(f"rulebase.yaml:{line}:" in str(e) and said in str(e) for e in caught.value.errors), caught.value
    out = run_cli("evaluate", "--rules", str(rules_copy), "examples/")
    assert out.exit_code == 2 and f"rulebase.yaml:{line}:" in out.output and said in out.output
    checked = run_cli("audit", "check", "--rules", str(rules_copy))
    assert checked.exit_code == 1 and said in checked.output


def test_a_later_evidence_key_left_empty_is_an_error_not_no_evidence(rules_copy, run_cli):
    line = manifest_names(rules_copy, "null")
    with pytest.raises(RuleBaseInvalid) as caught:
        RuleBase.load(rules_copy)
    assert any(f"rulebase.yaml:{line}:" in str(e) for e in caught.value.errors)
