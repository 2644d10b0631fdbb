"""Later evidence for reviewers (issue 28): the entries and gaps of the rule base's later-evidence
file (core/later.py) as data, each entry with where it stands with its reviewers
(`evidence_listing`, for `ivig audit evidence` and the report), and what `ivig audit check`
finds in them (`check_evidence`).

The check reads each live entry as the static check reads a rule: whether its situation can
hold at all (`reachable`: every value of the fields it tests that the case schema's
constraints allow, and every value of the derived facts it tests that the exhaustive walk saw
a rule assert for the diagnosis), whether a harm finding rests on a controlled trial or a
regulator, whether the review's rules it speaks to are still live, and when its source was
last read (`stale_sources`: a note, not a finding, unless --strict).
"""

import datetime
from itertools import chain, combinations, product
from types import SimpleNamespace
from typing import Dict, Iterable, List, Optional, Tuple

from ..core import conditions
from ..core.analysis import domains
from ..core.later import Gap, LaterEntry
from ..core.rulebase import RuleBase
from ..core.words import condition_text
from .check import Finding, Verification
from .check.space import verdict
from .signoff import ReviewLog, evidence_hash

# -- the listing ----------------------------------------------------------------------------


def entry_record(rulebase: RuleBase, entry: LaterEntry, log: ReviewLog) -> dict:
    """One entry as a stable JSON object for `audit evidence --format json`: the note a result
    carries (LaterEntry.as_note), and what a reviewer reads beside it (its sign-off, situation in
    words, source, harm finding, changes, where it is written and its hash)."""
    signoff = log.state(entry)
    note = entry.as_note()
    return {
        "id": entry.id,
        "title": entry.title,
        "status": entry.status,
        "lifecycle": signoff.stage,
        "signoff": {"state": signoff.state, **(signoff.entry or {})},
        "signoff_text": signoff.describe(),
        "topic": entry.topic,
        "topic_title": rulebase.topics.get(entry.topic) or entry.topic,
        **{k: note[k] for k in ("kind", "relation", "year", "citation", "pmid", "doi")},
        "cited": entry.cited,
        "link": note["link"],
        "situation": condition_text(rulebase, entry.when),  # as `audit show` words a rule's condition
        **{k: note[k] for k in ("speaks_to", "finding")},
        "source": {"quote": entry.quote, "read_at": entry.read_at, "checked": entry.checked},
        "harm": note["harm"],
        "harm_finding": entry.harm,
        "changes": list(entry.changes),
        "file": entry.file,
        "line": entry.line,
        "hash": evidence_hash(rulebase, entry),
    }


def gap_record(gap: Gap) -> dict:
    """A lead that could not be confirmed, and why."""
    return {"lead": gap.lead, "citation": gap.citation, "why": gap.why, "line": gap.line}


def evidence_listing(rulebase: RuleBase, log: Optional[ReviewLog] = None) -> dict:
    """`ivig audit evidence`: every entry (in the file's order) and every gap, with the file's
    title and upkeep, and how many entries are at each stage of the lifecycle."""
    later = rulebase.later
    log = log if log is not None else ReviewLog.load(rulebase)
    return {
        "title": later.title,
        "file": later.file,
        "maintenance": later.maintenance,
        "entries": [entry_record(rulebase, e, log) for e in later.entries],
        "gaps": [gap_record(g) for g in later.gaps],
        "lifecycle": log.counts(later.entries),
    }


def spoken_of(rulebase: RuleBase) -> Dict[str, List[str]]:
    """rule id -> the later-evidence entries that speak to it, in the file's order."""
    out: Dict[str, List[str]] = {}
    for entry in rulebase.later.entries:
        for rule_id in entry.speaks_to:
            out.setdefault(rule_id, []).append(entry.id)
    return out


# -- the check ------------------------------------------------------------------------------


def check_evidence(
    rulebase: RuleBase, verification: Verification, today: Optional[datetime.date] = None
) -> Tuple[List[Finding], List[Finding]]:
    """What `audit check` finds in the live entries, and its notes (sources to read again)."""
    live = rulebase.later.live()
    fired = {c.diagnosis: c.fired for c in verification.coverage}
    found = [f for e in live for f in _entry_findings(rulebase, e, fired)]
    return found, stale_sources(live, rulebase.later.recheck_after_years, today or datetime.date.today())


