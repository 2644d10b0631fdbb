"""Cases evaluated by worker processes: a `Scheduler` sends them in chunks and gives the results
back in input order, identical for any number of workers.

Each worker loads and compiles the rule base once and keeps its own cache of clinical
situations; the cases of one diagnosis go to one worker while the load allows (`_Router`), so
that each learns only its own diagnoses' situations, and what one worker learns travels to the
others with their next chunk, so that a situation is run once per batch. Only a few chunks per
worker are in flight at a time, so memory stays flat whatever the size of the input.
"""

import os
import signal
import threading
import time
from collections import deque
from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Callable, Iterable, Iterator, List, Optional, Tuple

from ..base.errors import Stopped, WorkerDied
from ..core.advisor import Advisor
from ..io.record import CaseRecord

CHUNK = 64  # cases per task sent to a worker
IN_FLIGHT = 4  # tasks per worker queued at once: enough to keep it busy, bounded for memory
POLL = 0.5  # seconds between checks that the workers are alive, while waiting on them
LEARNT_WAITING = 8 * 1024 * 1024  # bytes of situations kept per worker until its next chunk; then the oldest go

# Pools let go of on a signal: the process must then end with os._exit (cli._fail does),
# since the interpreter's own exit would wait for their threads, and could wait forever.
abandoned_pools = []


