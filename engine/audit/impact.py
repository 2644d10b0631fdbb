"""What an edit of the rules changes for patients, over every patient (`impact`): the
regions of the fact space where the base rule base and this one conclude differently
(check/compare.py walks them), told as changes a reviewer reads, each with how many
combinations of the values the rules distinguish show it, one representative patient
run through both rule bases' real engines, and the rules behind it.

A change that makes the advice less safe is a *safety regression*: a warning lost or
narrowed (given to fewer patients), a warning's severity lowered, a dose raised (or
given where none was, or changed in a way that cannot be ordered), a stance made more
favourable to IVIG (a move up the manifest's list of stances, which runs from the most
favourable to the least). `ivig audit check --against BASE` fails on each until a
reviewer acknowledges it in the review log (`ivig audit sign --acknowledge`); an
acknowledgement names the regression by an id that hashes what changed and the edited
rules behind it, so that a further edit of those rules asks again.
"""

from dataclasses import dataclass, field
from typing import Dict, List, Optional

from ..core.advisor import GENERAL, Advisor
from ..core.analysis import live_rules
from ..core.result import Result
from ..core.rulebase import RuleBase
from ..core.rulespec import SEVERITIES
from ..core.valuecheck import LATER_PREFIX
from ..core.words import plain as _plain
from .check.compare import CONFLICTS, Conclusion, Region, compare, harm_meaning, meaning
from .check.findings import Finding
from .rulediff import rule_changes
from .signoff import digest, rule_hash

REGRESSIONS = ("warning-lost", "warning-narrowed", "severity-lowered", "dose-raised", "stance-more-favourable")


@dataclass
class Change:
    """One way the advice changes for some patients: `kind` (a regression's
    kind, or warning-added, severity-raised, dose-lowered, stance-less-favourable), what it
    is about (`subject`: a warning's code, 'stance' or 'dose') and its value before and after."""

    kind: str
    subject: str
    before: object
    after: object
    diagnoses: Dict[str, int] = field(default_factory=dict)  # diagnosis -> the combinations showing it
    witness: dict = field(default_factory=dict)  # the simplest patient showing it (fewest known fields)
    base_rules: List[str] = field(default_factory=list)  # the rules behind it in the base, for that patient
    this_rules: List[str] = field(default_factory=list)  # and in this rule base
    edited: List[str] = field(default_factory=list)  # the edited rules that fired for that patient on a side
    id: str = ""

    @property
    def regression(self) -> bool:
        return self.kind in REGRESSIONS

    @property
    def combinations(self) -> int:
        return sum(self.diagnoses.values())

    def case(self) -> dict:
        """The representative patient as a case a person could write (unknown fields left out)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.witness.items() if v is not None}

    def describe(self) -> str:
        """The change in words: 'warning thrombosis: warning -> (none)'."""
        words = {
            "warning-lost": "warning lost",
            "warning-narrowed": "warning narrowed (no longer given to these patients)",
            "warning-added": "warning added",
            "severity-lowered": "severity lowered",
            "severity-raised": "severity raised",
            "dose-raised": "dose raised or changed",
            "dose-lowered": "dose lowered",
            "conflict-added": "the rules now disagree",
            "conflict-resolved": "the rules no longer disagree",
            "stance-more-favourable": "stance more favourable to IVIG",
            "stance-less-favourable": "stance less favourable to IVIG",
        }[self.kind]
        return f"{words}: {self.subject}: {_words(self.before)} -> {_words(self.after)}"

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "kind": self.kind,
            "regression": self.regression,
            "subject": self.subject,
            "before": _jsonable(self.before),
            "after": _jsonable(self.after),
            "combinations": self.combinations,
            "diagnoses": self.diagnoses,
            "case": self.case(),
            "base_rules": self.base_rules,
            "this_rules": self.this_rules,
            "edited": self.edited,
        }


@dataclass
class Impact:
    """`impact`: every change, regressions first; how much of the space was compared."""

    changes: List[Change]
    regions: int  # the regions walked (pairs of conclusions), alike or not
    differing: int  # those where the two rule bases conclude differently
    combinations: int  # the combinations they hold
    changed_combinations: int
    walked: List[str] = field(default_factory=list)  # the diagnoses whose rules differ (the others: alike)
    diagnoses: int = 0  # how many diagnoses there are

    @property
    def regressions(self) -> List[Change]:
        return [c for c in self.changes if c.regression]

    def to_dict(self) -> dict:
        return {
            "regions": self.regions,
            "differing_regions": self.differing,
            "combinations": self.combinations,
            "changed_combinations": self.changed_combinations,
            "walked": self.walked,
            "regressions": len(self.regressions),
            "changes": [c.to_dict() for c in self.changes],
        }


def impact(base: Advisor, this: Advisor) -> Impact:
    """Compare two rule bases over every patient (see the module doc); each change with its
    representative patient run through both real engines, which must show it."""
    edited = {c.id for c in rule_changes(base.rulebase, this.rulebase)} | _entries_changed(base.rulebase, this.rulebase)
    walked = differing_diagnoses(base.rulebase, this.rulebase)
    regions = compare(base.rulebase, this.rulebase, walked)
    changes: Dict[tuple, Change] = {}
    for region in regions:
        if region.differs:
            for change in _changes(region, this.rulebase):
                _gather(changes, change, region)
    given = {code for r in regions for code, _ in r.this.warnings}
    for change in changes.values():
        if change.kind == "warning-narrowed" and change.subject not in given:
            change.kind = "warning-lost"  # no patient gets it any more
    out = sorted(changes.values(), key=_order)
    for change in out:
        _explain(change, base, this, edited)
    return Impact(
        out,
        len(regions),
        sum(r.differs for r in regions),
        sum(r.combinations for r in regions),
        sum(r.combinations for r in regions if r.differs),
        walked,
        len(this.rulebase.schema.fields["diagnosis"].values),
    )


def _order(change: Change) -> tuple:
    """Regressions first, by kind; the review's own warnings before the later evidence's harm
    findings that follow them (beside the review, never before it)."""
    rank = REGRESSIONS.index(change.kind) if change.regression else len(REGRESSIONS)
    return (rank, change.kind, change.subject.startswith(LATER_PREFIX), change.subject)


def _entries_changed(base: RuleBase, this: RuleBase) -> set:
    """The later-evidence entries whose harm finding or situation differs between the two."""
    return {entry_id for entry_id, *_ in harm_meaning(base) ^ harm_meaning(this)}


def differing_diagnoses(base: RuleBase, this: RuleBase) -> List[str]:
    """The diagnoses whose patients the two rule bases may advise differently: all, if the layers
    or stances differ; else those for which the rules that can fire differ in what they mean (a
    diagnosis whose live rules say the same, a named regimen read in, in the same layers, gets the
    same advice)."""
    values = list(this.schema.fields["diagnosis"].values)
    if [(l.name, l.sets_stance) for l in base.layers] != [(l.name, l.sets_stance) for l in this.layers]:
        return values
    if base.stances != this.stances or harm_meaning(base) != harm_meaning(this):
        return values

    def said(rulebase: RuleBase, diagnosis: str) -> set:
        return {meaning(r) for r in live_rules(rulebase, diagnosis)}

    return [d for d in values if said(base, d) != said(this, d)]


def _gather(changes: Dict[tuple, Change], change: Change, region: Region):
    """Add a region's change to the one of its key (across diagnoses), keeping the simplest witness."""
    key = (change.kind, change.subject, repr(change.before), repr(change.after))
    known = changes.setdefault(key, change)
    known.diagnoses[region.diagnosis] = known.diagnoses.get(region.diagnosis, 0) + region.combinations
    if not known.witness or _known(region.witness) < _known(known.witness):
        known.witness = region.witness


