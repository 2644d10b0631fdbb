"""What was edited in the rules' text between two rule bases (`rule_changes`): each rule changed,
added or removed, and the difference of its YAML, as `audit diff` shows it beside what the edit
changes for patients."""

import difflib
from dataclasses import dataclass
from typing import List, Optional

import yaml

from ..core.rulebase import RuleBase, RuleSpec
from ..core.words import plain


@dataclass
class RuleChange:
    """A rule whose text differs between two rule bases: changed, added or removed, and the
    difference of its YAML, line by line (unified diff)."""

    id: str
    change: str
    diff: List[str]

    def to_dict(self) -> dict:
        return {"id": self.id, "change": self.change, "diff": self.diff}


def rule_changes(base: RuleBase, this: RuleBase) -> List[RuleChange]:
    """The rules whose text differs between `base` and `this`, in this rule base's order, then
    those removed: a reviewer reads what was edited, not only what it changed for patients."""
    out = []
    for rule_id in list(this.by_id) + [r for r in base.by_id if r not in this.by_id]:
        old, new = base.by_id.get(rule_id), this.by_id.get(rule_id)
        before, after = _rule_yaml(old), _rule_yaml(new)
        if before == after:
            continue
        change = "added" if old is None else "removed" if new is None else "changed"
        where = [f"{r.file}:{r.line}" if r else "/dev/null" for r in (old, new)]
        lines = difflib.unified_diff(before, after, f"base {where[0]}", f"this {where[1]}", lineterm="")
        out.append(RuleChange(rule_id, change, list(lines)))
    return out


def _rule_yaml(rule: Optional[RuleSpec]) -> List[str]:
    """A rule as YAML, a line each, as a rule file writes it (a list item); none for no rule."""
    if rule is None:
        return []
    text = yaml.safe_dump([plain(rule.raw)], sort_keys=False, allow_unicode=True, width=100)
    return ["  " + line if line else line for line in text.splitlines()]
