"""What `ivig audit check` reports: each problem found (`Finding`), what each
diagnosis's walk covered (`Coverage`) and the whole result (`Verification`);
and the findings of one check as it runs (`Findings`): one per key, ordered
by where they are written."""

from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from ...core.rulebase import RuleSpec
from ...core.schema import CaseSchema


@dataclass
class Finding:
    """One problem found in a rule base, with where it is written."""

    kind: str
    message: str
    file: Optional[str] = None
    line: Optional[int] = None
    rule: Optional[str] = None
    witness: Optional[dict] = None  # one case showing it: field -> value (None: unknown)
    combinations: int = 0  # how many combinations show it

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}: " if self.file else ""
        return f"{where}{self.kind}: {self.message}"

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "message": self.message,
            "file": self.file,
            "line": self.line,
            "rule": self.rule,
            "witness": self.witness,
            "combinations": self.combinations,
        }


@dataclass
class Coverage:
    """What one diagnosis's walk covered."""

    diagnosis: str
    fields: List[str]
    combinations: int
    excluded: int
    states: int
    fired: frozenset = frozenset()  # the rules that fire in some combination


@dataclass
class Verification:
    """The result of `verify`: findings, and how much of the fact space was walked."""

    findings: List[Finding]
    coverage: List[Coverage] = field(default_factory=list)
    reach: Counter = field(default_factory=Counter)  # rule id -> combinations in which it fires

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def combinations(self) -> int:
        return sum(c.combinations for c in self.coverage)

    @property
    def states(self) -> int:
        return sum(c.states for c in self.coverage)

    @property
    def excluded(self) -> int:
        return sum(c.excluded for c in self.coverage)


def order(finding: Finding) -> tuple:
    """The report's order: by file and line, then kind and message."""
    return (finding.file or "", finding.line or 0, finding.kind, finding.message)


class Findings:
    """The findings of one check, one per key (its kind and the rules or the
    diagnosis it is about, or its kind and rule): the first case that shows a
    problem is its witness, and the combinations of the later ones add up."""

    def __init__(self, schema: CaseSchema):
        self.schema = schema
        self.by_key: Dict[tuple, Finding] = {}

    def add(self, kind: str, message: str, rule: Optional[RuleSpec], witness: dict, count: int, key=None):
        """Report a problem that `count` combinations show, `witness` one of them."""
        key = key or (kind, rule.id if rule else message)
        finding = self.by_key.get(key)
        if finding is None:
            # a gap belongs to no rule: it is placed at the diagnosis in the case schema
            where = (rule.file, rule.line) if rule else (self.schema.source, self.schema.fields["diagnosis"].line)
            self.by_key[key] = Finding(kind, message, *where, rule.id if rule else None, dict(witness), count)
        else:
            finding.combinations += count

    def counts(self) -> Dict[tuple, int]:
        """How many combinations show each finding so far, by key."""
        return {key: finding.combinations for key, finding in self.by_key.items()}

    def grow(self, key: tuple, count: int):
        """Add `count` combinations to the finding made under `key`."""
        self.by_key[key].combinations += count

    def ordered(self) -> List[Finding]:
        """Every finding, in the report's order (`order`)."""
        return sorted(self.by_key.values(), key=order)