def _known(witness: dict) -> int:
    return sum(v is not None for v in witness.values())


def _changes(region: Region, this: RuleBase) -> List[Change]:
    """The changes one region shows, from the base's conclusion to this rule base's (a warning no
    longer given is 'narrowed' until `impact` has seen every region)."""
    a, b = region.base, region.this
    out = []
    rank = {name: i for i, name in enumerate(this.stances)}  # most favourable to IVIG first
    if a.stance != b.stance:
        before, after = (len(rank) if c.stance is None else rank.get(c.stance, len(rank)) for c in (a, b))
        kind = "stance-more-favourable" if after < before else "stance-less-favourable"
        out.append(Change(kind, "stance", a.stance, b.stance))
    if a.dose != b.dose:
        kind = "dose-lowered" if b.dose is None or _lower(b.dose, a.dose) else "dose-raised"
        out.append(Change(kind, "dose", a.dose, b.dose))
    before, after = _severities(a), _severities(b)
    order = {s: i for i, s in enumerate(SEVERITIES)}  # most severe first
    for code in sorted(before.keys() | after.keys()):
        old, new = before.get(code), after.get(code)
        if old == new:
            continue
        if code in CONFLICTS:  # the check's own conflict finding speaks for a new one
            kind = "conflict-added" if old is None else "conflict-resolved"
        elif new is None:
            kind = "warning-narrowed"
        elif old is None:
            kind = "warning-added"
        else:
            kind = "severity-lowered" if order[new] > order[old] else "severity-raised"
        out.append(Change(kind, code, old, new))
    return out


def _severities(conclusion: Conclusion) -> Dict[str, str]:
    """A conclusion's warnings, code -> the most severe severity it is given at."""
    order = {s: i for i, s in enumerate(SEVERITIES)}
    out: Dict[str, str] = {}
    for code, severity in conclusion.warnings:
        if code not in out or order[severity] < order[out[code]]:
            out[code] = severity
    return out


def _lower(after: tuple, before: Optional[tuple]) -> bool:
    """Whether the dose `after` is lower than or equal to `before`, key by key, on the numbers both
    give, with no other key changed: only then is a changed dose not a regression."""
    if before is None:
        return False
    new, old = dict(after), dict(before)
    for key in new.keys() | old.keys():
        x, y = new.get(key), old.get(key)
        numbers = isinstance(x, (int, float)) and isinstance(y, (int, float))
        if (numbers and x > y) or (not numbers and x != y):
            return False
    return True


