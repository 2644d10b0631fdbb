"""Whether a rule's words agree with its condition: the numbers a rule compares a field with
(an age of 65 or more) are said in its title, explanation and rationale too, and a reviewer who
edits one and not the other ("65 or more" over a test of 70) leaves words that mislead every
reader of the rule. `audit check` reports each such number as a finding at its line."""

import re
from typing import Iterator, List, Set

from ..core import conditions
from ..core.rulebase import RuleBase, RuleSpec
from .check import Finding

WORDS = ("title", "explanation", "rationale")  # where a rule says in words what it tests
# a number as words write one ("65", "0.4", "2-3" gives 2 and 3), not part of a name ("A29", "C53")
NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?![\w])")


def wording_findings(rulebase: RuleBase) -> List[Finding]:
    """A finding for each number a rule's words say that its condition's comparisons of a number
    field do not use, for each rule that compares one (a rule that compares none states doses and
    trials in its words, which its condition has no reason to hold)."""
    return [finding for rule in rulebase.rules for finding in _disagreements(rulebase, rule)]


def _disagreements(rulebase: RuleBase, rule: RuleSpec) -> Iterator[Finding]:
    compared = _compared(rulebase, rule)
    if not compared:
        return
    used = {value for _, value in compared}
    tested = ", ".join(sorted({f"{name} with {_shown(value)}" for name, value in compared}))
    for key in WORDS:
        said = _numbers(str(rule.raw.get(key) or ""))
        for number in sorted(said - used):
            yield Finding(
                "words-disagree",
                f"rule {rule.id}: its {key} says {_shown(number)}, but its condition compares {tested}: "
                "say in words what the rule tests",
                rule.file,
                rule.raw.line_of(key) or rule.line,
                rule.id,
            )


def _compared(rulebase: RuleBase, rule: RuleSpec) -> Set[tuple]:
    """(field, number) for each comparison of a number field in the rule's condition."""
    fields = rulebase.schema.fields
    return {
        (test.name, float(value))
        for test in conditions.tests(rule.when)
        if test.name in fields and fields[test.name].type in ("number", "integer")
        for value in test.operands
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    }


def _numbers(text: str) -> Set[float]:
    return {float(n) for n in NUMBER.findall(text)}


def _shown(number: float) -> str:
    return str(int(number)) if number == int(number) else str(number)


__all__ = ["wording_findings"]
