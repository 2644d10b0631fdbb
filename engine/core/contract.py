"""The result contract: what a result of this program looks like on disk, which the writers
(output/) follow and the readers (io/) recognise, so that a run over a folder leaves an earlier
run's results out rather than reading them as cases."""

import json
import re

# the dose keys of a result, in the order its CSV row and `audit diff` show them
RESULT_DOSE_KEYS = (
    "per",
    "total_g_per_kg",
    "g_per_kg_per_day",
    "days",
    "total_g",
    "infusion_g_per_kg",
    "infusion_g",
    "interval",
    "repeat",
)
CSV_COLUMNS = (
    "id",
    "status",
    "stance",
    "max_severity",
    "critical",
    "rule",
    *RESULT_DOSE_KEYS,
    "warnings",
    "missing",
    "error",
    "source",
    "line",
    "normalised",
    "rules_version",
    "rules_hash",
    "unmapped",
    # last, added after the others: a reader of columns by position finds them where they were
    "later_evidence",  # the ids of the later-evidence entries shown with the case ('Since 2004')
)

# The CSV headers of earlier releases: their results files are still results, left out of a walk
# over their folder and replaceable by a run, never read as cases.
EARLIER_CSV_HEADERS = (tuple(c for c in CSV_COLUMNS if c != "later_evidence"),)  # before issue 28
CSV_HEADERS = frozenset(",".join(columns) + "\n" for columns in (CSV_COLUMNS, *EARLIER_CSV_HEADERS))


def is_results_file(path) -> bool:
    """Whether a file is recognisably results this program wrote (JSON, JSON Lines or CSV), and
    so may be replaced by a run over the folder it lies in: its first result carries the keys of
    the result contract and a rules hash, or its first line is the CSV header (this release's
    or an earlier one's). Text is not
    recognisable, and neither is anything else: a case file must never be taken for results."""
    try:
        with open(path, encoding="utf-8") as file:
            first = _line_if_results(file)
            second = _line_if_results(file) if first == "[\n" else ""
    except (OSError, UnicodeDecodeError):
        return False
    if first in CSV_HEADERS:
        return True
    if first == "[\n":  # a JSON array: one result a line, or none
        return second == "]\n" or _is_result_line(second.rstrip(",\n"))
    return _is_result_line(first.rstrip("\n"))


RESULT_LINE_LIMIT = 4_000_000  # characters read of a line when recognising results (one result a line)
RESULT_HEAD = 256  # characters of a line that tell whether it can be results: the CSV header fits
_RESULT_START = re.compile(r'\s*\{\s*"id"\s*:')  # a result's first key is its id


def _line_if_results(file) -> str:
    """The next line, read whole (up to RESULT_LINE_LIMIT) only while its head can begin results:
    a walk meets this for every JSON and CSV case file, and a FHIR Bundle on one line is megabytes
    that need not be read, nor parsed, to tell it is no result."""
    head = file.readline(RESULT_HEAD)
    if head.endswith("\n") or not _RESULT_START.match(head):
        return head
    return head + file.readline(RESULT_LINE_LIMIT - len(head))


def _is_result_line(line: str) -> bool:
    if not _RESULT_START.match(line):
        return False
    try:
        item = json.loads(line)
    except ValueError:
        return False
    return (
        isinstance(item, dict)
        and list(item)[:2] == ["id", "status"]
        and item["status"] in ("ok", "error")
        and isinstance(item.get("rules"), dict)
        and str(item["rules"].get("hash", "")).startswith("sha256:")
    )
