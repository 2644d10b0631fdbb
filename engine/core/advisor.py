"""Evaluating cases: validated facts -> engine run -> Result (result.py).

`evaluate_case(mapping)` is the one-call API; `Advisor` keeps one compiled
engine and reuses it (experta's ``reset()``) for every case it evaluates.
"""

import itertools
from typing import Dict, List, Optional, Set, Tuple

from ..base.errors import CaseInvalid
from .analysis import live_rules, missing_fields, undecided_rules
from .attach import LaterEvidenceAttacher
from .cache.situations import DEFAULT_SIZE, Keyer, SituationCache
from .compiler import DEFAULT_MATCHER, TRACE_KIND, Derived, compile_rulebase, matcher_class
from .result import Result, Run, patient_first
from .rulebase import RuleBase
from .schema import Case
from .words import GENERAL_PRECAUTIONS, patient_grams, plain, precautions_line


class Advisor:
    """A rule base compiled once, evaluating case after case."""

    def __init__(
        self,
        rulebase: Optional[RuleBase] = None,
        per_disease: bool = True,
        cache: int = DEFAULT_SIZE,
        matcher: str = DEFAULT_MATCHER,
    ):
        """`per_disease`: one engine per diagnosis, each holding only the rules
        that can fire for it (same results, a fraction of the cost per case);
        False: one engine with every rule. `cache`: how many clinical
        situations to remember (core/cache/situations.py; the same results, a
        fraction of the cost for a case like one seen before); 0: none.
        `matcher`: how the engines (the rules' and the later evidence's) match
        facts to rules, "compiled" (core/matcher.py) or "rete" (experta's own,
        the reference): the same results."""
        matcher_class(matcher)  # an unknown name is refused here, not at the first case
        self.rulebase = rulebase or RuleBase.load()
        self.per_disease = per_disease
        self.matcher = matcher
        self.engines: dict = {}  # diagnosis (None: every rule) -> a running engine
        self.keyers: dict = {}  # the same keys -> the Keyer of that engine's situations
        self.situations = SituationCache(cache) if cache else None
        self.order = list(self.rulebase.schema.fields)
        self.stamp = self.rulebase.stamp
        self.attacher = LaterEvidenceAttacher(self.rulebase, matcher)  # the later evidence, after the rules

    def engine_for(self, facts: dict):
        """The engine that runs a case: its diagnosis's, built on first use.

        A diagnosis's engine holds only the rules that can fire for it
        (analysis.live_rules): experta's cost per case grows with every rule
        in the network, even one that cannot fire, and the rules left out
        provably never fire for that diagnosis."""
        key = self._engine_key(facts)
        engine = self.engines.get(key)
        if engine is None:
            rules = None if key is None else live_rules(self.rulebase, key)
            engine = self.engines[key] = compile_rulebase(self.rulebase, rules, self.matcher)()
        return engine

    def warm(self) -> None:
        """Build every diagnosis's engine now (a service does, so that no call pays for one)."""
        for diagnosis in self.rulebase.schema.fields["diagnosis"].values:
            self.engine_for({"diagnosis": diagnosis})
            self.attacher.warm(diagnosis)

    def _engine_key(self, facts: dict):
        return facts.get("diagnosis") if self.per_disease else None

    def situation(self, facts: dict) -> tuple:
        """The clinical situation of a case: all that decides what its rules conclude."""
        engine, key = self.engine_for(facts), self._engine_key(facts)
        keyer = self.keyers.get(key)
        if keyer is None:
            keyer = self.keyers[key] = Keyer(engine.rules, self.rulebase)
        return (key, keyer.key(facts)), engine

    def validate(self, data, source=None, line=None, default_id=None) -> Case:
        """Check a case mapping against the schema (raises CaseInvalid)."""
        return self.rulebase.schema.validate(data, source, line, default_id)

    def evaluate_mapping(self, data, source=None, line=None, default_id=None) -> Result:
        """Validate and evaluate one case mapping; a bad case gives an error Result."""
        try:
            case = self.validate(data, source, line, default_id)
        except CaseInvalid as exc:  # named as written: id 00123 stays '00123'
            return self.failure(self.rulebase.schema.id_of(data, default_id), exc.errors)
        return self.evaluate(case)

    def failure(self, case_id: str, errors) -> Result:
        """The error Result of a case that could not be read or validated, tied to these rules."""
        result = Result.failure(case_id, errors)
        result.rules = dict(self.stamp)
        return result

    def evaluate(self, case: Case) -> Result:
        """Run the rules over a validated case."""
        return self.run(case).result

    def run(self, case: Case) -> "Run":
        """One run of the rules over a validated case, with what the run knows
        beyond its Result: the derived facts, the rules fired and the rules
        still undecided (what `missing`, the interview and `why-not` read).

        A case in a situation seen before is answered from the cache. The later evidence that
        speaks to the case is attached after (core/attach.py): it reads what the rules
        concluded and never changes it."""
        run = self._run_or_replay(case)
        self.attacher.attach(run)  # after the rules have decided, and after the cache: the case's own
        run.result.source_notes.normalised = [dict(n) for n in case.normalised]  # the case's own, never a cached case's
        run.result.rules = dict(self.stamp)
        return run

    def _run_or_replay(self, case: Case) -> "Run":
        if self.situations is None:
            return self._run(case, self.engine_for(case.facts))
        key, engine = self.situation(case.facts)
        known = self.situations.get(key)
        if known is not None:
            return known.replay(case)
        run = self._run(case, engine)
        self.situations.store(key, run, self.keyers[key[0]])
        return run

    def _run(self, case: Case, engine) -> "Run":
        firings = engine.firings_for(case.facts, self.order)
        rule_of_fact = {fact_id: firings[i].rule.id for fact_id, i in engine.asserted_by.items()}
        firings = _canonical(firings)
        result = Result(id=case.id, source=case.source, line=case.line)
        derived: Dict[str, list] = {}
        stance_layers: Set[str] = set()
        fired: List[str] = []
        for firing in firings:
            if firing.rule.id not in fired:
                fired.append(firing.rule.id)
            for name, value in firing.rule.derives.items():
                derived.setdefault(name, [])
                if value not in derived[name]:
                    derived[name].append(value)
            if "recommend" in firing.rule.then:
                stance_layers.add(firing.rule.layer)
        result.trace = [_trace_entry(f, rule_of_fact) for f in firings]
        _conclude(result, firings, case.facts, self.rulebase.ivig_given)
        waiting: Set[str] = set()
        undecided = undecided_rules(
            self.rulebase, case.facts, derived, set(fired), stance_layers, engine.rules, waiting=waiting
        )
        also = ["weight_kg"] if result.dose else []  # grams need the weight
        result.missing = missing_fields(self.rulebase, case.facts, undecided, also, derived)
        return Run(case, result, derived, fired, undecided, frozenset(waiting))


