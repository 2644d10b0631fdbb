"""A rule as read and checked (`RuleSpec`), a layer of the manifest, and the values a checked
rule holds: the words of the rule language that the engine, the audit and the service read.
The keys a rule file may use, and the checking, are the loader's (loader.py)."""

from dataclasses import dataclass, field
from typing import Dict, List, Tuple

from ..base.yamlsrc import Located
from . import conditions

SEVERITIES = ("critical", "warning", "info")
BASES = ("review", "assumption")
STATUSES = ("draft", "retired")  # written in a rule; approval is a sign-off in the review log (signoff.py)
STANCE = "stance"  # the derived fact a `recommend` action sets
# A regimen is a course (`per: course`: total_g_per_kg, split as g_per_kg_per_day x days where the
# review splits it) or a dose per infusion at an interval (`per: infusion`: infusion_g_per_kg every
# `interval`), never one dressed as the other: a weekly infusion read as a one-day course gives a
# program the wrong grams.
DOSE_KEYS = ("per", "total_g_per_kg", "g_per_kg_per_day", "days", "infusion_g_per_kg", "interval", "repeat", "note")
DOSE_PER = ("course", "infusion")
# Whom a warning is about: this patient, because of something about them (a risk factor, a planned
# co-therapy), or every infusion alike. Only the first may be critical or a warning: what holds for
# every infusion is said once, quietly, among the general precautions.
APPLIES = ("patient", "every-infusion")
# How serious the adverse event is in the review's own grading (TR L159-163), kept apart from how
# loudly it is shown; `not-graded`: an adverse event the review names without a grade (thrombosis).
GRADES = ("mild", "moderate", "severe", "not-graded")


@dataclass
class Layer:
    """A layer of the manifest: its rules fire after those of the layers before it (`index`);
    only a layer that `sets_stance` may hold a rule that recommends."""

    name: str
    sets_stance: bool
    help: str
    index: int


@dataclass
class RuleSpec:
    """One rule as written, checked, with where it was written."""

    id: str
    title: str
    layer: str
    when: conditions.Condition
    then: dict
    basis: str
    file: str
    line: int
    topic: str
    position: int = 0
    salience: int = 0
    rationale: str = ""
    claims: Tuple[str, ...] = ()
    assumptions: Tuple[str, ...] = ()
    source: dict = field(default_factory=dict)
    evidence: Tuple[str, ...] = ()
    flags: Tuple[str, ...] = ()
    status: str = "draft"
    explanation: str = ""
    changes: Tuple[str, ...] = ()  # what changed in the rule, when and why (newest last)
    # False: the rule takes note of what a case says and never makes a question of its own (its
    # fields are not asked for, nor listed as missing, on its account): "IVIG is not planned" is
    # worth saying when a case says it, not worth asking every patient.
    ask: bool = True
    raw: Located = field(default_factory=Located)  # the rule as written, with the line of each key

    @property
    def derives(self) -> Dict[str, object]:
        """The derived facts this rule asserts, name -> value (stance included)."""
        out = dict(self.then.get("derive") or {})
        if "recommend" in self.then:
            out[STANCE] = self.then["recommend"]["stance"]
        return out

    @property
    def warnings(self) -> List[dict]:
        return list(self.then.get("warn") or [])