class Scheduler:
    """The results of records, in input order, from `workers` processes of one worker each (a
    shared pool cannot send a case to a chosen worker: _Router).

    `work(record, advisor)`, a picklable function, is what a worker does with each record; its
    value is the result given back. Nothing starts until `results()` is iterated."""

    def __init__(self, advisor: Advisor, workers: int, work: Callable):
        self.advisor, self.workers, self.work = advisor, workers, work
        self.pools: List[ProcessPoolExecutor] = []  # one per worker, started by results()
        self.router = _Router(workers)
        self.waiting = [[] for _ in range(workers)]  # per worker: (index, record) not yet sent
        self.learnt = [_Learnt() for _ in range(workers)]  # per worker: what the others learnt, not yet sent to it
        self.in_flight = deque()  # (future, indices, worker), in the order sent
        self.done = {}  # index -> result, for results that came back ahead of their turn
        self.unwritten = {}  # index -> the record, until its result is given back (named if a worker dies)
        self.processes = {}  # worker -> its process, kept to say how it ended if it dies
        self.read = 0  # records read so far
        self.turn = 0  # the index of the next result to give back
        self.ahead = workers * IN_FLIGHT * CHUNK  # results kept ahead of their turn, at most (then wait for it)
        self.stopped = False  # by a signal or a dead worker: the pools are let go of, not joined

    def results(self, records: Iterator[CaseRecord]) -> Iterator:
        """The results of `records`, in input order. On any exit every worker is stopped: joined
        when the batch ends, or is closed early once the chunks started are done; let go of on a
        signal (also one raised where the results are read) or when a worker died (WorkerDied)."""
        self.pools = self._start_pools()
        try:
            yield from self._in_order(records)
        except (Stopped, KeyboardInterrupt):
            self.stopped = True
            raise
        except GeneratorExit as closed:
            # Closed early by whoever reads the results: a signal raised there, while a result
            # was being written, stops as one raised here does (it is on the close's context).
            self.stopped = _by_a_signal(closed)
            raise
        except BrokenProcessPool:
            # A worker was killed (kill -9, the kernel's OOM killer): its pool's thread may be stuck
            # reading half a result, so the pools are let go of, as on a signal.
            self.stopped = True
            raise self._died() from None
        finally:
            self._shut_down()

    def _start_pools(self) -> List[ProcessPoolExecutor]:
        rulebase = self.advisor.rulebase
        directory = None if rulebase.packaged else str(rulebase.root)
        # PR_SET_PDEATHSIG fires when the *thread* that started the worker ends:
        # only safe to ask for when that thread is the main one, which ends with the process.
        parent = os.getpid() if threading.current_thread() is threading.main_thread() else None
        cache = self.advisor.situations.maxsize if self.advisor.situations is not None else 0
        setup = (directory, self.advisor.per_disease, cache, self.advisor.matcher, self.work, parent)
        return [ProcessPoolExecutor(1, initializer=_start_worker, initargs=setup) for _ in range(self.workers)]

    def _in_order(self, records: Iterator[CaseRecord]) -> Iterator:
        for record in records:
            self._queue(record)
            while len(self.in_flight) >= self.workers * IN_FLIGHT:  # bounded: take results before reading on
                self._receive(block_on_turn=len(self.done) >= self.ahead)
                yield from self._ready()
        for worker, chunk in enumerate(self.waiting):  # the last, short chunks, all at once
            if chunk:
                self._send(worker)
        while self.turn < self.read:
            if self.turn not in self.done:
                self._receive(block_on_turn=True)
            yield from self._ready()

    def _queue(self, record: CaseRecord) -> None:
        """A record into its worker's next chunk, which goes once it is full."""
        worker = self.router.worker_for(record)
        self.waiting[worker].append((self.read, record))
        self.unwritten[self.read] = record
        self.read += 1
        if len(self.waiting[worker]) == CHUNK:
            self._send(worker)

    def _ready(self) -> Iterator:
        """The results that are back, from the one whose turn it is on, as long as they follow each other."""
        while self.turn in self.done:
            del self.unwritten[self.turn]
            yield self.done.pop(self.turn)
            self.turn += 1

    def _send(self, worker: int) -> None:
        """A worker's waiting chunk to it, with what the others learnt meanwhile."""
        chunk, self.waiting[worker] = self.waiting[worker], []
        records = [record for _, record in chunk]
        future = self.pools[worker].submit(_evaluate_chunk, records, self.learnt[worker].take())
        self.in_flight.append((future, [index for index, _ in chunk], worker))
        if worker not in self.processes:
            pool_processes = getattr(self.pools[worker], "_processes", None) or {}
            self.processes.update((worker, process) for process in pool_processes.values())

    def _receive(self, block_on_turn: bool) -> None:
        """Take every chunk that is back, so that no worker waits behind a slower
        one's chunk. If none is, wait: for the one holding the next turn (sending
        its chunk if it still waits), or for any."""
        finished = [entry for entry in self.in_flight if entry[0].done()]
        for entry in finished:
            self._take(entry)
        if finished and not block_on_turn:
            return
        if block_on_turn and self.turn not in self.done:
            self._take_turn()
        elif not finished and self.in_flight:
            self._wait_alive([entry[0] for entry in self.in_flight], FIRST_COMPLETED)
            self._receive(False)

    def _take_turn(self) -> None:
        """Wait for the chunk that holds the next turn, sending it first if it still waits."""
        for worker, chunk in enumerate(self.waiting):
            if chunk and chunk[0][0] == self.turn:
                self._send(worker)
        self._take(next(entry for entry in self.in_flight if self.turn in entry[1]))

    def _take(self, entry) -> None:
        """A chunk's results, once back; what its worker learnt goes to the others' outboxes."""
        self.in_flight.remove(entry)
        future, indices, worker = entry
        self._wait_alive([future])
        results, learnt_there = future.result()
        self.done.update(zip(indices, results))
        self.router.returned(worker, len(indices))
        if learnt_there:
            for other, outbox in enumerate(self.learnt):
                if other != worker:
                    outbox.add(learnt_there)

    def _wait_alive(self, futures, return_when=ALL_COMPLETED) -> None:
        """wait() for futures, checking every POLL seconds that no worker died meanwhile.

        A worker killed while it sends a result leaves its pool's thread reading the rest for
        ever, so the pool never says it broke: BrokenProcessPool is raised here instead."""
        while True:
            done, pending = wait(futures, timeout=POLL, return_when=return_when)
            if not pending or (done and return_when == FIRST_COMPLETED):
                return
            if any(process.exitcode is not None for process in self.processes.values()):
                raise BrokenProcessPool("a worker process died")

    def _finish_started(self) -> None:
        """Wait for the chunks the workers have started, if the batch was left before its end.
        A worker that died meanwhile (`timeout` sends SIGTERM to the workers too), or a signal
        that comes while waiting, stops the batch: joining the pools would wait for ever on a
        worker killed while it sent a result."""
        started = [future for future, _, _ in self.in_flight if not future.cancelled()]
        try:
            self._wait_alive(started)
        except BrokenProcessPool:
            self.stopped = True
        except (Stopped, KeyboardInterrupt):
            self.stopped = True
            raise

    def _died(self) -> WorkerDied:
        """The error that a worker died, naming the first case without a result."""
        first = self.unwritten.get(self.turn)  # named only now: its id is read off its data, which costs on every case
        named = None if first is None else (first.case_id(self.advisor.rulebase.schema), first.source, first.line)
        return WorkerDied(_death_note(self.processes.values(), self.turn, named), self.turn)

    def _shut_down(self) -> None:
        """Cancel what no worker has started, everywhere first; then wait for each worker's
        current chunk, or let go of the pools when stopped. (shutdown(wait=False) would let go
        of the pool's thread unjoined, and Python 3.11 then writes to its closed pipe at exit:
        "Exception ignored ... Bad file descriptor".)"""
        for future, _, _ in self.in_flight:
            future.cancel()
        try:
            if not self.stopped:
                self._finish_started()
        finally:  # a signal while waiting is raised on, once every pool is let go of
            for pool in self.pools:
                if self.stopped:
                    _abandon(pool)
                else:
                    pool.shutdown(wait=True, cancel_futures=True)


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


