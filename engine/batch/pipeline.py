"""Many cases at once: files, streams or mappings in, one Result per case out, in order, and
the results written (files -> records -> results -> writer).

With ``workers`` > 1 the cases go to worker processes (pool.Scheduler); results come back in
input order, identical for any number of workers.
"""

import functools
import itertools
import os
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional

from ..base.atomic import refuse_inputs, same_file
from ..base.errors import OutputRefused
from ..core.advisor import Advisor, default_advisor
from ..core.result import Result
from ..io.cases import read_cases
from ..io.meter import ReadMeter, input_size
from ..io.record import STDIN, CaseRecord
from ..io.sniffing import CASE_SUFFIXES
from ..io.walk import RESULTS_SUFFIXES, walk
from .pool import Scheduler

POOL_MIN_CASES = 512  # below this, starting processes costs more than it saves (automatic mode)
WORKERS_PER_CORE = 2  # evaluation is CPU-bound: more processes than this only cost memory


def default_workers() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def max_workers() -> int:
    """The most worker processes a batch starts, whatever is asked: a few per core."""
    return default_workers() * WORKERS_PER_CORE


def evaluate_record(record: CaseRecord, advisor: Advisor) -> Result:
    """The Result of one record read from a file: an error result if it could not be read."""
    record = record.resolved()  # a pending FHIR case is read from its resources here (in a worker)
    if record.error is not None:
        result = advisor.failure(record.id or record.default_id, [record.error, *record.others])
    else:
        result = advisor.evaluate_mapping(record.data, record.source, record.line, record.default_id)
    if record.provenance is not None:
        record.provenance.apply(result)
    return result


def evaluate_records(
    records: Iterable[CaseRecord],
    advisor: Optional[Advisor] = None,
    workers: Optional[int] = 1,
    finish: Optional[Callable] = None,
) -> Iterator:
    """Evaluate records lazily, in order.

    `workers`: 1 evaluates here; N > 1 uses a pool of N processes (at most
    `max_workers()`); None picks the number of cores, and a pool only when
    the batch is long enough to pay for starting one. `finish(result, rulebase)`, if given, runs where
    the case was evaluated and its value is yielded instead of the Result
    (the CLI renders in the workers, so the reading process only writes).
    """
    advisor = advisor or default_advisor()
    records = iter(records)
    if workers is None:
        head = list(itertools.islice(records, POOL_MIN_CASES))
        records = itertools.chain(head, records)
        workers = default_workers() if len(head) == POOL_MIN_CASES else 1
    workers = min(workers, max_workers())
    if workers <= 1:
        return (_evaluate_and_finish(record, advisor, finish) for record in records)
    return Scheduler(advisor, workers, functools.partial(_evaluate_and_finish, finish=finish)).results(records)


def _evaluate_and_finish(record: CaseRecord, advisor: Advisor, finish: Optional[Callable] = None):
    """What a case gives, here or in a worker: its Result, or `finish(result, rulebase)` if given."""
    result = evaluate_record(record, advisor)
    return result if finish is None else finish(result, advisor.rulebase)


def evaluate_files(
    paths: Iterable[str],
    advisor: Optional[Advisor] = None,
    stdin=None,
    workers: Optional[int] = 1,
    finish: Optional[Callable] = None,
    exclude: Optional[str] = None,
    as_of=None,
    meter: Optional[ReadMeter] = None,
    notes: Optional[Callable[[str], None]] = None,
) -> Iterator:
    """Evaluate every case in files, directories or '-' (stdin), lazily, in input order.

    `exclude` names a file whose cases are left out: the output file, when it
    lies in a folder being read, so that a run never reads its own results.
    `as_of`: the date a FHIR Patient's age is computed at (default: today).
    `meter`: follows the bytes read (caseio.ReadMeter). `notes`: told what the
    walk of a folder leaves out (caseio.read_cases).
    """
    records = read_cases(paths, stdin=stdin, exclude=exclude, as_of=as_of, defer_fhir=True, meter=meter, notes=notes)
    return evaluate_records(records, advisor, workers, finish)