def _canonical(firings):
    """The firings with the activations of one rule in a fixed order.

    A rule whose `any` matches in two ways fires once per way, at one
    salience; experta's Rete orders such activations by its network, which
    differs between an engine holding one diagnosis's rules and one holding
    all, and from run to run (it follows Python's hashes); the compiled
    matcher by the order its branches are written. Put in the order of what
    they matched, the trace is the same in every engine, with either matcher,
    in every run."""
    out = []
    for _, run in itertools.groupby(firings, key=lambda f: f.rule.id):
        group = list(run)
        if len(group) > 1:  # one firing is in its order already
            group.sort(key=lambda f: [(type(x).__name__, x["name"], repr(x["value"])) for x in f.matched])
        out.extend(group)
    return out


def _fact_entry(fact, asserted_by) -> dict:
    entry = {"fact": TRACE_KIND[type(fact)], "name": fact["name"], "value": plain(fact["value"])}
    if isinstance(fact, Derived):
        entry["from"] = asserted_by.get(fact["__factid__"])
    return entry


def _trace_entry(firing, asserted_by) -> dict:
    return {
        "rule": firing.rule.id,
        "layer": firing.rule.layer,
        "matched": [_fact_entry(f, asserted_by) for f in firing.matched],
        "asserted": firing.asserted,
    }