def _entry_findings(rulebase: RuleBase, entry: LaterEntry, fired: Dict[str, frozenset]) -> List[Finding]:
    out = []
    if not reachable(rulebase, entry, fired):
        out.append(
            _finding(
                "unreachable-evidence",
                entry,
                "when",
                f"its situation can never hold ({condition_text(rulebase, entry.when)}): no case the "
                "schema allows, with what the rules can derive for its diagnosis, meets it, so no one sees it",
            )
        )
    retired = [r for r in entry.speaks_to if rulebase.by_id[r].status == "retired"]
    if retired:
        out.append(
            _finding(
                "retired-rule",
                entry,
                "speaks_to",
                f"it speaks to the retired rule{'s' if len(retired) > 1 else ''} {', '.join(retired)}: "
                "point it at the rules that replaced them, or retire it",
            )
        )
    return out


def stale_sources(entries: Iterable[LaterEntry], after_years: Optional[int], today: datetime.date) -> List[Finding]:
    """A note for each entry whose source was last checked `after_years` or more years ago (the
    file's `recheck_after_years`; none when the file sets none)."""
    out: List[Finding] = []
    if after_years is None:
        return out
    for entry in entries:
        checked = datetime.date.fromisoformat(entry.checked)
        years = today.year - checked.year - ((today.month, today.day) < (checked.month, checked.day))
        if years >= after_years:
            source = entry.raw.get("source")
            line = source.line_of("checked") if hasattr(source, "line_of") else None
            out.append(
                _finding(
                    "stale-source",
                    entry,
                    None,
                    f"its source was last checked {entry.checked}, {years} years ago ({entry.read_at}): "
                    "read it again for a correction, a retraction or a newer version, and date the check",
                    line,
                )
            )
    return out


def _finding(kind: str, entry: LaterEntry, key: Optional[str], why: str, line: Optional[int] = None) -> Finding:
    where = line or (entry.raw.line_of(key) if key else None) or entry.line
    return Finding(kind, f"later-evidence entry {entry.id}: {why}", entry.file, where, entry.id)


# -- can the situation hold? ------------------------------------------------------------------


def reachable(rulebase: RuleBase, entry: LaterEntry, fired: Dict[str, frozenset]) -> bool:
    """Whether some case meets the entry's situation: for some diagnosis, some values of the case
    fields it tests (or their absence) that the schema's constraints allow, and some values of
    the derived facts it tests that the rules the walk fired for that diagnosis assert (or
    none). Derived facts are taken as free of each other and of the fields, so a situation
    this calls reachable may still never hold; one it calls unreachable never does."""
    schema = rulebase.schema
    names = sorted({t.name for t in conditions.tests(entry.when)} - {"diagnosis"})
    values = _field_values(rulebase, entry, [n for n in names if n in schema.fields])
    for diagnosis in schema.fields["diagnosis"].values:
        made = _derived_values(rulebase, fired.get(diagnosis, frozenset()))
        choices = [values[n] if n in schema.fields else _subsets(made.get(n, ())) for n in names]
        for combo in product(*choices):
            table = dict(zip(names, combo), diagnosis=[diagnosis])
            known = {n: v[0] for n, v in table.items() if n in schema.fields and v}
            if schema.check_constraints(known) and conditions.truth(entry.when, table.__getitem__):
                return True
    return False


def _field_values(rulebase: RuleBase, entry: LaterEntry, names: List[str]) -> Dict[str, List[list]]:
    """Each field's choices: absent, or one value for each way the entry's tests and the schema's
    constraints can read it (the field's cut domain, `analysis.domains`, read no finer)."""
    # the domains of the rules and this entry: its own thresholds cut a number too
    space = domains(SimpleNamespace(rules=[*rulebase.rules, entry], schema=rulebase.schema))
    constraints = [c for w, r, _, _ in rulebase.schema.constraints for c in (w, r)]
    tests = list(conditions.tests(entry.when)) + [t for c in constraints for t in conditions.tests(c)]
    out = {}
    for name in names:
        read = [t for t in tests if t.name == name]
        ways: Dict[tuple, object] = {}
        for value in space[name]:
            if value is not None:
                ways.setdefault(tuple(verdict(t, value) for t in read), value)
        out[name] = [[]] + [[v] for v in ways.values()]
    return out


def _derived_values(rulebase: RuleBase, fired: frozenset) -> Dict[str, List[object]]:
    """derived name -> the values the rules in `fired` assert."""
    out: Dict[str, List[object]] = {}
    for rule in rulebase.rules:
        if rule.id in fired:
            for name, value in rule.derives.items():
                if value not in out.setdefault(name, []):
                    out[name].append(value)
    return out


def _subsets(values) -> List[list]:
    """Every set of values a derived fact can hold at once (none at all among them)."""
    values = list(values)
    return [list(c) for c in chain.from_iterable(combinations(values, n) for n in range(len(values) + 1))]


__all__ = [
    "check_evidence",
    "entry_record",
    "evidence_listing",
    "gap_record",
    "reachable",
    "spoken_of",
    "stale_sources",
]
