"""Where the rules fire over the walk (`Tally`), which the checks after it read,
and what the combinations of one layer's settling kept (`Kept`)."""

from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional

from ...core.rulebase import RuleSpec


class Tally:
    """In how many combinations each rule fires (reach: a rule that fires in none
    is unreachable) and the rules it fires with whenever it fires (cofire: one
    that always fires with another that concludes as much is redundant or
    subsumed); and, for the diagnosis walked now, the rules that fire and the
    combinations the schema's constraints exclude."""

    def __init__(self):
        self.reach: Counter = Counter()
        self.cofire: Dict[str, set] = {}
        self.cofired: set = set()  # the sets of rules seen firing together (cofire is updated once per set)
        self.fired_now: set = set()
        self.excluded = 0

    def start_diagnosis(self):
        self.excluded = 0

    def end_diagnosis(self) -> frozenset:
        """The rules that fired in the diagnosis walked, which the next one starts without."""
        fired, self.fired_now = frozenset(self.fired_now), set()
        return fired

    def record(self, fired: List[RuleSpec], count: int):
        """The rules `fired` fire together in `count` combinations."""
        ids = [r.id for r in fired]
        self.fires(ids, count)
        self.together(set(ids))

    def fires(self, rule_ids: Iterable[str], count: int):
        """Each rule of `rule_ids` fires in `count` more combinations."""
        for rule_id in rule_ids:
            self.reach[rule_id] += count
            self.fired_now.add(rule_id)

    def together(self, ids):
        """The rules of `ids` are seen firing together: each fires only with rules
        it fires with in every set seen (counted once per set)."""
        fired = frozenset(ids)
        if fired not in self.cofired:
            self.cofired.add(fired)
            for rule_id in ids:
                self.cofire[rule_id] = self.cofire.get(rule_id, ids) & ids

    def fires_with(self, rule_id: str, count: int, ids: set):
        """A rule fires in `count` more combinations, in each with the rules of `ids`
        (a folded group's rule: each of its sets is met once per state)."""
        self.fires((rule_id,), count)
        self.cofire[rule_id] = self.cofire.get(rule_id, ids) & ids


@dataclass
class Kept:
    """What the combinations of one layer's settling over a state kept (those the
    constraints allow): their count, the rules all of them fire, and the sets of
    rules fired together (but the folded groups' rules that always fire), in order."""

    total: int = 0
    common: Optional[set] = None
    together: Dict[frozenset, None] = field(default_factory=dict)

    def add(self, count: int, ids: set):
        self.total += count
        self.common = ids if self.common is None else self.common & ids
        self.together[frozenset(ids)] = None
