"""No lost file, no raw escape on the terminal, a clean stop (issue 11, the output side).

Everything here goes through the real command: a subprocess where files,
signals, processes and exit codes matter, a pseudo-terminal (pexpect) where
the terminal matters, click's CliRunner where a failure has to be provoked.
"""

import contextlib
import json
import os
import re
import resource
import shlex
import signal
import stat
import subprocess
import threading
import time
from pathlib import Path

import pexpect
import pytest
import yaml
from helpers import IVIG, ivig, jsonl, plain_env
from helpers import spawn_wide as spawn

ENV = plain_env()
GBS = {"diagnosis": "gbs", "walks_unaided": False, "weight_kg": 70, "age": 60}
CASES = "".join(json.dumps(dict(GBS, id=f"c{i}")) + "\n" for i in range(5))


def one_line(stderr: str) -> str:
    """The single line of an error report (no traceback, no usage block)."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def leftovers(folder: Path):
    """Hidden temporary files left in a folder."""
    return [p.name for p in folder.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp")]


# -- 1. the output is never one of the inputs ------------------------------------------


@pytest.fixture
def cases(tmp_path):
    path = tmp_path / "cases.jsonl"
    path.write_text(CASES, encoding="utf-8")
    return path


@pytest.mark.parametrize("how", ["same", "relative", "symlink", "hardlink"])
def test_output_onto_an_input_is_refused(cases, how):
    folder = cases.parent
    target = {"same": cases, "relative": Path("./sub/../cases.jsonl")}.get(how)
    if how == "symlink":
        target = folder / "link.jsonl"
        target.symlink_to(cases)
    if how == "hardlink":
        target = folder / "hard.jsonl"
        os.link(cases, target)
    (folder / "sub").mkdir()
    run = ivig("evaluate", str(cases), "-o", target, "--format", "jsonl", cwd=folder)
    assert run.returncode == 2
    assert "one of the inputs" in one_line(run.stderr)
    assert cases.read_text(encoding="utf-8") == CASES and not leftovers(folder)


def test_output_onto_the_file_stdin_comes_from_is_refused(cases):
    with open(cases, encoding="utf-8") as stdin:
        run = ivig("evaluate", "-", "-o", cases, "--format", "jsonl", stdin=stdin)
    assert run.returncode == 2 and "standard input" in one_line(run.stderr)
    assert cases.read_text(encoding="utf-8") == CASES


def test_output_inside_an_input_folder_is_never_read_as_input(cases):
    out = cases.parent / "out.jsonl"
    for _ in range(3):
        run = ivig("evaluate", cases.parent, "-o", out, "--format", "jsonl")
        assert run.returncode == 0, run.stderr
        assert len(jsonl(out.read_text(encoding="utf-8"))) == 5
        assert run.stderr.startswith("5 cases: 5 ok")


# -- 2. where the output goes ------------------------------------------------------------


def test_output_onto_a_symlink_writes_through_it(cases, tmp_path):
    elsewhere = tmp_path / "store"
    elsewhere.mkdir()
    real = elsewhere / "results.jsonl"
    real.write_text("old\n", encoding="utf-8")
    real.chmod(0o640)
    link = tmp_path / "latest.jsonl"
    link.symlink_to(real)
    run = ivig("evaluate", cases, "-o", link, "--format", "jsonl")
    assert run.returncode == 0, run.stderr
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert len(jsonl(real.read_text(encoding="utf-8"))) == 5
    assert stat.S_IMODE(real.stat().st_mode) == 0o640
    assert not leftovers(tmp_path) and not leftovers(elsewhere)


@pytest.mark.parametrize("kind", ["fifo", "device-link"])
def test_output_onto_a_device_or_pipe_is_refused(cases, tmp_path, kind):
    # Through a link to /dev/null, never -o /dev/null itself: a regression run
    # as root must not be able to replace the system's device.
    target = tmp_path / "target"
    if kind == "fifo":
        os.mkfifo(target)
    else:
        target.symlink_to("/dev/null")
    run = ivig("evaluate", cases, "-o", target, timeout=30)
    assert run.returncode == 2 and "not a regular file" in one_line(run.stderr)
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    assert stat.S_ISFIFO(target.lstat().st_mode) if kind == "fifo" else target.is_symlink()


def test_output_into_a_missing_folder_is_one_line_exit_2(cases, tmp_path):
    run = ivig("evaluate", cases, "-o", tmp_path / "nowhere" / "out.jsonl")
    assert run.returncode == 2
    assert "nowhere" in one_line(run.stderr) and "no such folder" in run.stderr


def test_output_under_a_file_is_one_line_exit_2(cases, tmp_path):
    run = ivig("evaluate", cases, "-o", cases / "out.jsonl")
    assert run.returncode == 2 and "cases.jsonl" in one_line(run.stderr)


def test_output_into_a_folder_that_refuses_writing_is_one_line_exit_2(cases, tmp_path):
    if os.geteuid() == 0:  # root writes in any read-only folder; /proc refuses even root
        target = Path("/proc/ivig-out.jsonl")
    else:
        readonly = tmp_path / "ro"
        readonly.mkdir()
        readonly.chmod(0o555)
        target = readonly / "out.jsonl"
    run = ivig("evaluate", cases, "-o", target)
    assert run.returncode == 2
    assert str(target.parent) in one_line(run.stderr) and not target.exists()


def _file_size_limit(size):
    """A preexec_fn: writes past `size` bytes fail (EFBIG), as on a full disk."""

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    return limit


def test_a_write_failure_is_one_line_and_keeps_the_old_file(tmp_path):
    many = tmp_path / "many.jsonl"
    many.write_text("".join(json.dumps(dict(GBS, id=f"c{i}")) + "\n" for i in range(200)), encoding="utf-8")
    out = tmp_path / "out.jsonl"
    out.write_text("the old results\n", encoding="utf-8")
    run = ivig("evaluate", many, "-o", out, "--format", "jsonl", preexec_fn=_file_size_limit(20_000))
    assert run.returncode == 74
    assert "cannot write" in one_line(run.stderr) and "out.jsonl" in run.stderr
    assert out.read_text(encoding="utf-8") == "the old results\n"
    assert not leftovers(tmp_path)


def test_standard_output_on_a_full_disk_is_one_line(cases):
    with open("/dev/full", "w") as full:
        run = ivig("evaluate", cases, "--format", "jsonl", stdout=full, stderr=subprocess.PIPE)
    assert run.returncode == 74
    assert "standard output" in one_line(run.stderr) and "No space left" in run.stderr


def test_a_reader_that_goes_away_ends_quietly(tmp_path):
    many = tmp_path / "many.jsonl"
    many.write_text("".join(json.dumps(dict(GBS, id=f"c{i}")) + "\n" for i in range(3000)), encoding="utf-8")
    child = subprocess.Popen(
        [*IVIG, "evaluate", str(many), "--format", "jsonl", "-j", "2"],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    child.stdout.readline()
    child.stdout.close()  # as `| head -1` does
    stderr = child.stderr.read()
    assert child.wait(timeout=60) == 141 and stderr == ""


def test_the_temporary_file_is_synced_before_the_rename(run_cli, cases, tmp_path, monkeypatch):
    from ivig_advisor.engine.base import atomic

    calls = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(
        atomic.os, "fsync", lambda fd: (calls.append(("fsync", stat.S_ISDIR(os.fstat(fd).st_mode))), real_fsync(fd))[1]
    )
    monkeypatch.setattr(atomic.os, "replace", lambda a, b: (calls.append(("replace", None)), real_replace(a, b))[1])
    out = tmp_path / "out.jsonl"
    assert run_cli("evaluate", str(cases), "-o", str(out)).exit_code == 0
    assert calls == [("fsync", False), ("replace", None), ("fsync", True)]


# -- 3. process control ---------------------------------------------------------------


def descendants(pid):
    """The processes below `pid` (from /proc), living ones only."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def alive(pids):
    """Those of `pids` still running (not gone, not a zombie)."""
    living = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] != "Z":
                    living.append(pid)
        except OSError:
            pass
    return living