def _conclude(result: Result, firings, facts: dict, ivig_given: frozenset):
    """Read the stance, dose and warnings off the firings, in firing order."""
    stances, doses = [], []
    warnings: Dict[Tuple[str, Optional[str]], dict] = {}  # (code, rule id; None: a conflict) -> the warning
    for firing in firings:
        rule, then = firing.rule, firing.rule.then
        if "recommend" in then:
            stances.append((rule, then["recommend"]))
        if "dose" in then:
            doses.append((rule, then["dose"]))
        for w in rule.warnings:
            # one entry per (code, rule): a rule whose OR matched twice warns once
            warnings.setdefault((w["code"], rule.id), dict(w, rule=rule.id))
    if stances:
        rule, rec = stances[0]
        result.ivig = {"stance": rec["stance"], "summary": rec["summary"], "rule": rule.id}
        others = sorted({r.id for r, x in stances if x["stance"] != rec["stance"]})
        if others:
            warnings[("rule-conflict", None)] = _conflict(
                "rule-conflict",
                rule,
                "The rules disagree on the stance",
                f"Rules disagree on the stance: {rule.id} says {rec['stance']}, {', '.join(others)} say otherwise.",
            )
    if doses and result.ivig and result.ivig["stance"] in ivig_given:
        rule, dose = doses[0]
        weight = facts.get("weight_kg")
        grams = patient_grams(dose, weight)
        result.dose = {
            "per": dose["per"],
            "total_g_per_kg": dose["total_g_per_kg"],
            "g_per_kg_per_day": dose["g_per_kg_per_day"],
            "days": dose["days"],
            "total_g": grams["total_g"],
            "infusion_g_per_kg": dose["infusion_g_per_kg"],
            "infusion_g": grams["infusion_g"],
            "interval": dose["interval"],
            "repeat": dose["repeat"],
            "note": dose["note"],
            "rule": rule.id,
        }
        if any(d != dose for _, d in doses[1:]):
            warnings[("dose-conflict", None)] = _conflict(
                "dose-conflict",
                rule,
                "The rules give different doses",
                "Rules give different doses: " + ", ".join(r.id for r, _ in doses) + ".",
            )
    result.warnings = _grouped(warnings.values())


def _conflict(code: str, rule, what: str, message: str) -> dict:
    """A critical warning that the rule base contradicts itself for this case (`what` happened)."""
    return {
        "code": code,
        "severity": "critical",
        "applies": "patient",
        "grade": None,
        "summary": f"{what}: the rule base needs review",
        "rule": rule.id,
        "action": None,
        "message": f"{message} The rule base needs review.",
    }


GENERAL = "general-precautions"  # the code of the one entry that holds what applies to every infusion


def _grouped(warnings) -> List[dict]:
    """The warnings as shown: those about this patient, most severe first; then what applies to
    every infusion as one info entry, the general precautions, listing each with its grade. So
    max_severity speaks of this patient only, and no output shouts what every patient is told."""
    own = patient_first(w for w in warnings if w["applies"] == "patient")
    every = [w for w in warnings if w["applies"] == "every-infusion"]
    if every:
        items = [{k: w[k] for k in ("code", "grade", "summary", "message", "action", "rule")} for w in every]
        own.append(
            {
                "code": GENERAL,
                "severity": "info",
                "applies": "every-infusion",
                "grade": None,
                "summary": GENERAL_PRECAUTIONS,
                "message": precautions_line(items),
                "action": None,
                "rule": None,
                "items": items,
            }
        )
    return own


_default: Optional[Advisor] = None


def default_advisor() -> Advisor:
    """The Advisor over the packaged rule base, built on first use."""
    global _default
    if _default is None:
        _default = Advisor()
    return _default


def evaluate_case(mapping: dict, rulebase: Optional[RuleBase] = None) -> Result:
    """Evaluate one case given as a mapping of fields (see facts/case.yaml).

    >>> evaluate_case({"diagnosis": "mmn", "weight_kg": 70}).ivig["stance"]
    'first-line'
    """
    advisor = Advisor(rulebase) if rulebase is not None else default_advisor()
    return advisor.evaluate_mapping(mapping)


# Result and Run live in result.py; named here too, for the modules that import them from
# the advisor and for the path before the engine had rooms (`ivig_advisor.engine.evaluate`)
__all__ = ["Advisor", "Result", "Run", "evaluate_case", "default_advisor"]
