"""The worker pool (engine/batch/pool.py): a worker never outlives the batch that started it."""

import subprocess
import sys
import textwrap

import pytest
from helpers import ROOT

# A parent that starts a "worker" and dies at once; the worker sets itself up only after its
# parent is gone, as a pool's worker forked just before a signal stopped the batch does on a
# loaded machine, then says whether it is still there.
ORPHAN = textwrap.dedent(
    """
    import os, subprocess, sys, time
    if sys.argv[1] == "parent":
        subprocess.Popen([sys.executable, __file__, "worker", str(os.getpid())], stdout=sys.stdout)
        os._exit(0)
    parent = int(sys.argv[2])
    while os.getppid() == parent:  # until the parent has died and this process was adopted
        time.sleep(0.01)
    from ivig_advisor.engine.batch import pool
    pool._own_signals(parent)
    print("still running", flush=True)
    """
)


def test_a_worker_whose_parent_died_before_it_started_ends(tmp_path):
    script = tmp_path / "orphan.py"
    script.write_text(ORPHAN, encoding="utf-8")
    out = subprocess.run([sys.executable, str(script), "parent"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "still running" not in out.stdout, "an orphaned worker would wait for ever on its queue"


def test_a_worker_whose_parent_lives_runs_on(tmp_path):
    """The test above can fail: with its parent alive, the worker goes on."""
    script = tmp_path / "alive.py"
    script.write_text(
        "import os\nfrom ivig_advisor.engine.batch import pool\npool._own_signals(os.getppid())\nprint('running')\n",
        encoding="utf-8",
    )
    out = subprocess.run([sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "running", out.stderr


# -- a batch left before its end ----------------------------------------------------------

# A pooled batch of endless cases, left after its 300th result as argv[1] says: `stopped` (a
# signal's Stopped raised where the results are read), `closed` (a break) or `error` (an error
# that is no signal, raised there); with `-died`, once a worker died halfway through sending a
# result, as `timeout`'s SIGTERM to the whole group can kill one. It prints how
# many pools were let go of and how many pool threads are left running. A process of its own:
# pools let go of must end it with os._exit (as cli._fail does), or its exit would wait on
# their threads, which may never end.
LEAVE = textwrap.dedent(
    """
    import contextlib, os, signal, struct, sys, threading, time
    from concurrent.futures.process import _ExecutorManagerThread
    from ivig_advisor.engine import Advisor
    from ivig_advisor.engine.base.errors import Stopped
    from ivig_advisor.engine.batch import pool
    from ivig_advisor.engine.io.record import CaseRecord

    how, dies = sys.argv[1].split("-")[0], sys.argv[1].endswith("-died")
    go, dead = sys.argv[2] + ".go", sys.argv[2]

    def wait_for(path):
        deadline = time.monotonic() + 30
        while not os.path.exists(path) and time.monotonic() < deadline:
            time.sleep(0.01)

    def work(record, advisor):
        # c400 is in a chunk sent before the 300th result is given (8 chunks of 64 are in flight
        # before the first is), and holds no earlier case: its worker waits there for the word
        # go, then dies halfway through sending a result
        if dies and record.data["id"] == "c400":
            wait_for(go)
            frame = sys._getframe()
            while frame.f_code.co_name != "_process_worker":
                frame = frame.f_back
            frame.f_locals["result_queue"]._writer._send(struct.pack("!i", 1 << 20) + b"half")
            with open(dead, "w"):
                pass
            os.kill(os.getpid(), signal.SIGKILL)
        return record.data["id"]

    def endless():
        i = 0
        while True:
            yield CaseRecord({"diagnosis": ("gbs", "mmn")[i % 2], "id": f"c{i}"}, None, None, f"c{i}")
            i += 1

    results = pool.Scheduler(Advisor(), 2, work).results(endless())
    with contextlib.suppress(Stopped, RuntimeError), contextlib.closing(results):
        for i, _ in enumerate(results):
            if i == 300:
                if dies:
                    open(go, "w").close()
                    wait_for(dead)
                    time.sleep(0.2)  # the worker is dead
                if how == "closed":
                    break
                raise Stopped(signal.SIGTERM) if how == "stopped" else RuntimeError("not written")
    running = [t for t in threading.enumerate() if isinstance(t, _ExecutorManagerThread) and t.is_alive()]
    print(len(pool.abandoned_pools), len(running), flush=True)
    if pool.abandoned_pools:
        os._exit(0)
    """
)


def _leave_early(how, tmp_path):
    script = tmp_path / "leave.py"
    script.write_text(LEAVE, encoding="utf-8")
    dead = tmp_path / "dead"
    out = subprocess.run(
        [sys.executable, str(script), how, str(dead)], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert dead.exists() == how.endswith("-died"), "the worker died as planned"
    let_go, running = map(int, out.stdout.split())
    return let_go, running


@pytest.mark.parametrize("how", ["stopped-died", "closed-died", "error-died"])
def test_a_batch_left_early_after_a_worker_died_sending_lets_the_pools_go(how, tmp_path):
    """SIGTERM while a result is being written raises Stopped outside the pool's generator,
    which is then closed; or the reader stops, or fails. With a worker killed while it sent a
    result, joining its pool waits for ever (seen in CI, under `timeout`, which sends SIGTERM
    to the workers too): the pools are let go of instead."""
    assert _leave_early(how, tmp_path)[0] == 2


def test_a_signal_raised_where_the_results_are_read_stops_at_once(tmp_path):
    """With every worker alive, a signal raised while a result is being written lets the pools
    go at once, as one raised inside the pool's generator does: their chunks are not waited for."""
    assert _leave_early("stopped", tmp_path)[0] == 2


@pytest.mark.parametrize("how", ["closed", "error"])
def test_a_batch_left_early_with_its_workers_alive_joins_them(how, tmp_path):
    """The tests above can fail: a break, or an error that is no signal, with every worker
    alive, lets the workers finish the chunks they started and joins the pools (the process
    then ends on its own)."""
    assert _leave_early(how, tmp_path) == (0, 0)
