"""One case as read (CaseRecord): its data and where it came from, or the error that kept it from being read.

Every reader of io/ gives its cases as records, so a broken case is a record like the others
and never hides the cases around it. A record's source is the path of its file, or STDIN_NAME
for standard input (which the paths given name as STDIN)."""

from dataclasses import dataclass
from typing import Optional

from ..base.errors import SourceError
from ..base.yamlsrc import Located

STDIN = "-"
STDIN_NAME = "<stdin>"


@dataclass
class CaseRecord:
    """One case as read: its data, or the error that kept it from being read.

    `scenario` holds the scenario keys (name, description, expect) read
    beside the case, when there were any; `data` is then the case alone."""

    data: object
    source: str
    line: Optional[int]
    default_id: str
    error: Optional[SourceError] = None
    scenario: Optional[Located] = None
    provenance: Optional[object] = None  # a FHIR case's (fhir.Provenance): where its fields came from
    pending: Optional[object] = None  # a FHIR case not yet read from its resources (bundles.Pending)
    others: tuple = ()  # errors after `error`, when a record has several
    id: Optional[str] = None  # an id the record has whatever its data (a FHIR Patient's)

    @classmethod
    def of_fhir(cls, case, default_id: str) -> "CaseRecord":
        """A built FhirCase (io/fhir/bundles.py) as a record."""
        return cls(
            case.data,
            case.source,
            case.line,
            default_id,
            case.errors[0] if case.errors else None,
            provenance=case.provenance,
            others=tuple(case.errors[1:]),
            id=case.id,
        )

    def resolved(self) -> "CaseRecord":
        """The record with a pending FHIR case read from its resources (done where it is
        evaluated: in a worker, for a batch); itself when nothing is pending."""
        if self.pending is None:
            return self
        return CaseRecord.of_fhir(self.pending.build(), self.default_id)

    def case_id(self, schema) -> str:
        """The id of the case as read (schema.id_of: its own `id` as written, else
        `default_id`), valid or not."""
        return self.id or schema.id_of(self.data, self.default_id)
