"""The worker pool (engine/batch/pool.py): a worker never outlives the batch that started it."""

import subprocess
import sys
import textwrap

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
