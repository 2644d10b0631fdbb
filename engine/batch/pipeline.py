"""Many cases at once: files, streams or mappings in, one Result per case out, in order.

With ``workers`` > 1 the cases go to worker processes, each of which loads
and compiles the rule base once and keeps its own cache of clinical
situations; the cases of one diagnosis go to one worker while the load
allows (`_Router`), so that each learns only its own diagnoses' situations,
and what one worker learns travels to the others with their next chunk, so
that a situation is run once per batch. Cases travel in chunks, and only a
few chunks per worker are in flight at a time, so memory stays flat whatever
the size of the input; results come back in input order, identical for any
number of workers.
"""

import itertools
import os
import signal
import threading
import time
from collections import deque
from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Callable, Iterable, Iterator, List, Optional, Tuple

from ..base.atomic import refuse_inputs, same_file
from ..base.errors import OutputRefused, Stopped, WorkerDied
from ..core.advisor import Advisor, Result, default_advisor
from ..io.cases import read_cases
from ..io.meter import ReadMeter, input_size
from ..io.record import STDIN, CaseRecord
from ..io.sniffing import CASE_SUFFIXES
from ..io.walk import RESULTS_SUFFIXES, walk

CHUNK = 64  # cases per task sent to a worker
IN_FLIGHT = 4  # tasks per worker queued at once: enough to keep it busy, bounded for memory
POOL_MIN_CASES = 512  # below this, starting processes costs more than it saves (automatic mode)
WORKERS_PER_CORE = 2  # evaluation is CPU-bound: more processes than this only cost memory
POLL = 0.5  # seconds between checks that the workers are alive, while waiting on them
LEARNT_WAITING = 8 * 1024 * 1024  # bytes of situations kept per worker until its next chunk; then the oldest go


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
        return (_finished(evaluate_record(record, advisor), advisor, finish) for record in records)
    return _pooled(records, advisor, workers, finish)


def _finished(result: Result, advisor: Advisor, finish: Optional[Callable]):
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
    how far through the input's bytes the reading is (render.Progress.measure);
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


# -- the pool -----------------------------------------------------------------

_worker_advisor: Optional[Advisor] = None
_worker_finish: Optional[Callable] = None


def _start_worker(directory: Optional[str], per_disease: bool, cache: int, finish: Optional[Callable], bound: bool):
    global _worker_advisor, _worker_finish
    _own_signals(bound)
    from ..core.rulebase import RuleBase

    rulebase = RuleBase.load(Path(directory) if directory else None)
    _worker_advisor, _worker_finish = Advisor(rulebase, per_disease=per_disease, cache=cache), finish
    if _worker_advisor.situations is not None:
        _worker_advisor.situations.share_learning()


def _evaluate_chunk(records: List[CaseRecord], learnt_elsewhere: Iterable[bytes] = ()) -> Tuple[list, bytes]:
    """The finished results of a chunk, and the situations this worker learnt on it.

    `learnt_elsewhere`: what the other workers learnt since this one's last chunk, kept first."""
    cache = _worker_advisor.situations
    if cache is not None:
        for learnt in learnt_elsewhere:
            cache.adopt(learnt, _worker_advisor.rulebase.by_id)
    results = [
        _finished(evaluate_record(record, _worker_advisor), _worker_advisor, _worker_finish) for record in records
    ]
    return results, cache.take_learnt() if cache is not None else b""


