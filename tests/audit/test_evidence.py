"""Later evidence for reviewers (issue 28), through the real CLI: `ivig audit evidence` lists
every entry and every gap (text, Markdown, JSON), an entry is signed off like a rule and goes
stale when it changes, the HTML report shows what changed since 2004 beside each topic's
rules, and `ivig audit check` checks the entries' sources and that their situations can hold."""

import datetime
import html as markup
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import mutate

from ivig_advisor.engine import RuleBase
from ivig_advisor.engine.core.words import condition_text

RULES = RuleBase.load()
LATER = RULES.later
SIGN = ("--verdict", "approved", "--reviewer", "Dr Rev")
SID = "sid-gbs-second-course"


def audit(run_cli, rules_dir, *args):
    return run_cli("audit", *(["--rules", str(rules_dir)] if rules_dir else []), *args)


def evidence_json(run_cli, rules_dir=None) -> dict:
    result = audit(run_cli, rules_dir, "evidence", "--format", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def records(run_cli, rules_dir=None) -> dict:
    return {e["id"]: e for e in evidence_json(run_cli, rules_dir)["entries"]}


def check_json(run_cli, rules_dir, *args):
    result = audit(run_cli, rules_dir, "check", "--format", "json", *args)
    return result.exit_code, json.loads(result.stdout)


def later_file(rules_dir):
    return rules_dir / "later-evidence.yaml"


def entry_span(text: str, entry_id: str):
    """Where an entry is written in the file's text: from its `- id:` line to the next entry
    (or the gaps)."""
    start = text.index(f"  - id: {entry_id}\n")
    ends = [i for i in (text.find("\n  - id: ", start + 1), text.find("\ngaps:", start)) if i != -1]
    return start, min(ends) + 1


def edit_entry(rules_dir, entry_id: str, old: str, new: str) -> int:
    """Replace `old` (a regex, matched once) inside one entry; the line the edit starts on."""
    path = later_file(rules_dir)
    text = path.read_text(encoding="utf-8")
    start, end = entry_span(text, entry_id)
    block = text[start:end]
    found = re.search(old, block, re.M | re.S)
    assert found, (old, block)
    path.write_text(text[:start] + block[: found.start()] + new + block[found.end() :] + text[end:], encoding="utf-8")
    return text[: start + found.start()].count("\n") + 1


def set_when(rules_dir, entry_id: str, when: str) -> int:
    """Give an entry another situation (a YAML flow mapping); the line of its `when`."""
    return edit_entry(rules_dir, entry_id, r"^    when:.*?(?=^    kind:)", f"    when: {when}\n")


def findings(report: dict, kind: str) -> list:
    return [f for f in report["findings"] if f["kind"] == kind]


# -- audit evidence ------------------------------------------------------------------------


def test_the_listing_names_every_entry_and_every_gap_with_its_source(run_cli):
    result = audit(run_cli, None, "evidence")
    assert result.exit_code == 0, result.output
    out = result.output
    for entry in LATER.entries:
        assert f"\n{entry.id}  " in out, entry.id
        for text in (entry.title, entry.finding, entry.quote, entry.link, entry.cited, entry.read_at):
            assert text in out, (entry.id, text)
        assert f"checked {entry.checked}" in out
        assert condition_text(RULES, entry.when) in out  # the situation in words, as `audit show` gives a rule's
        assert ", ".join(entry.speaks_to) in out
    for gap in LATER.gaps:
        assert gap.lead in out and gap.citation in out and gap.why in out
    assert "Harm (warning) later-second-gbs-course-harm: Since 2004 (SID-GBS, 2021)" in out
    assert "draft: not signed yet" in out and "retired" in out
    retired = sum(e.status == "retired" for e in LATER.entries)
    assert f"{len(LATER.entries)} entries ({retired} retired), {len(LATER.gaps)} gaps" in out


def test_the_json_gives_each_entry_whole_and_each_gap(run_cli):
    listing = evidence_json(run_cli)
    assert [e["id"] for e in listing["entries"]] == [e.id for e in LATER.entries]
    assert [g["lead"] for g in listing["gaps"]] == [g.lead for g in LATER.gaps]
    sid = next(e for e in listing["entries"] if e["id"] == SID)
    entry = LATER.by_id[SID]
    assert sid["situation"] == condition_text(RULES, entry.when)
    assert (sid["pmid"], sid["doi"], sid["link"]) == (entry.pmid, entry.doi, entry.link)
    assert (sid["kind"], sid["relation"], sid["year"], sid["topic"]) == (
        "controlled-trial",
        "reports-harm",
        2021,
        "gbs",
    )
    assert sid["source"] == {"quote": entry.quote, "read_at": entry.read_at, "checked": entry.checked}
    assert sid["harm"] == "later-second-gbs-course-harm" and sid["harm_finding"]["severity"] == "warning"
    assert sid["speaks_to"] == ["gbs-second-course"]
    assert (sid["status"], sid["lifecycle"], sid["signoff"]["state"]) == ("draft", "draft", "missing")
    assert sid["file"].endswith("later-evidence.yaml") and sid["line"] == entry.line
    assert listing["lifecycle"]["draft"] == sum(e.status != "retired" for e in LATER.entries)


def test_the_markdown_has_a_section_per_topic_and_lists_the_gaps(run_cli):
    result = audit(run_cli, None, "evidence", "--format", "markdown")
    assert result.exit_code == 0
    out = result.output
    for topic in dict.fromkeys(e.topic for e in LATER.entries):
        assert f"\n## {RULES.topics[topic]}\n" in out
    assert f"### `{SID}` — " in out and "## Gaps" in out
    assert "- situation: diagnosis is " in out


def test_everything_from_the_file_is_escaped_in_every_format(run_cli, rules_copy, tmp_path):
    """Markup in an entry's words is shown as written, never run (a control character is refused
    on load: tests/core/test_later_attack.py)."""
    edit_entry(rules_copy, SID, r"^    title: .*?$", '    title: "<script>x</script> | *bold* [a](b)"')
    text = audit(run_cli, rules_copy, "evidence").output
    assert "<script>x</script> | *bold* [a](b)" in text
    markdown = audit(run_cli, rules_copy, "evidence", "--format", "markdown").output
    assert "<script>" not in markdown and "&lt;script&gt;" in markdown and "\\[a\\](b)" in markdown
    assert records(run_cli, rules_copy)[SID]["title"] == "<script>x</script> | *bold* [a](b)"
    report = tmp_path / "r.html"
    assert audit(run_cli, rules_copy, "report", "-o", str(report)).exit_code == 0
    html = report.read_text(encoding="utf-8")
    assert "<script>" not in html and "&lt;script&gt;x&lt;/script&gt;" in html


# -- sign-off ------------------------------------------------------------------------------


def test_an_entry_is_signed_like_a_rule_and_goes_stale_when_it_changes(run_cli, rules_copy):
    signed = audit(run_cli, rules_copy, "sign", SID, "isid-gbs-second-course", *SIGN, "--date", "2026-11-30")
    assert signed.exit_code == 0, signed.output
    assert f"{SID}: approved by Dr Rev on 2026-11-30" in signed.output
    log = yaml.safe_load((rules_copy / "review-log.yaml").read_text(encoding="utf-8"))["signoffs"]
    assert [e.get("evidence") for e in log] == [SID, "isid-gbs-second-course"] and "rule" not in log[0]
    shown = records(run_cli, rules_copy)
    assert shown[SID]["lifecycle"] == "approved" and shown[SID]["signoff"]["reviewer"] == "Dr Rev"
    assert "approved by Dr Rev on 2026-11-30" in audit(run_cli, rules_copy, "evidence").output
    # the rules' own sign-offs are untouched
    rules = json.loads(audit(run_cli, rules_copy, "rules", "--format", "json").stdout)
    assert {r["signoff"]["state"] for r in rules} == {"missing"}

    edit_entry(rules_copy, SID, r"No benefit on the GBS", "No benefit at all on the GBS")
    shown = records(run_cli, rules_copy)
    assert shown[SID]["lifecycle"] == "stale" and shown["isid-gbs-second-course"]["lifecycle"] == "approved"
    text = audit(run_cli, rules_copy, "evidence").output
    assert "stale: approved by Dr Rev on 2026-11-30; the entry, or what decides" in text


def test_an_entry_goes_stale_when_a_rule_that_decides_its_situation_changes(run_cli, rules_copy):
    assert audit(run_cli, rules_copy, "sign", "fda-2013-thrombosis-risk", SID, *SIGN).exit_code == 0
    mutate(rules_copy / "safety.yaml", "        - diabetes: true\n", "")  # thrombosis_risk is derived otherwise
    shown = records(run_cli, rules_copy)
    assert shown["fda-2013-thrombosis-risk"]["lifecycle"] == "stale" and shown[SID]["lifecycle"] == "approved"


def test_a_mistyped_id_records_nothing_and_names_the_nearest_entry(run_cli, rules_copy):
    result = audit(run_cli, rules_copy, "sign", "gbs-dose", "sid-gbs-second-cours", *SIGN)
    assert result.exit_code == 2
    assert "no rule 'sid-gbs-second-cours'; did you mean 'sid-gbs-second-course'?" in result.output
    assert not (rules_copy / "review-log.yaml").exists()


def test_a_sign_off_of_an_entry_since_removed_is_history_not_corruption(run_cli, rules_copy):
    (rules_copy / "review-log.yaml").write_text(
        "signoffs:\n- evidence: sid-gbs-second-coursee\n  verdict: approved\n  reviewer: A\n"
        "  date: '2026-01-01'\n  hash: x\n",
        encoding="utf-8",
    )
    code, report = check_json(run_cli, rules_copy)
    assert code == 1
    assert [(f["line"], f["message"]) for f in findings(report, "review-log")] == [
        (
            2,
            "no later-evidence entry 'sid-gbs-second-coursee'; did you mean 'sid-gbs-second-course'? "
            "(a sign-off of an entry no longer in the rule base)",
        )
    ]
    assert audit(run_cli, rules_copy, "sign", SID, *SIGN).exit_code == 0


@pytest.mark.parametrize(
    "entry, words",
    [
        ("- rule: gbs-dose\n  evidence: x\n", "names a 'rule' or an 'evidence' entry, not both"),
        ("- verdict: approved\n", "'rule' is missing (or 'evidence', for a later-evidence entry)"),
    ],
)
def test_a_sign_off_names_one_rule_or_one_entry(run_cli, rules_copy, entry, words):
    text = "signoffs:\n" + entry + "  reviewer: A\n  date: '2026-01-01'\n  hash: x\n"
    if "verdict" not in entry:
        text = text.replace("  reviewer:", "  verdict: approved\n  reviewer:")
    (rules_copy / "review-log.yaml").write_text(text, encoding="utf-8")
    result = audit(run_cli, rules_copy, "sign", SID, *SIGN)
    assert result.exit_code == 2 and words in result.output and "review-log.yaml:2" in result.output


def test_strict_check_asks_for_every_live_entry_to_be_approved(run_cli, rules_copy):
    plain = audit(run_cli, rules_copy, "check")
    live = sum(e.status != "retired" for e in LATER.entries)
    assert plain.exit_code == 0 and f"Later evidence: {live} draft, 0 approved, 0 needs-change, 0 stale" in plain.output
    assert audit(run_cli, rules_copy, "sign", *[e.id for e in LATER.entries if e.id != SID], *SIGN).exit_code == 0
    strict = audit(run_cli, rules_copy, "check", "--strict")
    assert strict.exit_code == 1
    assert f"sign-off: later evidence {SID}: draft: not signed yet" in strict.output
    assert "sign-off: later evidence isid-gbs-second-course" not in strict.output


# -- audit check ---------------------------------------------------------------------------


def test_the_shipped_entries_pass_the_check(run_cli):
    code, report = check_json(run_cli, None)
    assert code == 0, report["findings"]
    assert report["notes"] == [] and report["evidence_signoff"]["draft"] > 0


@pytest.mark.parametrize(
    "when",
    [
        "{all: [{diagnosis: gbs}, {diagnosis: cidp}]}",  # one diagnosis at a time
        "{all: [{needs_ventilation: true}, {walks_unaided: true}]}",  # the case schema's constraint
        "{all: [{receives_ivig: true}, {not: {thrombosis_risk: true}}]}",  # no rule derives it false
        "{all: [{diagnosis: inclusion_body_myositis}, {stance: first-line}]}",  # never for IBM
    ],
)
def test_an_entry_whose_situation_can_never_hold_is_a_finding_at_its_line(run_cli, rules_copy, when):
    line = set_when(rules_copy, "fda-2013-thrombosis", when)
    RuleBase.load(rules_copy)  # the loader takes it: each name is one it knows
    code, report = check_json(run_cli, rules_copy)
    assert code == 1
    found = findings(report, "unreachable-evidence")
    assert [(f["file"].endswith("later-evidence.yaml"), f["line"], f["rule"]) for f in found] == [
        (True, line, "fda-2013-thrombosis")
    ]
    assert "its situation can never hold" in found[0]["message"]


def test_a_situation_that_can_hold_is_not_a_finding(run_cli, rules_copy):
    set_when(rules_copy, "fda-2013-thrombosis", "{all: [{diagnosis: inclusion_body_myositis}, {receives_ivig: true}]}")
    code, report = check_json(run_cli, rules_copy)
    assert code == 0, report["findings"]


def test_a_source_not_checked_for_three_years_is_a_note_and_fails_strict(run_cli, rules_copy):
    today = datetime.date.today()
    long_ago, recent = today.replace(year=today.year - 3), today.replace(year=today.year - 3) + datetime.timedelta(1)
    line = edit_entry(rules_copy, SID, r'^      checked: "[0-9-]+"', f'      checked: "{long_ago}"')
    edit_entry(rules_copy, "igos-mild-gbs", r'^      checked: "[0-9-]+"', f'      checked: "{recent}"')
    code, report = check_json(run_cli, rules_copy)
    assert code == 0 and report["findings"] == []
    assert [(n["kind"], n["line"], n["rule"]) for n in report["notes"]] == [("stale-source", line, SID)]
    assert f"checked {long_ago}" in report["notes"][0]["message"]
    text = audit(run_cli, rules_copy, "check").output
    assert f"later-evidence.yaml:{line}: stale-source: " in text
    code, strict = check_json(run_cli, rules_copy, "--strict")
    assert code == 1 and [f["rule"] for f in findings(strict, "stale-source")] == [SID]


def test_harm_that_rests_on_neither_a_trial_nor_a_regulator_is_refused_at_its_line(run_cli, rules_copy):
    """The loader holds this (core/later.py): such an entry never reaches a patient's warnings."""
    line = edit_entry(rules_copy, SID, r"^    kind: controlled-trial", "    kind: observational-study")
    code, report = check_json(run_cli, rules_copy)
    assert code == 1
    refused = [f for f in report["findings"] if "a harm finding rests on a controlled trial" in f["message"]]
    assert refused and refused[0]["line"] > line and refused[0]["file"].endswith("later-evidence.yaml")


def test_harm_without_a_pmid_or_doi_is_a_finding_unless_a_regulator_acted(run_cli, rules_copy):
    """The loader holds this for every entry; `audit check` shows it at the entry's line."""
    edit_entry(rules_copy, SID, r"^    pmid: .*?\n    doi: .*?\n", "")
    code, report = check_json(run_cli, rules_copy)
    assert code == 1
    assert any("a published source needs its PMID or DOI" in f["message"] for f in findings(report, "provenance"))
    assert not findings(check_json(run_cli, None)[1], "provenance")  # the FDA's entries have neither


def test_an_entry_speaking_to_a_retired_rule_is_a_finding(run_cli, rules_copy):
    mutate(rules_copy / "gbs.yaml", "  - id: gbs-second-course\n", "  - id: gbs-second-course\n    status: retired\n")
    code, report = check_json(run_cli, rules_copy)
    assert code == 1
    found = {f["rule"]: f for f in findings(report, "retired-rule")}
    assert set(found) == {e.id for e in LATER.live() if "gbs-second-course" in e.speaks_to}
    assert "gbs-second-course" in found[SID]["message"]
    assert found[SID]["line"] == edit_entry(rules_copy, SID, r"^    speaks_to:", "    speaks_to:")


# -- the report ----------------------------------------------------------------------------


def test_the_report_shows_what_changed_since_2004_beside_each_topics_rules(run_cli, rules_copy, tmp_path):
    assert audit(run_cli, rules_copy, "sign", SID, *SIGN).exit_code == 0
    out = tmp_path / "r.html"
    assert audit(run_cli, rules_copy, "report", "-o", str(out)).exit_code == 0
    html = out.read_text(encoding="utf-8")
    topics = list(dict.fromkeys(r.topic for r in RULES.rules))
    for topic in topics:
        start = html.index(f'<h3 id="topic-{topic}">')
        after = [html.index(f'<h3 id="topic-{t}">') for t in topics if html.index(f'<h3 id="topic-{t}">') > start]
        section = html[start : min(after) if after else html.index('<h2 id="regimens">')]
        entries = [e for e in LATER.entries if e.topic == topic]
        assert ('<aside class="since"' in section) == bool(entries), topic
        for entry in entries:
            card = re.search(rf'<article class="evidence" id="evidence-{entry.id}">(.*?)</article>', section, re.S)
            assert card, entry.id
            for rule_id in entry.speaks_to:  # a link to the rule, which is in the report
                assert f'<a href="#rule-{rule_id}">{rule_id}</a>' in card.group(1)
            assert str(entry.year) in card.group(1) and markup.escape(entry.link) in card.group(1)
    sid = re.search(rf'id="evidence-{SID}">(.*?)</article>', html, re.S).group(1)
    assert 'class="badge approved">approved<' in sid and "controlled trial" in sid and "reports harm" in sid
    assert 'id="since-2004"' in html and all(markup.escape(g.lead) in html for g in LATER.gaps)
    # the rule a later entry speaks to links back to it
    assert f'<a href="#evidence-{SID}">{SID}</a>' in html


def test_sign_completes_the_ids_of_entries_as_of_rules():
    """`_IVIG_COMPLETE` (click's protocol, as bash calls it): `audit sign` takes an entry's id too."""

    def complete(words):
        env = dict(os.environ, _IVIG_COMPLETE="bash_complete", COMP_WORDS=words, COMP_CWORD=str(len(words.split()) - 1))
        out = subprocess.run([str(Path(sys.executable).parent / "ivig")], env=env, capture_output=True, text=True)
        return [line.split(",", 1)[1] for line in out.stdout.splitlines()]

    assert complete("ivig audit sign gbs-dose sid-g") == [SID]
    assert complete("ivig audit sign mmn-genera") == ["mmn-general"]


def test_audit_diff_shows_the_later_evidence_an_edit_adds_or_takes_away(run_cli, rules_copy):
    """An edit to later-evidence.yaml changes what some patients are shown: `audit diff` lists them,
    as it lists a change of stance, dose or warnings."""
    set_when(rules_copy, "efns-pns-mmn-2006", "{all: [{diagnosis: mmn}, {conduction_block: false}]}")
    mmn = str(Path(__file__).resolve().parents[2] / "examples" / "mmn.yaml")
    shown = run_cli("audit", "diff", "--rules", str(rules_copy), "--base", "rules", mmn)
    assert shown.exit_code == 1, shown.output
    assert re.search(r"later_evidence\s+efns-pns-mmn-2006\s+\| —", shown.output), shown.output
    data = json.loads(
        run_cli("audit", "diff", "--rules", str(rules_copy), "--base", "rules", mmn, "--format", "json").stdout
    )
    assert [d["changed"] for d in data["cases"]] == [["later_evidence"]]


DM_HARM = "proderm-dermatomyositis-thrombosis"


def test_an_entry_is_not_made_stale_by_a_rule_of_another_disease_nor_by_re_dating_its_check(run_cli, rules_copy):
    """A sign-off goes stale on what the reviewer judged: not on a GBS rule for a dermatomyositis
    entry, nor on a re-check that leaves the quote and the page as they were (the stale-source
    note asks for that re-check every few years)."""
    assert audit(run_cli, rules_copy, "sign", DM_HARM, *SIGN).exit_code == 0
    mutate(
        rules_copy / "gbs.yaml",
        "natural course of\n          the disease confounds",
        "natural course of\n          GBS confounds",
    )
    edit_entry(rules_copy, DM_HARM, r'checked: "2026-12-06"', 'checked: "2026-12-05"')
    assert records(run_cli, rules_copy)[DM_HARM]["lifecycle"] == "approved"
    edit_entry(rules_copy, DM_HARM, r"reduced the rate of TEEs", "reduced the rate of thromboses")  # the quote
    assert records(run_cli, rules_copy)[DM_HARM]["lifecycle"] == "stale"
