"""Attaching later evidence to a case: the entries of the later-evidence file (later.py)
compiled onto an experta engine of their own, run over a case's facts and the facts its rules
derived, after the review's rules have decided.

An entry's situation is matched exactly as a rule's condition is (the same condition language,
compiled by the same compiler onto the same kind of fact), but on a separate engine that reads
the run and asserts nothing: the review's stance, dose and warnings cannot depend on it. What
an entry adds to a Result is its note (`later_evidence`) and, for an entry that reports harm in
the patient's situation, its finding among the patient's warnings, marked as later evidence.
"""

from typing import Dict, List, Tuple

from . import conditions
from ._experta import Fact, KnowledgeEngine, Rule, new_fact, trim_overheads
from .analysis import may_hold_for
from .compiler import DEFAULT_MATCHER, TRACE_KIND, Derived, Given, compile_condition, fact_kind, matcher_class
from .later import LaterEntry
from .result import Run, patient_first
from .rulebase import RuleBase
from .words import plain

MEMO_SIZE = 4096  # situations remembered: a key is the few values the entries test


class _NoteEngine(KnowledgeEngine):
    """The engine the entries are compiled onto: each firing notes an entry and what it matched."""

    def __init__(self):
        super().__init__()
        trim_overheads(self)
        self.notes: List[Tuple[LaterEntry, List[Fact]]] = []

    def note(self, entry: LaterEntry, bound: dict) -> None:
        """An entry's rule fired: note it, with the facts it matched, in the order of their ids."""
        matched = sorted((f for f in bound.values() if isinstance(f, Fact)), key=lambda f: f["__factid__"])
        self.notes.append((entry, matched))


def _compiled(rulebase: RuleBase, entries: List[LaterEntry], matcher: str) -> type:
    """The engine class holding one experta Rule per entry, firing in the order written, matched
    by `matcher` (compiler.MATCHERS), as the rules' engines are."""
    kind_of = fact_kind(rulebase)  # as the rules' patterns are compiled
    members: Dict[str, object] = {"__matcher__": matcher_class(matcher)}
    rules = []
    for position, entry in enumerate(entries):

        def rhs(engine, entry=entry, **bound):
            engine.note(entry, bound)

        rhs.__name__ = entry.id
        pattern = compile_condition(entry.when, kind_of)
        rule = members["entry_" + entry.id.replace("-", "_")] = Rule(pattern, salience=len(entries) - position)(rhs)
        rules.append(rule)
    # what the compiled matcher reads of an engine class (as compiler.compile_rulebase gives it):
    # the Rules in order, and all their patterns are compiled from
    members["experta_rules"] = tuple(rules)
    members["matching_key"] = (
        "later evidence",
        rulebase.digest,
        tuple((e.id, conditions.identity(e.when)) for e in entries),
        tuple(sorted({t.name for e in entries for t in conditions.tests(e.when) if kind_of(t.name) is Given})),
    )
    return type("LaterEvidenceEngine", (_NoteEngine,), members)


class _Notes:
    """The entries that can speak to one diagnosis, on their own engine, with a memo of the
    notes by the values they test (the same values, the same notes)."""

    def __init__(self, rulebase: RuleBase, entries: List[LaterEntry], matcher: str):
        tested = {t.name for e in entries for t in conditions.tests(e.when)}
        self.given = [name for name in rulebase.schema.fields if name in tested]  # schema order: ids never vary
        self.derived = sorted(tested - set(rulebase.schema.fields))
        self.engine = _compiled(rulebase, entries, matcher)() if entries else None
        self.memo: Dict[tuple, list] = {}

    def notes(self, facts: dict, derived: Dict[str, list]) -> list:
        """The notes of the entries whose situation holds for these facts and derived facts; from
        the memo when the values the entries test (each with its type) were seen before."""
        if self.engine is None:
            return []
        # everything the engine is given, each value with its type: 70 and 70.0, or 1 and True, are
        # equal in Python but not the same fact to show in a note's `matched`
        key = (
            tuple((name, _typed(facts[name])) for name in self.given if name in facts),
            tuple((name, tuple(map(_typed, derived[name]))) for name in self.derived if name in derived),
        )
        notes = self.memo.get(key)
        if notes is None:
            if len(self.memo) >= MEMO_SIZE:
                self.memo.clear()
            notes = self.memo[key] = self._run(facts, derived)
        return notes

    def _run(self, facts: dict, derived: Dict[str, list]) -> list:
        engine = self.engine
        assert engine is not None
        engine.reset()
        engine.notes = []
        known = [new_fact(Given, name=name, value=facts[name]) for name in self.given if name in facts]
        known += [new_fact(Derived, name=name, value=v) for name in self.derived for v in derived.get(name, ())]
        if known:
            engine.declare(*known)
        engine.run()
        first: Dict[str, dict] = {}  # an entry whose `any` matched in two ways fired twice: noted once
        for entry, matched in engine.notes:
            first.setdefault(entry.id, _note(entry, matched))
        # what reports harm in this patient's situation first, then the rest as the file orders them
        return sorted(first.values(), key=lambda note: note["harm"] is None)


