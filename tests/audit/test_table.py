"""`ivig audit table` (issue 29): each diagnosis's rules as a decision table that fits an
80-column terminal, matches the rules, states its hit policy and shows the check's gaps."""

import json

from helpers import mutate

from ivig_advisor.engine import RuleBase
from ivig_advisor.engine.core.analysis import live_rules

RULES = RuleBase.load()


def table(run_cli, *args):
    result = run_cli("audit", "table", *args)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_the_tables_of_mmn_and_gbs_fit_80_columns_and_state_the_hit_policy(run_cli):
    shown = table(run_cli, "mmn", "gbs")
    assert max(len(line) for line in shown.splitlines()) <= 80
    assert shown.count("Hit policy: rows fire layer by layer") == 2
    assert "Multifocal motor neuropathy [mmn]" in shown and "Guillain-Barré syndrome [gbs]" in shown
    assert "Every disease" not in shown  # the shared rules only when asked (--shared) or with no diagnosis
    assert "Checked: 86,093,442 combinations; no gap, no conflict." in shown


def test_every_table_fits_80_columns(run_cli):
    shown = table(run_cli)
    assert max(len(line) for line in shown.splitlines()) <= 80
    assert "Every disease (the rules all diagnoses share) [every-disease]" in shown


def test_the_rows_are_the_rules_in_firing_order_and_their_cells_their_tests(run_cli):
    """The JSON is the table the text shows: a diagnosis's rows are its live rules but the shared
    ones, in firing order, one per alternative of an `any`, each cell the rule's test."""
    tables = json.loads(table(run_cli, "gbs", "--format", "json", "--shared"))
    gbs, shared = tables
    shared_ids = {r["rule"] for r in shared["rows"]}
    live = [r.id for r in sorted(live_rules(RULES, "gbs"), key=lambda r: -r.salience) if r.id not in shared_ids]
    assert list(dict.fromkeys(row["rule"] for row in gbs["rows"])) == live
    severe = [row for row in gbs["rows"] if row["rule"] == "gbs-severe"]
    assert [row["cells"] for row in severe] == [{"walks_unaided": "no"}, {"needs_ventilation": "yes"}]
    second = next(row for row in gbs["rows"] if row["rule"] == "gbs-second-course")
    assert (
        second["cells"] == {"incomplete_recovery_after_ivig": "yes"} and second["outcome"] == "stance not-established"
    )
    fire_order = [r.id for r in sorted(RULES.rules, key=lambda r: -r.salience) if r.id in shared_ids]
    assert list(dict.fromkeys(row["rule"] for row in shared["rows"])) == fire_order  # classify (elderly) first
    assert shared["rows"][0]["rule"] == "elderly"
    elderly = next(row for row in shared["rows"] if row["rule"] == "elderly")
    assert elderly["cells"] == {"age": "≥65"} and elderly["outcome"] == "elderly = yes"
    assert gbs["derived"] == ["gbs_severe", "receives_ivig", "stance"]


def test_an_edited_rule_shows_in_its_table(run_cli, rules_copy):
    mutate(rules_copy / "safety.yaml", "when: {age: {ge: 65}}", "when: {age: {ge: 70}}")
    shown = table(run_cli, "--rules", str(rules_copy), "mmn", "--shared", "--format", "markdown")
    assert "| `elderly` | ≥70 |" in shown


def test_a_gap_the_check_finds_is_shown_under_the_table_with_its_patient(run_cli, rules_copy):
    mutate(
        rules_copy / "mmn.yaml", "    when: {diagnosis: mmn}\n", "    when: {diagnosis: mmn, conduction_block: true}\n"
    )
    shown = table(run_cli, "--rules", str(rules_copy), "mmn")
    assert "1 found:" in shown and "gap: no rule sets a stance for diagnosis 'mmn'" in shown
    assert "(e.g. diagnosis=mmn)" in shown


def test_an_unknown_diagnosis_is_a_usage_error_naming_it(run_cli):
    result = run_cli("audit", "table", "flu")
    assert result.exit_code == 2 and "Invalid value for DIAGNOSIS: no diagnosis 'flu'" in result.output


def test_the_report_has_a_decision_table_per_disease(run_cli, tmp_path):
    report = tmp_path / "report.html"
    assert run_cli("audit", "report", "-o", str(report)).exit_code == 0
    page = report.read_text(encoding="utf-8")
    assert '<h2 id="tables">Decision tables</h2>' in page and 'href="#tables"' in page
    tables = page[page.index('<h2 id="tables">') :]
    assert '<h3 id="table-mmn">Multifocal motor neuropathy</h3>' in tables
    assert '<a href="#rule-mmn-general">mmn-general</a>' in tables
    assert tables.count('class="decision"') == len(RULES.schema.fields["diagnosis"].values) + 1  # and the shared one