# -- in a worker process ----------------------------------------------------------------

_worker_advisor: Optional[Advisor] = None
_worker_work: Optional[Callable] = None


def _start_worker(
    directory: Optional[str], per_disease: bool, cache: int, matcher: str, work: Callable, parent: Optional[int]
):
    global _worker_advisor, _worker_work
    _own_signals(parent)
    from ..core.rulebase import RuleBase

    rulebase = RuleBase.load(Path(directory) if directory else None)
    _worker_advisor = Advisor(rulebase, per_disease=per_disease, cache=cache, matcher=matcher)
    _worker_work = work
    if _worker_advisor.situations is not None:
        _worker_advisor.situations.share_learning()


def _evaluate_chunk(records: List[CaseRecord], learnt_elsewhere: Iterable[bytes] = ()) -> Tuple[list, bytes]:
    """The results of a chunk, and the situations this worker learnt on it.

    `learnt_elsewhere`: what the other workers learnt since this one's last chunk, kept first."""
    cache = _worker_advisor.situations
    if cache is not None:
        for learnt in learnt_elsewhere:
            cache.adopt(learnt, _worker_advisor.rulebase.by_id)
    results = [_worker_work(record, _worker_advisor) for record in records]
    return results, cache.take_learnt() if cache is not None else b""


def _own_signals(parent: Optional[int]):
    """A worker leaves stopping to the process that started it.

    Ctrl-C reaches every process of the terminal's group: the parent stops the
    pool, so a worker ignores SIGINT and finishes its chunk rather than dying
    with a traceback. SIGTERM and SIGHUP end a worker at once (the parent's
    handlers, inherited through fork, are reset). Given the pid of the `parent`
    that started it, a worker also ends when that parent dies, even by SIGKILL
    (Linux), rather than wait forever on a queue nobody writes to.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for name in ("SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_DFL)
    if parent is not None:
        _die_with_parent(parent)


def _die_with_parent(parent: int):
    """End this process when `parent` ends; at once if it has ended already. The pid is the
    one the parent gave, not getppid() read here: a worker forked just before its parent
    was stopped starts after it died, already adopted by init, and would wait for ever."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        return
    if os.getppid() != parent:  # the parent died before the line above, or before this worker ran
        os._exit(1)


# -- when a worker died, or a signal came ------------------------------------------------


def _death_note(processes, written: int, first: Optional[tuple]) -> str:
    """What to say when a worker died: which one and how, and from which case on there are no results."""
    from ..base.escape import for_terminal

    dead = _the_dead(list(processes))
    how = f"(pid {dead.pid}) {_how_it_ended(dead.exitcode)}" if dead is not None else "died"
    done = f"the first {written:,} case{' was' if written == 1 else 's were'} evaluated"
    rest = "; no case after them has a result"
    if first is not None:
        case_id, source, line = first
        where = f"{source}:{line}" if source and line else (source or "")
        rest = f"; the case {case_id}{f' ({where})' if where else ''} and every case after it have no result"
    return for_terminal(f"a worker process {how} (killed by hand, or by the system when memory ran out?): {done}{rest}")


def _the_dead(processes: list):
    """The first of `processes` that has ended, waiting a second at most: the pool's own thread
    may be reaping the dead one this very moment."""
    for _ in range(20):
        dead = [p for p in processes if p.exitcode is not None]
        if dead:
            return dead[0]
        time.sleep(0.05)
    return None


def _how_it_ended(code: Optional[int]) -> str:
    """'was killed by SIGKILL', 'exited with status 3'."""
    if code is None:
        return "died"
    if code >= 0:
        return f"exited with status {code}"
    try:
        return f"was killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"was killed by signal {-code}"


def _by_a_signal(closed: GeneratorExit) -> bool:
    """Whether a generator was `closed` because a signal is stopping the process: Stopped or
    KeyboardInterrupt, raised where its results were read, is on the close's context (through
    the GeneratorExit of each generator closed on the way)."""
    cause = closed.__context__
    while isinstance(cause, GeneratorExit):
        cause = cause.__context__
    return isinstance(cause, (Stopped, KeyboardInterrupt))


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