def _own_signals(bound: bool):
    """A worker leaves stopping to the process that started it.

    Ctrl-C reaches every process of the terminal's group: the parent stops the
    pool, so a worker ignores SIGINT and finishes its chunk rather than dying
    with a traceback. SIGTERM and SIGHUP end a worker at once (the parent's
    handlers, inherited through fork, are reset). When `bound`, a worker also
    ends when its parent dies, even by SIGKILL (Linux), rather than wait
    forever on a queue nobody writes to.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for name in ("SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_DFL)
    if bound:
        _die_with_parent()


def _die_with_parent():
    parent = os.getppid()
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        return
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(1)


class _Router:
    """Which worker a case goes to.

    Each worker keeps its own cache of clinical situations, and a situation
    belongs to one diagnosis: the cases of one diagnosis go to one worker (its
    home, the least busy when the diagnosis first comes up), so that each
    worker learns only its diagnoses' situations instead of every worker
    learning all of them. Routing never changes an answer, only where it is
    worked out: a worker with more than SPILL cases still to do beyond the
    least busy one passes cases on, so that neither one diagnosis nor a
    worker slowed by new situations leaves another idle.
    """

    SPILL = IN_FLIGHT * CHUNK

    def __init__(self, workers: int):
        self.load = [0] * workers  # cases sent to each worker (or waiting to be) and not yet back
        self.home: dict = {}

    def worker_for(self, record: CaseRecord) -> int:
        least = self.load.index(min(self.load))
        worker = self.home.setdefault(_diagnosis_of(record), least)
        if self.load[worker] - self.load[least] > self.SPILL:
            worker = least
        self.load[worker] += 1
        return worker

    def returned(self, worker: int, cases: int):
        self.load[worker] -= cases


def _diagnosis_of(record: CaseRecord):
    """The diagnosis as written, for routing only (a misspelt one just goes somewhere)."""
    value = record.data.get("diagnosis") if isinstance(record.data, dict) else None
    return value.strip().lower() if isinstance(value, str) else None


def _pooled(records: Iterator[CaseRecord], advisor: Advisor, workers: int, finish: Optional[Callable]) -> Iterator:
    """The results of `records`, in input order, from `workers` processes of one
    worker each (a shared pool cannot send a case to a chosen worker: _Router)."""
    rulebase = advisor.rulebase
    directory = None if rulebase.packaged else str(rulebase.root)
    # PR_SET_PDEATHSIG fires when the *thread* that started the worker ends:
    # only safe to ask for when that thread is the main one, which ends with the process.
    bound = threading.current_thread() is threading.main_thread()
    cache = advisor.situations.maxsize if advisor.situations is not None else 0
    pools = [
        ProcessPoolExecutor(
            1, initializer=_start_worker, initargs=(directory, advisor.per_disease, cache, finish, bound)
        )
        for _ in range(workers)
    ]
    router = _Router(workers)
    waiting = [[] for _ in pools]  # per worker: (index, record) not yet sent
    learnt = [_Learnt() for _ in pools]  # per worker: situations the others learnt, not yet sent to it
    in_flight = deque()  # (future, indices, worker), in the order sent
    done = {}  # index -> result, for results that came back ahead of their turn
    turn = 0  # the index of the next result to yield
    ahead = workers * IN_FLIGHT * CHUNK  # results kept ahead of their turn, at most (then wait for it)

    unwritten = {}  # index -> the record, until its result is yielded (named if a worker dies)
    processes = {}  # worker -> its process, kept to say how it ended if it dies

    def send(worker):
        chunk, waiting[worker] = waiting[worker], []
        future = pools[worker].submit(_evaluate_chunk, [record for _, record in chunk], learnt[worker].take())
        in_flight.append((future, [index for index, _ in chunk], worker))
        if worker not in processes:
            processes.update((worker, p) for p in (getattr(pools[worker], "_processes", None) or {}).values())

    def take(entry):
        in_flight.remove(entry)
        future, indices, worker = entry
        _wait_alive([future], processes.values())
        results, learnt_there = future.result()
        done.update(zip(indices, results))
        router.returned(worker, len(indices))
        if learnt_there:
            for other, outbox in enumerate(learnt):
                if other != worker:
                    outbox.add(learnt_there)

    def receive(block_on_turn: bool):
        """Take every chunk that is back, so that no worker waits behind a slower
        one's chunk. If none is, wait: for the one holding the next turn (sending
        its chunk if it still waits), or for any."""
        finished = [entry for entry in in_flight if entry[0].done()]
        for entry in finished:
            take(entry)
        if finished and not block_on_turn:
            return
        if block_on_turn and turn not in done:
            for worker, chunk in enumerate(waiting):
                if chunk and chunk[0][0] == turn:
                    send(worker)
            take(next(entry for entry in in_flight if turn in entry[1]))
        elif not finished and in_flight:
            _wait_alive([entry[0] for entry in in_flight], processes.values(), FIRST_COMPLETED)
            receive(False)

    read = 0  # cases read so far
    stopped = False
    try:
        for record in records:
            worker = router.worker_for(record)
            waiting[worker].append((read, record))
            unwritten[read] = record
            read += 1
            if len(waiting[worker]) == CHUNK:
                send(worker)
            while len(in_flight) >= workers * IN_FLIGHT:  # bounded: take results before reading on
                receive(block_on_turn=len(done) >= ahead)
                while turn in done:
                    del unwritten[turn]
                    yield done.pop(turn)
                    turn += 1
        for worker, chunk in enumerate(waiting):  # the last, short chunks, all at once
            if chunk:
                send(worker)
        while turn < read:
            if turn not in done:
                receive(block_on_turn=True)
            del unwritten[turn]
            yield done.pop(turn)
            turn += 1
    except (Stopped, KeyboardInterrupt):
        stopped = True
        raise
    except BrokenProcessPool:
        # A worker was killed (kill -9, the kernel's OOM killer): its pool's thread may be stuck
        # reading half a result, so the pools are let go of, as on a signal.
        stopped = True
        first = unwritten.get(turn)  # named only now: its id is read off its data, which costs on every case
        named = None if first is None else (first.case_id(advisor.rulebase.schema), first.source, first.line)
        raise WorkerDied(_death_note(processes.values(), turn, named), turn) from None
    finally:
        # Cancel what no worker has started, everywhere first; then wait for each
        # worker's current chunk. (shutdown(wait=False) would let go of the
        # pool's thread unjoined, and Python 3.11 then writes to its closed
        # pipe at exit: "Exception ignored ... Bad file descriptor".)
        for future, _, _ in in_flight:
            future.cancel()
        for pool in pools:
            if stopped:
                _abandon(pool)
            else:
                pool.shutdown(wait=True, cancel_futures=True)


def _wait_alive(futures, processes, return_when=ALL_COMPLETED) -> None:
    """wait() for futures, checking every POLL seconds that no worker died meanwhile.

    A worker killed while it sends a result leaves its pool's thread reading the rest for
    ever, so the pool never says it broke: BrokenProcessPool is raised here instead."""
    while True:
        done, pending = wait(futures, timeout=POLL, return_when=return_when)
        if not pending or (done and return_when == FIRST_COMPLETED):
            return
        if any(process.exitcode is not None for process in processes):
            raise BrokenProcessPool("a worker process died")


def _death_note(processes, written: int, first: Optional[tuple]) -> str:
    """What to say when a worker died: which one and how, and from which case on there are no results."""
    from ..base.escape import for_terminal

    processes, dead = list(processes), []
    for _ in range(20):  # the pool's own thread may be reaping the dead one this very moment
        dead = [p for p in processes if p.exitcode is not None]
        if dead:
            break
        time.sleep(0.05)
    how = "died"
    if dead:
        code = dead[0].exitcode
        if code is not None and code < 0:
            try:
                how = f"was killed by {signal.Signals(-code).name}"
            except ValueError:
                how = f"was killed by signal {-code}"
        elif code is not None:
            how = f"exited with status {code}"
        how = f"(pid {dead[0].pid}) {how}"
    done = f"the first {written:,} case{' was' if written == 1 else 's were'} evaluated"
    rest = "; no case after them has a result"
    if first is not None:
        case_id, source, line = first
        where = f"{source}:{line}" if source and line else (source or "")
        rest = f"; the case {case_id}{f' ({where})' if where else ''} and every case after it have no result"
    return for_terminal(f"a worker process {how} (killed by hand, or by the system when memory ran out?): {done}{rest}")


class _Learnt:
    """What the other workers learnt, waiting for a worker's next chunk: at most LEARNT_WAITING
    bytes, the oldest forgotten beyond (a worker that gets no chunk for long learns them itself)."""

    def __init__(self):
        self.blobs, self.size = deque(), 0

    def add(self, blob: bytes) -> None:
        self.blobs.append(blob)
        self.size += len(blob)
        while self.size > LEARNT_WAITING:
            self.size -= len(self.blobs.popleft())

    def take(self) -> list:
        blobs, self.blobs, self.size = list(self.blobs), deque(), 0
        return blobs


# Pools let go of on a signal: the process must then end with os._exit (cli._fail does),
# since the interpreter's own exit would wait for their threads, and could wait forever.
abandoned_pools = []


def _abandon(pool: ProcessPoolExecutor) -> None:
    """Stop a pool on a signal without waiting for it. A worker killed by the signal in the
    middle of sending a result leaves the pool's thread reading the rest of it for ever (the
    pipe's other end stays open in this process), and joining that thread hung the batch."""
    manager = getattr(pool, "_executor_manager_thread", None)
    if manager is not None:
        _silence(manager)
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        try:
            process.terminate()
        except (OSError, ValueError, AttributeError):  # already gone
            pass
    pool.shutdown(wait=False, cancel_futures=True)
    abandoned_pools.append(pool)


_silenced: set = set()


def _silence(thread: threading.Thread) -> None:
    """Let an abandoned pool's thread die without a traceback on stderr: told its workers are
    gone, Python 3.11's pool sets an exception on futures already cancelled (InvalidStateError),
    a race of the library's in a process that is ending on a signal anyway."""
    if not _silenced:
        previous = threading.excepthook

        def hook(args):
            if args.thread not in _silenced:
                previous(args)

        threading.excepthook = hook
    _silenced.add(thread)
