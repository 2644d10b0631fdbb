"""What evaluating a case gives: its `Result` (the result contract) and the `Run` behind it.

A Result says which case it answers (id, source, line), what the rules concluded (stance,
dose, warnings, trace, missing), how the case's values were read from its source
(`SourceNotes`) and which rules it ran on. A Run adds what only a program asks of one run:
the facts derived, the rules fired and those still undecided.
"""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from ..base.errors import SourceError
from .rulebase import SEVERITIES, RuleSpec
from .schema import Case


@dataclass
class SourceNotes:
    """How a case's values were read from its source, beside what the rules concluded from them.

    `normalised`: the values read from another spelling than the schema's (any case:
    schema.Case.normalised, and a FHIR record's codes); `origins` and `unmapped` only for a
    case read from FHIR (None otherwise): field -> the resources that set it, and what in the
    record the mapping does not read."""

    normalised: List[dict] = field(default_factory=list)
    origins: Optional[Dict[str, List[str]]] = None
    unmapped: Optional[List[dict]] = None

    def to_dict(self) -> Dict[str, Any]:
        """Their keys of the result contract: `normalised` only when some value was read from
        another spelling (so the result of a case written in the values themselves is as it
        was), `origins` and `unmapped` only for a case read from FHIR."""
        out: Dict[str, Any] = {}
        if self.normalised:
            out["normalised"] = self.normalised
        if self.origins is not None:
            out["origins"], out["unmapped"] = self.origins, self.unmapped
        return out


@dataclass
class Result:
    """The answer for one case, in the shape of the result contract."""

    id: str
    status: str = "ok"
    error: Optional[Dict[str, Any]] = None
    ivig: Optional[dict] = None
    dose: Optional[dict] = None
    warnings: List[dict] = field(default_factory=list)
    # the later evidence that speaks to this case (core/attach.py): beside the review's stance, never in it
    later_evidence: List[dict] = field(default_factory=list)
    trace: List[dict] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)
    source: Optional[str] = None
    line: Optional[int] = None
    rules: Optional[dict] = None  # the rules it ran on: name, version, content hash (RuleBase.stamp)
    source_notes: SourceNotes = field(default_factory=SourceNotes)

    # The public API's names for the source notes (a Result had them as its own fields).
    @property
    def normalised(self) -> List[dict]:
        return self.source_notes.normalised

    @normalised.setter
    def normalised(self, value: List[dict]) -> None:
        self.source_notes.normalised = value

    @property
    def origins(self) -> Optional[Dict[str, List[str]]]:
        return self.source_notes.origins

    @origins.setter
    def origins(self, value: Optional[Dict[str, List[str]]]) -> None:
        self.source_notes.origins = value

    @property
    def unmapped(self) -> Optional[List[dict]]:
        return self.source_notes.unmapped

    @unmapped.setter
    def unmapped(self, value: Optional[List[dict]]) -> None:
        self.source_notes.unmapped = value

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def max_severity(self) -> Optional[str]:
        """The highest severity among the warnings (critical, warning, info), or None.

        Carried beside the stance so that a consumer who filters on the stance
        alone (a CSV column, a JSON query) still sees a critical warning.
        """
        return min((w["severity"] for w in self.warnings), key=SEVERITIES.index, default=None)

    @property
    def critical(self) -> List[str]:
        """The codes of the critical warnings, in order."""
        return [w["code"] for w in self.warnings if w["severity"] == "critical"]

    def to_dict(self) -> Dict[str, Any]:
        """The JSON form: the result contract's keys, in its order; the source notes'
        (SourceNotes.to_dict) after `missing`, when there are any."""
        out: Dict[str, Any] = {
            "id": self.id,
            "status": self.status,
            "error": self.error,
            "ivig": self.ivig,
            "max_severity": self.max_severity,
            "dose": self.dose,
            "warnings": self.warnings,
            "later_evidence": self.later_evidence,
            "trace": self.trace,
            "missing": self.missing,
        }
        out.update(self.source_notes.to_dict())
        out.update(source=self.source, line=self.line, rules=self.rules)
        return out

    @classmethod
    def failure(cls, case_id: str, errors: List[SourceError]) -> "Result":
        """A result for a case that could not be evaluated."""
        first = errors[0]
        error: Dict[str, Any] = {
            "message": first.message,
            "field": first.field,
            "source": first.source,
            "line": first.line,
        }
        if len(errors) > 1:
            error["others"] = [{"message": e.message, "field": e.field, "line": e.line} for e in errors[1:]]
        return cls(id=case_id, status="error", error=error, source=first.source, line=first.line)


def patient_first(warnings) -> List[dict]:
    """The warnings in the order every output shows them: those about this patient, most severe
    first (a stable sort: at one severity, as given), then what applies to every infusion."""
    own = sorted((w for w in warnings if w["applies"] == "patient"), key=lambda w: SEVERITIES.index(w["severity"]))
    return own + [w for w in warnings if w["applies"] != "patient"]


@dataclass
class Run:
    """One run of the rules over a case: its Result, and what the run derived and decided."""

    case: Case
    result: Result
    derived: Dict[str, list]  # derived fact -> the values asserted, in firing order (the stance too)
    fired: List[str]  # the ids of the rules that fired, in firing order
    undecided: List[RuleSpec]  # rules that did not fire but might, once a missing field is known
    waiting: frozenset = frozenset()  # derived facts a rule not yet false may still assert (read as unknown)


__all__ = ["Result", "Run", "SourceNotes", "patient_first"]