class LaterEvidenceAttacher:
    """The later evidence of a rule base, compiled once per diagnosis, attached to run after run."""

    def __init__(self, rulebase: RuleBase, matcher: str = DEFAULT_MATCHER):
        matcher_class(matcher)  # an unknown name is refused here, not at the first case
        self.rulebase, self.matcher = rulebase, matcher
        self.entries = rulebase.later.live()
        self.by_id = {e.id: e for e in self.entries}
        self.per_diagnosis: Dict[object, _Notes] = {}

    def attach(self, run: Run) -> None:
        """Put the entries that speak to this case on its Result: their notes (`later_evidence`),
        and the findings of those that report harm among its warnings."""
        result = run.result
        if not result.ok or not self.entries:
            return
        notes = self._for(run.case.facts.get("diagnosis")).notes(run.case.facts, run.derived)
        # each Result its own copies: the memo's notes are shared by every case in one situation
        result.later_evidence = [
            dict(n, speaks_to=list(n["speaks_to"]), matched=[dict(m) for m in n["matched"]]) for n in notes
        ]
        harm = [_harm_warning(self.by_id[n["id"]]) for n in notes if n["harm"]]
        # a Result attached again (attach is public) keeps one finding of each, not two
        review = [w for w in result.warnings if "later_evidence" not in w]
        result.warnings = patient_first(review + harm) if harm else review

    def warm(self, diagnosis) -> None:
        """Compile the engine of this diagnosis's entries now (a service does, so no call pays for it)."""
        self._for(diagnosis)

    def _for(self, diagnosis) -> _Notes:
        """The engine of the entries that can hold for this diagnosis, all else unknown: an engine
        of 24 entries costs per case what one of 5 does not (as the rules' engines per diagnosis)."""
        notes = self.per_diagnosis.get(diagnosis)
        if notes is None:
            entries = [e for e in self.entries if may_hold_for(e.when, diagnosis)]
            notes = self.per_diagnosis[diagnosis] = _Notes(self.rulebase, entries, self.matcher)
        return notes


def _typed(value):
    """A fact's value as a memo key: hashable, and told apart from an equal value of another type."""
    return (type(value).__name__, tuple(value) if isinstance(value, list) else value)


def _note(entry: LaterEntry, matched: List[Fact]) -> dict:
    """The note of an entry on a Result: the entry (LaterEntry.as_note) and the facts of the case
    it attached on (its trace)."""
    matched_facts = [{"fact": TRACE_KIND[type(f)], "name": f["name"], "value": plain(f["value"])} for f in matched]
    return dict(entry.as_note(), matched=matched_facts)


def _harm_warning(entry: LaterEntry) -> dict:
    """The finding of an entry that reports harm, as a warning about this patient: no rule of the
    review's gives it (`rule`: None); `later_evidence` names the entry and `citation` its source."""
    harm = entry.harm or {}
    return {
        "code": harm["code"],
        "severity": harm["severity"],
        "applies": "patient",
        "grade": None,
        "summary": harm["summary"],
        "message": harm["message"],
        "action": harm["action"],
        "rule": None,
        "later_evidence": entry.id,
        "citation": entry.cited,
        "link": entry.link,
    }


__all__ = ["LaterEvidenceAttacher"]
