"""Many cases at once: files and streams in, one Result per case out, in order."""

from typing import Iterable, Iterator, Optional

from .caseio import CaseRecord, read_cases
from .evaluate import Advisor, Result, default_advisor


def evaluate_record(record: CaseRecord, advisor: Advisor) -> Result:
    """The Result of one record read from a file: an error result if it could not be read."""
    if record.error is not None:
        return Result.failure(record.default_id, [record.error])
    return advisor.evaluate_mapping(record.data, record.source, record.line, record.default_id)


def evaluate_files(paths: Iterable[str], advisor: Optional[Advisor] = None, stdin=None) -> Iterator[Result]:
    """Evaluate every case in files, directories or '-' (stdin), lazily, in input order."""
    advisor = advisor or default_advisor()
    for record in read_cases(paths, stdin=stdin):
        yield evaluate_record(record, advisor)


def evaluate_many(cases: Iterable[dict], advisor: Optional[Advisor] = None) -> Iterator[Result]:
    """Evaluate case mappings lazily, in order; case N without an id is called 'case:N'."""
    advisor = advisor or default_advisor()
    for n, case in enumerate(cases, start=1):
        yield advisor.evaluate_mapping(case, default_id=f"case:{n}")
