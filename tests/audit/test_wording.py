"""A rule's words agree with its condition (issue 29): a number its title, explanation or
rationale says that the numbers its condition compares do not include is a finding of
`ivig audit check`, at the line of the words."""

import json

from helpers import mutate


def check(run_cli, rules_dir):
    result = run_cli("audit", "check", "--rules", str(rules_dir), "--format", "json")
    return result.exit_code, json.loads(result.stdout)


def test_a_threshold_raised_in_the_condition_and_not_in_the_title_is_a_finding(run_cli, rules_copy):
    mutate(rules_copy / "safety.yaml", "when: {age: {ge: 65}}", "when: {age: {ge: 70}}")
    code, report = check(run_cli, rules_copy)
    words = [f for f in report["findings"] if f["kind"] == "words-disagree"]
    assert code == 1 and [f["rule"] for f in words] == ["elderly", "elderly"]
    text = (rules_copy / "safety.yaml").read_text(encoding="utf-8")
    title_line = text[: text.index("    title: A patient aged 65 or more")].count("\n") + 1
    assert words[0]["line"] == title_line
    assert "title says 65" in words[0]["message"] and "compares age with 70" in words[0]["message"]
    assert "rationale says 65" in words[1]["message"]


def test_words_that_agree_are_no_finding(run_cli, rules_copy):
    code, report = check(run_cli, rules_copy)
    assert code == 0 and not [f for f in report["findings"] if f["kind"] == "words-disagree"]
    # the title and the rationale changed with the condition: they agree again
    mutate(rules_copy / "safety.yaml", "when: {age: {ge: 65}}", "when: {age: {ge: 70}}")
    mutate(rules_copy / "safety.yaml", "title: A patient aged 65 or more", "title: A patient aged 70 or more")
    mutate(rules_copy / "safety.yaml", "without an age (A29). 65 is", "without an age (A29). 70 is")
    code, report = check(run_cli, rules_copy)
    assert code == 0, report["findings"]
