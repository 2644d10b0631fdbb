"""`ivig audit diff` shows what changed in each rule's text, not only outcomes, and reads the
shipped corpus when no CASES are named (issue 29)."""

import json

from helpers import ROOT, mutate


def test_audit_diff_shows_a_rules_text_change_and_reads_the_corpus_by_default(run_cli, rules_copy):
    mutate(rules_copy / "safety.yaml", "when: {age: {ge: 65}}", "when: {age: {ge: 70}}")
    shown = run_cli("audit", "diff", "--rules", str(rules_copy), "--base", str(ROOT / "rules"))
    assert "Rules changed (1): elderly" in shown.output
    assert "-        ge: 65\n+        ge: 70\n" in shown.output  # the rule's YAML, line by line
    assert "cases differ" in shown.output  # the shipped corpus was read (none of its patients is 65-69)
    data = json.loads(
        run_cli("audit", "diff", "--rules", str(rules_copy), "--base", str(ROOT / "rules"), "--format", "json").stdout
    )
    assert [(r["id"], r["change"]) for r in data["rules"]] == [("elderly", "changed")]
    assert data["compared"] > 80


def test_a_rule_added_or_removed_is_named(run_cli, rules_copy):
    text = (rules_copy / "mmn.yaml").read_text(encoding="utf-8")
    start = text.index("  - id: mmn-corticosteroids-planned")
    end = text.index("  - id: als-not-effective")
    (rules_copy / "mmn.yaml").write_text(text[:start] + text[end:], encoding="utf-8")
    data = json.loads(
        run_cli("audit", "diff", "--rules", str(rules_copy), "--base", str(ROOT / "rules"), "--format", "json").stdout
    )
    assert ("mmn-corticosteroids-planned", "removed") in [(r["id"], r["change"]) for r in data["rules"]]


def test_the_same_rules_show_no_rule_change(run_cli):
    shown = run_cli("audit", "diff", "--base", str(ROOT / "rules"))
    assert shown.exit_code == 0 and "Rules changed" not in shown.output and "0 of " in shown.output