def _explain(change: Change, base: Advisor, this: Advisor, edited: set):
    """Run the representative patient through both real engines: the rules behind the change on
    each side, the edited rules that fired for it, and the change's id. The engines must show the
    change the walk found; if they do not, the walk is wrong, and that is said, not hidden."""
    results = [advisor.evaluate_mapping(change.case(), default_id="representative") for advisor in (base, this)]
    shown = [_shown(result, change.subject) for result in results]
    if shown[0] == shown[1]:
        raise AssertionError(
            f"the exhaustive comparison found '{change.describe()}' for {change.case()}, "
            "but the engines give this patient the same advice: please report this"
        )
    change.base_rules, change.this_rules = (_behind(result, change.subject) for result in results)
    fired = {f["rule"] for result in results for f in result.trace}
    change.edited = sorted(fired & edited)
    change.id = _change_id(change, base.rulebase, this.rulebase, edited)


def _shown(result: Result, subject: str):
    """What a result says of a change's subject: the stance, the dose, or a warning's severity."""
    if subject == "stance":
        return (result.ivig or {}).get("stance")
    if subject == "dose":
        return (
            None
            if result.dose is None
            else {k: v for k, v in result.dose.items() if k not in ("total_g", "infusion_g")}
        )
    return sorted(w["severity"] for w in _all_warnings(result) if w["code"] == subject)


def _behind(result: Result, subject: str) -> List[str]:
    """The rules that gave a result's stance, dose or warning."""
    if subject == "stance":
        return [result.ivig["rule"]] if result.ivig else []
    if subject == "dose":
        return [result.dose["rule"]] if result.dose else []
    given = [w for w in _all_warnings(result) if w["code"] == subject]
    return sorted({w.get("rule") or f"later evidence {w.get('later_evidence')}" for w in given})


def _all_warnings(result: Result) -> List[dict]:
    """A result's warnings, those about every infusion taken out of the general precautions."""
    out = []
    for w in result.warnings:
        if w["code"] == GENERAL:
            out += [dict(item, severity="info") for item in w.get("items", ())]
        else:
            out.append(w)
    return out


def _change_id(change: Change, base: RuleBase, this: RuleBase, edited: set) -> str:
    """A regression's id: a hash of what changed, for whom, and every edited rule (or later-evidence
    entry) that can fire for its diagnoses, as written on each side, so that editing any of them
    again, or another edit that reaches the same patients, makes a new id to acknowledge (not
    only the rules that fired for the one patient shown)."""
    live = {r.id for d in change.diagnoses for rb in (base, this) for r in live_rules(rb, d)}
    behind = sorted((live | {e.id for rb in (base, this) for e in rb.later.entries}) & edited)

    def hashes(rulebase: RuleBase):
        later = rulebase.later.by_id
        return [
            rule_hash(rulebase.by_id[i]) if i in rulebase.by_id else repr(_plain(later[i].raw)) if i in later else None
            for i in behind
        ]

    content = [sorted(change.diagnoses), change.kind, change.subject, repr(change.before), repr(change.after)]
    content += [behind, hashes(base), hashes(this)]
    return "R-" + digest(content)[:10]


def _words(value) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, tuple):
        return _dose_words(dict(value))
    return str(value)


def _dose_words(dose: dict) -> str:
    keys = ("total_g_per_kg", "g_per_kg_per_day", "days", "infusion_g_per_kg", "interval")
    return ", ".join(f"{k} {dose[k]}" for k in keys if dose.get(k) is not None)


def _jsonable(value):
    return dict(value) if isinstance(value, tuple) else value


def regression_findings(impact: Impact, this: RuleBase, against: str, acknowledged: Dict[str, dict]):
    """The safety regressions as the check's findings (those no reviewer has acknowledged, each at
    the first edited rule behind it) and notes (those acknowledged, with who and why)."""
    findings, notes = [], []
    for change in impact.regressions:
        where = next((this.by_id[r] for r in change.edited if r in this.by_id), None)
        place = (where.file, where.line, where.id) if where else (None, None, None)
        ack = acknowledged.get(change.id)
        if ack is not None:
            message = (
                f"safety regression {change.id} acknowledged by {ack['reviewer']} on {ack['date']} "
                f"({ack['reason']}): {change.describe()}"
            )
            notes.append(Finding("regression", message, *place))
            continue
        message = (
            f"safety regression {change.id} against {against}: {change.describe()}, "
            f"in {', '.join(change.diagnoses)}; behind it: base {', '.join(change.base_rules) or '(none)'}, "
            f"this {', '.join(change.this_rules) or '(none)'}; edited: {', '.join(change.edited) or '(none)'}. "
            f"A reviewer who accepts it: ivig audit sign --against {against} --acknowledge {change.id} "
            '--reason "..." --reviewer NAME'
        )
        findings.append(Finding("regression", message, *place, dict(change.witness), change.combinations))
    return findings, notes