def write_results(
    paths: Iterable[str],
    advisor: Advisor,
    stream,
    formatter,
    stdin=None,
    workers: Optional[int] = 1,
    exclude: Optional[str] = None,
    progress=None,
    as_of=None,
    notes: Optional[Callable[[str], None]] = None,
):
    """Evaluate every case of `paths` and write each result to `stream`, in
    input order, in `formatter`'s format; return the batch's Summary (which names
    `exclude`, the output file, as where the results went).

    Workers render what they evaluate (`formatter` travels to them), so this
    process only writes. On any exit the pool is stopped before the stream
    is given back: an output file being written atomically is then removed
    with no worker still running. `progress`, if given, sees every result, and
    how far through the input's bytes the reading is (progress.Progress.measure);
    `notes`, what the walk of a folder leaves out.
    """
    from contextlib import closing

    from ..output.render import ResultWriter, Summary

    summary, writer = Summary(exclude), ResultWriter(stream, formatter.fmt)
    meter = None
    if progress:
        meter = ReadMeter()
        progress.measure(input_size(paths, stdin), meter.bytes)
    results = evaluate_files(
        paths,
        advisor,
        stdin=stdin,
        workers=workers,
        finish=formatter,
        exclude=exclude,
        as_of=as_of,
        meter=meter,
        notes=notes,
    )
    with closing(results):
        try:
            for item in results:
                summary.add(item)
                writer.write(item)
                if progress:
                    progress.add(item)
        finally:
            if progress:
                progress.close()
    writer.close()
    return summary


def refuse_output_over_inputs(output: str, paths: Iterable[str], stdin=None, fmt: Optional[str] = None) -> None:
    """OutputRefused if writing the results to `output` would replace an input: a file or standard
    input named (atomic.refuse_inputs), or a case file that reading a folder finds (through links
    too), unless it is recognisably this program's own earlier results (which the reading then
    leaves out). Also if the results, in format `fmt`, would be read back as a case by the next
    run over a folder they lie in: text named as a case file (sub/new.yaml)."""
    from ..core.contract import is_results_file

    refuse_inputs(output, paths, stdin)
    existing, folder = os.path.isfile(output), os.path.realpath(os.path.dirname(os.path.abspath(output)))
    for path in (path for path in paths if path != STDIN and os.path.isdir(path)):
        entries = walk(Path(path))
        read = (w.path for w in entries if w.kind in ("file", "error"))
        if existing and any(same_file(f, output) for f in read) and not is_results_file(output):
            raise OutputRefused(
                f"{output} is a case file in the input folder {path}: it would be replaced by "
                "the results; write them to another file"
            )
        if (
            fmt is not None
            and not _recognisable(output, fmt)
            and any(w.kind == "folder" and os.path.realpath(w.path) == folder for w in entries)
        ):
            raise OutputRefused(
                f"{output} is in the input folder {path}, and named as a case file: the next run "
                f"over {path} would read it as a case; name it otherwise (.txt), or write it "
                "elsewhere"
            )


def _recognisable(output: str, fmt: str) -> bool:
    """Whether results in `fmt` written to `output` are left out by a later walk of the folder
    they lie in (caseio.walk): a name no case file has, or JSON, JSON Lines or CSV named so."""
    from ..output.render import EXTENSION_FORMATS

    suffix = os.path.splitext(output)[1].lower()
    return suffix not in CASE_SUFFIXES or (suffix in RESULTS_SUFFIXES and EXTENSION_FORMATS.get(suffix) == fmt)


def fit_workers(asked: Optional[int]):
    """The number of workers to use for `asked`, and a note when it was more than this machine can use."""
    if asked is None or asked <= max_workers():
        return asked, None
    return max_workers(), (
        f"ivig: --workers {asked} is more than this machine can use; using {max_workers()} "
        f"({WORKERS_PER_CORE} per core)"
    )


def evaluate_many(
    cases: Iterable[dict], advisor: Optional[Advisor] = None, workers: Optional[int] = 1
) -> Iterator[Result]:
    """Evaluate case mappings lazily, in order; case N without an id is called 'case:N'.

    >>> [r.ivig["stance"] for r in evaluate_many([{"diagnosis": "mmn"}, {"diagnosis": "als"}])]
    ['first-line', 'not-effective']
    """
    records = (CaseRecord(case, None, None, f"case:{n}") for n, case in enumerate(cases, start=1))
    return evaluate_records(records, advisor, workers)