@pytest.fixture
def old_output(tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_text("the old results\n", encoding="utf-8")
    return out


def endless(*command):
    """`ivig` started on an input that never ends: standard input is a pipe fed cases until the
    process goes away. A batch of any size is done in a few seconds on a fast machine, so a
    signal is sure to arrive mid-batch only if the batch cannot end."""
    child = subprocess.Popen(
        [*command], env=ENV, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    lines = "".join(json.dumps(dict(GBS, id=f"c{i}")) + "\n" for i in range(1000))

    def feed():
        try:
            while True:
                child.stdin.write(lines)
                child.stdin.flush()
        except (OSError, ValueError):  # the process went away: the pipe is broken or closed
            pass

    threading.Thread(target=feed, daemon=True).start()
    return child


def _wait_for_workers(pid, count=2, within=30):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        workers = descendants(pid)
        if len(workers) >= count:
            time.sleep(1.5)  # well into the batch
            return descendants(pid)
        time.sleep(0.05)
    raise AssertionError("the workers never started")


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_stops_the_batch_cleanly(old_output, signum, code):
    out = old_output
    child = endless(*IVIG, "evaluate", "-", "-j", "2", "-o", str(out), "--format", "jsonl")
    workers = _wait_for_workers(child.pid)
    os.kill(child.pid, signum)
    try:
        _, stderr = child.communicate(timeout=20)
    finally:
        child.kill()
    assert child.returncode == code
    assert "Traceback" not in stderr and one_line(stderr).startswith("ivig: stopped")
    deadline = time.monotonic() + 5
    while alive(workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(workers), "the workers are gone"
    assert out.read_text(encoding="utf-8") == "the old results\n" and not leftovers(out.parent)


def test_ctrl_c_at_a_terminal_stops_the_batch_cleanly(old_output):
    """Ctrl-C reaches the whole process group: the workers must not die with tracebacks.
    `yes` feeds an input that never ends, so the batch is still running when Ctrl-C comes. It runs
    in a session of its own (setsid), out of Ctrl-C's reach, and ends on the broken pipe: bash, told
    of Ctrl-C, ends by SIGINT itself (no exit status) when the last member of the pipeline it reaps
    died of SIGINT, so a `yes` killed by Ctrl-C after ivig had ended hid ivig's 130 on a loaded machine."""
    out = old_output
    line = json.dumps(GBS)
    ivig_command = " ".join(
        map(shlex.quote, [*IVIG, "evaluate", "-", "-j", "2", "-o", str(out), "--format", "jsonl", "--quiet"])
    )
    child = pexpect.spawn(
        "bash",
        ["-c", f"setsid yes {shlex.quote(line)} 2>/dev/null | {ivig_command}"],
        env=ENV,
        encoding="utf-8",
        timeout=30,
    )
    workers = _wait_for_workers(child.pid, count=4)  # yes, ivig and its two workers
    child.sendintr()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 130
    assert child.before.replace("^C", "").strip() == "ivig: stopped by Ctrl-C (SIGINT)"  # ^C: the echo
    time.sleep(0.5)
    assert not alive(workers)
    assert out.read_text(encoding="utf-8") == "the old results\n" and not leftovers(out.parent)


def test_timeout_stops_the_batch_cleanly(old_output):
    """`timeout` sends SIGTERM to ivig and to its whole process group, the workers too, at once.
    Its time is run out by hand once the workers are up (SIGALRM is what its own timer sends it),
    so the batch is under way when it ends whatever the machine's speed: with a time limit of a
    few seconds, a slow start met the signal before the workers existed. Every wait is bounded, so
    a batch that does not stop fails the test rather than hanging it."""
    out = old_output
    child = endless(
        "timeout", "--preserve-status", "600", *IVIG, "evaluate", "-", "-j", "2", "-o", str(out), "--format", "jsonl"
    )
    try:
        workers = _wait_for_workers(child.pid, count=3)  # ivig and its two workers
        os.kill(child.pid, signal.SIGALRM)  # the time is up
        child.wait(timeout=30)  # timeout waits for ivig; not communicate(), which would end the input
        deadline = time.monotonic() + 5
        while alive(workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(workers), "the workers are gone"
        stderr = child.stderr.read()  # read once no worker is left to hold it open
        assert child.returncode == 143 and one_line(stderr) == "ivig: stopped by SIGTERM"
        assert out.read_text(encoding="utf-8") == "the old results\n" and not leftovers(out.parent)
    finally:
        with contextlib.suppress(ProcessLookupError):  # what a failure left running: timeout's own group
            os.killpg(child.pid, signal.SIGKILL)


def test_a_worker_that_dies_is_named_and_not_called_a_bug(old_output):
    """kill -9 of one worker (or the kernel's OOM killer): one line saying a worker died and from
    which case on there are no results, a status of its own, and the old output file kept."""
    out = old_output
    child = endless(*IVIG, "evaluate", "-", "-j", "2", "-o", str(out), "--format", "jsonl")
    workers = _wait_for_workers(child.pid)
    os.kill(workers[-1], signal.SIGKILL)
    try:
        child.wait(timeout=30)
    finally:
        child.kill()
    line = one_line(child.stderr.read())
    assert child.returncode == 71, line
    assert re.search(r"a worker process \(pid \d+\) was killed by SIGKILL", line), line
    assert re.search(
        r"the first [\d,]+ cases were evaluated; the case c\d+ \(<stdin>:\d+\) and every case after "
        r"it have no result",
        line,
    ), line
    assert "bug" not in line and f"{out} was left as it was" in line
    assert out.read_text(encoding="utf-8") == "the old results\n" and not leftovers(out.parent)
    deadline = time.monotonic() + 5
    while alive(workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(workers)


def test_workers_are_capped_at_a_few_per_core(tmp_path):
    from ivig_advisor.engine.batch.pipeline import max_workers

    path = tmp_path / "some.jsonl"
    path.write_text("".join(json.dumps(dict(GBS, id=f"c{i}")) + "\n" for i in range(600)), encoding="utf-8")
    asked = max_workers() + 6
    child = subprocess.Popen(
        [*IVIG, "evaluate", str(path), "-j", str(asked), "--format", "jsonl"],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    most = 0
    while child.poll() is None:
        most = max(most, len(descendants(child.pid)))
        time.sleep(0.02)
    stderr = child.stderr.read()
    assert child.returncode == 0, stderr
    assert 0 < most <= max_workers()
    assert f"--workers {asked}" in stderr and f"using {max_workers()}" in stderr


def test_an_internal_failure_has_its_own_exit_code_and_one_line(run_cli, cases, monkeypatch):
    from ivig_advisor.engine.core import advisor as evaluate

    def bug(self, *args, **kwargs):
        raise KeyError("a bug")

    monkeypatch.setattr(evaluate.Advisor, "evaluate_mapping", bug)
    plain = run_cli("evaluate", str(cases), "--format", "jsonl")
    assert plain.exit_code == 70
    line = one_line(plain.stderr)
    assert "internal error" in line and "KeyError" in line and "--debug" in line
    debug = run_cli("--debug", "evaluate", str(cases), "--format", "jsonl")
    assert debug.exit_code == 70 and "Traceback" in debug.stderr and "Traceback" not in debug.stdout


# -- 4. nothing from input reaches the terminal raw -----------------------------------------

EVIL = "p1\x1b[2J\x1b[H\nFAKE IVIG first-line\u202e"


def _raw(text):
    return any(c in text for c in ("\x1b", "\u202e")) or "\nFAKE" in text


def test_why_not_ids_are_escaped(run_cli, tmp_path):
    path = tmp_path / "two.jsonl"
    path.write_text(json.dumps({"id": EVIL, "diagnosis": "als"}) + "\n" + json.dumps({"diagnosis": "mmn"}) + "\n")
    out = run_cli("audit", "why-not", str(path), "mmn-general")
    assert out.exit_code == 2 and "p1\\e[2J" in out.output and not _raw(out.output)


def test_json_output_of_audit_carries_no_raw_control_characters(run_cli, tmp_path):
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps({"id": "a\x85b\u202ec", "diagnosis": "als"}) + "\n")
    out = run_cli("audit", "why-not", str(path), "als-not-effective", "--format", "json")
    assert out.exit_code == 0, out.output
    assert "\x85" not in out.stdout and "\u202e" not in out.stdout
    assert json.loads(out.stdout)["id"] == "a\x85b\u202ec"


def test_a_piped_answer_is_echoed_escaped(tmp_path):
    script = tmp_path / "answers"
    script.write_text("mmn\x1b[2J\x1b]0;pwned\x07\nals\n\n", encoding="utf-8")
    child = pexpect.spawn(
        "/bin/sh",
        ["-c", f"{' '.join(IVIG)} interview < {script}"],
        cwd=str(tmp_path),
        env=ENV,
        encoding="utf-8",
        timeout=30,
    )
    child.expect(pexpect.EOF)
    shown = child.before
    assert "mmn\\e[2J\\e]0;pwned\\x07" in shown and "\x1b" not in shown and "\x07" not in shown


def test_resume_errors_are_escaped(tmp_path):
    (tmp_path / "bad.yaml").write_text('diagnosis: gbs\n"we\\eight\\e[2J": 70\n', encoding="utf-8")
    run = ivig("interview", "--resume", "bad.yaml", cwd=tmp_path, input="")
    assert run.returncode == 2 and "\\e[2J" in run.stderr and "\x1b" not in run.stderr


def test_paths_from_input_are_echoed_escaped(tmp_path):
    name = "p\x1b[2J\u202e.yaml"
    (tmp_path / name).write_text("diagnosis: gbs\n", encoding="utf-8")
    run = ivig("interview", "--resume", name, "--save", "s\x1b[31m.yaml", cwd=tmp_path, input=UNKNOWNS)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Resumed from p\\e[2J\\u202e.yaml" in run.stdout and "Saved the case to s\\e[31m.yaml" in run.stdout
    assert "\x1b" not in run.stdout and "\u202e" not in run.stdout


# -- 5. the interview's files -------------------------------------------------------------

UNKNOWNS = "unknown\n" * 40  # whatever else the rules ask; lines left over are never read


def interview(*args, answers, cwd):
    return ivig("interview", *args, input=answers, cwd=cwd)


QUESTION = re.compile(r"\n\d+\. [^\r\n]+\?")
AT_THE_END = ["Save the case to a file", r"Overwrite (it|them)\? \[y/N\]"]


def to_the_end(child, diagnosis="als"):
    """Answer the diagnosis, leave every other question unknown; the index of the prompt reached."""
    child.expect("> ")
    child.sendline(diagnosis)
    while (reached := child.expect([QUESTION, *AT_THE_END])) == 0:
        child.expect("> ")
        child.sendline("unknown")
    return reached - 1


def test_save_onto_an_existing_file_without_a_terminal_is_refused(tmp_path):
    (tmp_path / "p.yaml").write_text("diagnosis: mmn\n", encoding="utf-8")
    run = interview("--save", "p.yaml", answers="als\n" + UNKNOWNS, cwd=tmp_path)
    assert run.returncode == 2 and "--overwrite" in one_line(run.stderr)
    assert "Diagnosis?" not in run.stdout, "refused before any question"
    assert (tmp_path / "p.yaml").read_text(encoding="utf-8") == "diagnosis: mmn\n"
    run = interview("--save", "p.yaml", "--overwrite", answers="als\n" + UNKNOWNS, cwd=tmp_path)
    assert run.returncode == 0 and yaml.safe_load((tmp_path / "p.yaml").read_text())["diagnosis"] == "als"


def test_save_onto_an_existing_file_at_a_terminal_asks_first(tmp_path):
    (tmp_path / "p.yaml").write_text("diagnosis: mmn\n", encoding="utf-8")
    child = spawn("--save", "p.yaml", cwd=tmp_path)
    assert to_the_end(child) == 1
    assert "p.yaml exists." in child.before + child.after
    child.sendline("n")
    child.expect("Save the case to a file")
    child.sendline("other.yaml")
    child.expect("Saved the result to other.result.json")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert (tmp_path / "p.yaml").read_text(encoding="utf-8") == "diagnosis: mmn\n"
    assert yaml.safe_load((tmp_path / "other.yaml").read_text())["diagnosis"] == "als"

    child = spawn("--save", "p.yaml", cwd=tmp_path)
    assert to_the_end(child) == 1
    child.sendline("y")
    child.expect("Saved the case to p.yaml")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0 and yaml.safe_load((tmp_path / "p.yaml").read_text())["diagnosis"] == "als"


@pytest.mark.parametrize(
    "given, case, result",
    [
        ("ward.v2/p8", "ward.v2/p8", "ward.v2/p8.result.json"),
        ("./p7", "p7", "p7.result.json"),
        ("ward.v2/p9.yaml", "ward.v2/p9.yaml", "ward.v2/p9.result.json"),
    ],
)
def test_the_result_is_saved_beside_the_case(tmp_path, given, case, result):
    (tmp_path / "ward.v2").mkdir()
    (tmp_path / "ward.result.json").write_text("keep me\n", encoding="utf-8")
    run = interview("--save", given, answers="als\n" + UNKNOWNS, cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert yaml.safe_load((tmp_path / case).read_text())["diagnosis"] == "als"
    assert json.loads((tmp_path / result).read_text())["ivig"]["stance"] == "not-effective"
    assert (tmp_path / "ward.result.json").read_text() == "keep me\n" and not (tmp_path / ".result.json").exists()


def test_save_as_json_is_json_that_evaluate_reads(tmp_path, run_cli):
    run = interview("--save", "p.json", answers="als\n" + UNKNOWNS, cwd=tmp_path)
    assert run.returncode == 0
    assert json.loads((tmp_path / "p.json").read_text())["diagnosis"] == "als"
    assert jsonl(run_cli("evaluate", str(tmp_path / "p.json"), "--format", "jsonl").stdout)[0]["status"] == "ok"


@pytest.mark.parametrize("word", ["no", "n", "No"])
def test_no_at_the_save_prompt_saves_nothing(tmp_path, word):
    child = spawn(cwd=tmp_path)
    assert to_the_end(child) == 0
    child.sendline(word)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0 and list(tmp_path.iterdir()) == []


def test_yes_at_the_save_prompt_asks_for_the_name(tmp_path):
    child = spawn(cwd=tmp_path)
    to_the_end(child)
    child.sendline("yes")
    child.expect("File name")
    child.sendline("p.yaml")
    child.expect("Saved the case to p.yaml")
    child.expect(pexpect.EOF)
    assert (tmp_path / "p.yaml").exists() and not (tmp_path / "yes").exists()


def test_a_bad_path_at_the_save_prompt_asks_again(tmp_path):
    child = spawn(cwd=tmp_path)
    to_the_end(child)
    child.sendline("nowhere/p.yaml")
    child.expect("cannot save there: .*nowhere")
    child.expect("Save the case to a file")
    child.sendline("p.yaml")
    child.expect("Saved the case to p.yaml")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0 and "Traceback" not in child.before
    assert yaml.safe_load((tmp_path / "p.yaml").read_text())["diagnosis"] == "als"


def test_the_answers_are_never_lost_when_no_save_works(tmp_path):
    child = spawn(cwd=tmp_path)
    to_the_end(child, "gbs")
    child.sendline("nowhere/p.yaml")
    child.expect("Save the case to a file")
    child.sendeof()
    child.expect("Not saved. The answers, to keep:")
    child.expect("diagnosis: gbs")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0 and list(tmp_path.iterdir()) == []


def test_a_bad_save_option_is_refused_before_any_question(tmp_path):
    run = interview("--save", "nowhere/p.yaml", answers="als\n", cwd=tmp_path)
    assert run.returncode == 2 and "nowhere" in one_line(run.stderr) and "Diagnosis?" not in run.stdout


@pytest.mark.parametrize("name, text", [("empty.yaml", ""), ("empty.jsonl", ""), ("comments.yaml", "# nothing\n")])
def test_resume_of_an_empty_file_names_it(tmp_path, name, text):
    (tmp_path / name).write_text(text, encoding="utf-8")
    run = interview("--resume", name, answers="", cwd=tmp_path)
    assert run.returncode == 2 and name in one_line(run.stderr) and "no case" in run.stderr


def test_resume_of_a_file_with_several_cases_asks_for_an_id(tmp_path):
    (tmp_path / "two.jsonl").write_text(
        '{"id": "p1", "diagnosis": "mmn"}\n{"id": "p2", "diagnosis": "gbs"}\n', encoding="utf-8"
    )
    run = interview("--resume", "two.jsonl", answers="", cwd=tmp_path)
    line = one_line(run.stderr)
    assert run.returncode == 2 and "2 cases" in line and "--id" in line and "p2" in line
    run = interview("--resume", "two.jsonl", "--id", "p2", "--save", "p2.yaml", answers=UNKNOWNS, cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    saved = yaml.safe_load((tmp_path / "p2.yaml").read_text())
    assert saved["id"] == "p2" and saved["diagnosis"] == "gbs"
    run = interview("--resume", "two.jsonl", "--id", "p3", answers="", cwd=tmp_path)
    assert run.returncode == 2 and "p3" in one_line(run.stderr)


# -- 6. exit codes in the help --------------------------------------------------------------


@pytest.mark.parametrize("command", [[], ["evaluate"], ["interview"], ["audit"]])
def test_exit_codes_are_in_the_help(run_cli, command):
    text = " ".join(run_cli(*command, "--help").stdout.split())
    for code in ("0 ", "1 ", "2 ", "70 ", "130", "143"):
        assert code in text, (command, code)


@pytest.mark.parametrize("raw", ["\x7f", "\x85", "\u202e", "\u200b", "\ufeff", "a\x7fb"])
def test_evaluate_jsonl_escapes_what_json_leaves_raw_even_in_an_otherwise_ascii_line(run_cli, tmp_path, raw):
    """json_text returns an all-ASCII line as it is; DEL is ASCII and still escaped."""
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps({"id": f"p{raw}1", "diagnosis": "mmn"}) + "\n")
    out = run_cli("evaluate", str(path), "--format", "jsonl", "-q")
    assert out.exit_code == 0, out.output
    assert raw not in out.stdout
    assert json.loads(out.stdout)["id"] == f"p{raw}1"
