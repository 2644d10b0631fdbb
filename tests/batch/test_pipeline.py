"""Batch evaluation: every case in gives one result out, in order, whatever the
number of workers, the hash seed or the output format; --output is atomic."""

import csv
import io
import json
import os
import re
import subprocess
import sys
import time

import pytest
from helpers import ROOT, jsonl

from ivig_advisor.engine import evaluate_many
from ivig_advisor.engine.batch.pipeline import evaluate_files
from ivig_advisor.engine.output.progress import Progress
from ivig_advisor.engine.output.render import CSV_COLUMNS

GOOD = [
    {"diagnosis": "mmn", "weight_kg": 70},
    {"diagnosis": "gbs", "walks_unaided": False, "age": 70},
    {"diagnosis": "als"},
    {"diagnosis": "myasthenia_gravis", "mg_crisis": True, "weight_kg": 60},
]
BAD_LINES = [
    "not json at all",
    '{"diagnosis": "flu"}',
    '{"diagnosis": "gbs", "age": -3}',
    "[1, 2",
    '{"diagnosis": "cidp", "colour": "blue"}',
]


@pytest.fixture
def mixed(tmp_path):
    """A JSONL export of 300 cases with bad lines and blank lines mixed in, and a YAML file
    with a tag that must never be executed."""
    lines = []
    for i in range(300):
        lines.append(BAD_LINES[i // 7 % len(BAD_LINES)] if i % 7 == 3 else json.dumps(dict(GOOD[i % 4], id=f"c{i}")))
        if i % 50 == 0:
            lines.append("")
    export = tmp_path / "export.jsonl"
    export.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tagged = tmp_path / "tagged.yaml"
    tagged.write_text("diagnosis: !!python/object/apply:os.system ['touch pwned']\n", encoding="utf-8")
    return tmp_path, 300 + 1


def test_every_case_in_gives_one_result_out_in_order(run_cli, mixed):
    folder, expected = mixed
    results = jsonl(run_cli("evaluate", str(folder), "--format", "jsonl", "--quiet").stdout)
    assert len(results) == expected
    ids = [r["id"] for r in results[:-1]]
    assert ids[:3] == ["c0", "c1", "c2"] and ids[3] == "export.jsonl:4"  # the bad line keeps its place
    errors = [r for r in results if r["status"] == "error"]
    assert len(errors) == sum(1 for i in range(300) if i % 7 == 3) + 1
    assert all(r["error"]["message"] and r["source"] for r in errors)
    assert results[-1]["source"].endswith("tagged.yaml") and "python" in results[-1]["error"]["message"]
    assert not (folder / "pwned").exists() and not os.path.exists("pwned")


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "text", "json"])
def test_output_is_identical_for_any_number_of_workers(run_cli, mixed, fmt):
    folder, _ = mixed
    outputs = {
        n: run_cli("evaluate", str(folder), "--format", fmt, "--workers", str(n), "--quiet").stdout for n in (1, 2, 3)
    }
    assert outputs[1] == outputs[2] == outputs[3]
    assert outputs[1].count("c299") == 1


def test_output_is_identical_across_hash_seeds_and_workers(mixed):
    folder, _ = mixed
    runs = set()
    for seed, workers in (("0", "1"), ("1", "2"), ("12345", "2")):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "ivig_advisor.cli",
                "evaluate",
                str(folder),
                "--format",
                "jsonl",
                "--workers",
                workers,
                "--quiet",
            ],
            capture_output=True,
            text=True,
            env=env,
        )
        assert out.returncode == 1 and out.stdout
        runs.add(out.stdout)
    assert len(runs) == 1


def test_the_api_matches_the_cli_for_any_workers(mixed):
    folder, _ = mixed
    one = [r.to_dict() for r in evaluate_files([str(folder)], workers=1)]
    assert [r.to_dict() for r in evaluate_files([str(folder)], workers=2)] == one
    cases = GOOD * 200 + [{"diagnosis": "flu"}]
    serial = [r.to_dict() for r in evaluate_many(cases)]
    assert [r.to_dict() for r in evaluate_many(cases, workers=2)] == serial
    assert [r.to_dict() for r in evaluate_many(iter(cases), workers=None)] == serial  # automatic: a pool
    assert serial[-1]["status"] == "error" and serial[-1]["id"] == f"case:{len(cases)}"


def test_csv_has_one_row_per_case_with_stance_dose_and_warning_codes(run_cli, tmp_path):
    path = tmp_path / "cases.jsonl"
    path.write_text(
        json.dumps({"id": "p1", "diagnosis": "gbs", "walks_unaided": False, "weight_kg": 80, "age": 70}) + "\nbroken\n",
        encoding="utf-8",
    )
    rows = list(csv.DictReader(io.StringIO(run_cli("evaluate", str(path), "--format", "csv").stdout)))
    assert list(rows[0]) == list(CSV_COLUMNS) and len(rows) == 2
    assert rows[0]["stance"] == "first-line" and rows[0]["total_g"] == "160.0" and rows[0]["days"] == "5"
    # this patient's warnings with the review's grade (a later report of harm has none), then the
    # general precautions as one entry; the later evidence shown with the case, by id
    assert rows[0]["warnings"].split(";") == [
        "thrombosis (not-graded)",
        "later-thrombosis-boxed-warning",
        "general-precautions",
    ]
    assert rows[0]["later_evidence"] == "fda-2013-thrombosis-risk"
    assert rows[0]["max_severity"] == "warning"
    assert rows[1]["status"] == "error" and rows[1]["line"] == "2" and "not valid JSON" in rows[1]["error"]


def test_output_file_is_written_whole_or_not_at_all(run_cli, tmp_path, monkeypatch):
    out = tmp_path / "results.jsonl"
    done = run_cli("evaluate", str(ROOT / "examples"), "--format", "jsonl", "--output", str(out))
    examples = len(list((ROOT / "examples").glob("*.yaml")))
    assert done.exit_code == 0 and done.stdout == "" and len(jsonl(out.read_text())) == examples
    before = out.read_text()

    from ivig_advisor.engine.output import render

    real = render.ResultWriter.write

    def crash_midway(self, result):
        if self.count == 5:
            raise RuntimeError("disk on fire")
        real(self, result)

    monkeypatch.setattr(render.ResultWriter, "write", crash_midway)
    crashed = run_cli("evaluate", str(ROOT / "examples"), "--format", "jsonl", "--output", str(out))
    assert crashed.exit_code == 70 and "internal error (RuntimeError: disk on fire)" in crashed.stderr
    assert out.read_text() == before, "the old file is untouched"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.jsonl"], "no temporary file left"


def test_summary_on_stderr_and_quiet_silences_it(run_cli, mixed):
    folder, _ = mixed
    loud = run_cli("evaluate", str(folder), "--format", "jsonl")
    assert re.match(r"301 cases: 257 ok, 44 errors, \d+ with a CRITICAL warning; ", loud.stderr), loud.stderr
    assert "first-line" in loud.stderr and "\r" not in loud.stderr  # no progress line off a terminal
    assert run_cli("evaluate", str(folder), "--format", "jsonl", "--quiet").stderr == ""


def test_progress_counts_and_wipes_itself():
    stream = io.StringIO()
    progress = Progress(stream, delay=0, every=0)

    class R:
        ok = False
        critical = ()

    for _ in range(3):
        progress.add(R())
    progress.close()
    text = stream.getvalue()
    assert "3 cases" in text and "3 errors" in text and "0 critical" in text and text.endswith("\r")
    assert "%" not in text and "left" not in text  # no size given: no share, no time left
    assert text.rstrip("\r").endswith(" " * len(text.split("\r")[-2]))  # wiped whole


def test_progress_shows_the_share_of_the_input_read_and_the_time_left(monkeypatch):
    from ivig_advisor.engine.output import progress

    clock = iter([100.0, 110.0, 110.0])
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    stream = io.StringIO()
    shown = Progress(stream, delay=0, every=0, total=4_000, done=lambda: 1_000)

    class R:
        ok = True
        critical = ("renal-failure",)

    shown.add(R())  # 10 s for a quarter of the input: 30 s left
    assert stream.getvalue() == "\r  1 case  25%  0:30 left  0/s  0 errors  1 critical"


def test_dask_bag_gives_what_ivig_evaluate_gives(mixed, run_cli):
    dask = pytest.importorskip("dask")
    import dask.bag as db

    from ivig_advisor.engine.batch.dask_bag import evaluate_bag

    folder, _ = mixed
    export = str(folder / "export.jsonl")
    expected = jsonl(run_cli("evaluate", export, "--format", "jsonl", "--quiet").stdout)
    bag = db.read_text([export], blocksize=None, include_path=True)
    with dask.config.set(scheduler="processes", num_workers=2):
        assert evaluate_bag(bag).compute() == expected


def test_a_long_batch_shows_progress_on_a_terminal(tmp_path):
    """In a real pseudo-terminal: a counter while it runs, wiped before the summary. The cases
    are typed at the terminal, a few a second, so the batch lasts as long as the test wants
    whatever the machine's speed (a file of cases can end before the 1-second silence)."""
    pexpect = pytest.importorskip("pexpect")
    child = pexpect.spawn(
        sys.executable,
        [
            "-m",
            "ivig_advisor.cli",
            "evaluate",
            "-",
            "--format",
            "jsonl",
            # one worker: the automatic choice waits for 512 cases first
            "--output",
            str(tmp_path / "out.jsonl"),
            "--workers",
            "1",
        ],
        encoding="utf-8",
        timeout=60,
        env=dict(os.environ, NO_COLOR="1"),
    )
    child.setecho(False)
    for i in range(12):
        child.sendline(json.dumps(dict(GOOD[i % 4], id=f"c{i}")))
        time.sleep(0.25)
    # standard input is a terminal, whose size says nothing: no share, no time left
    child.expect(r"\r  [\d,]+ cases  [\d,]+/s  0 errors  \d+ critical")
    child.sendeof()
    child.expect("12 cases: 12 ok, 0 errors")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 12


def test_progress_follows_the_bytes_read_to_the_end_of_the_input(tmp_path):
    """The share on the progress line is the bytes read of the input's size (files, or standard
    input redirected from one), rising to 100% at the end."""
    from ivig_advisor.engine import Advisor
    from ivig_advisor.engine.batch.pipeline import write_results
    from ivig_advisor.engine.output.render import Formatter

    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    for path, count in ((first, 300), (second, 100)):
        path.write_text(
            "".join(json.dumps(dict(GOOD[i % 4], id=f"c{i}")) + "\n" for i in range(count)), encoding="utf-8"
        )
    for inputs, stdin_from in (([str(first), str(second)], os.devnull), (["-"], first)):
        shown = io.StringIO()
        progress = Progress(shown, delay=0, every=0)  # a line drawn for every result
        with open(stdin_from, encoding="utf-8") as stdin:
            write_results(inputs, Advisor(), io.StringIO(), Formatter("jsonl"), stdin=stdin, progress=progress)
        shares = [int(m) for m in re.findall(r"  (\d+)%", shown.getvalue())]
        assert shares == sorted(shares) and shares[0] < 100 and shares[-1] == 100, shares


def test_write_results_is_the_evaluate_command_as_a_library_call(tmp_path):
    """`ivig evaluate` is parsing and rendering over batch.write_results: the same
    bytes come out of the library, and the Summary counts what was written."""
    import io

    from click.testing import CliRunner

    from ivig_advisor.cli import main
    from ivig_advisor.engine import Advisor
    from ivig_advisor.engine.batch.pipeline import write_results
    from ivig_advisor.engine.output.render import Formatter

    (tmp_path / "cases.jsonl").write_text(
        '{"id": "a", "diagnosis": "mmn"}\n{"id": "b", "diagnosis": "mnn"}\n{"id": "c", "diagnosis": "als"}\n',
        encoding="utf-8",
    )
    stream = io.StringIO()
    summary = write_results([str(tmp_path / "cases.jsonl")], Advisor(), stream, Formatter("json"))
    assert (summary.statuses["ok"], summary.statuses["error"], summary.failed) == (2, 1, True)
    assert [r["id"] for r in json.loads(stream.getvalue())] == ["a", "b", "c"]
    cli = CliRunner().invoke(main, ["evaluate", "-q", "--format", "json", str(tmp_path / "cases.jsonl")])
    assert cli.exit_code == 1 and cli.stdout == stream.getvalue()


def _worker_cache(result, rulebase):
    """Runs in a worker: the size of the cache its Advisor keeps (0: none)."""
    from ivig_advisor.engine.batch import pool

    situations = pool._worker_advisor.situations
    return situations.maxsize if situations is not None else 0


def test_workers_keep_the_situation_cache_of_the_advisor_they_serve():
    """An empty cache must not read as 'no cache' (the bench found workers running without one)."""
    from ivig_advisor.engine import Advisor
    from ivig_advisor.engine.batch.pipeline import evaluate_records
    from ivig_advisor.engine.io.record import CaseRecord

    records = [CaseRecord({"diagnosis": "mmn"}, None, None, f"c{i}") for i in range(130)]
    for advisor, expected in (
        (Advisor(), Advisor().situations.maxsize),
        (Advisor(cache=100), 100),
        (Advisor(cache=0), 0),
    ):
        assert set(evaluate_records(records, advisor, workers=2, finish=_worker_cache)) == {expected}


def _where(result, rulebase):
    """Runs in a worker: which worker evaluated the case."""
    return os.getpid(), result.id


def _records(diagnoses):
    from ivig_advisor.engine.io.record import CaseRecord

    return [CaseRecord({"diagnosis": d, "id": f"c{i}"}, None, None, f"c{i}") for i, d in enumerate(diagnoses)]


def test_the_cases_of_one_diagnosis_go_to_one_worker_so_each_learns_only_its_situations():
    import random

    from ivig_advisor.engine.batch.pipeline import evaluate_records

    diagnoses = ["gbs", "mmn"] * 200
    random.Random(7).shuffle(diagnoses)
    out = list(evaluate_records(_records(diagnoses), workers=2, finish=_where))
    assert [case_id for _, case_id in out] == [f"c{i}" for i in range(400)]
    workers = {d: {pid for (pid, _), x in zip(out, diagnoses) if x == d} for d in ("gbs", "mmn")}
    assert len(workers["gbs"]) == len(workers["mmn"]) == 1 and workers["gbs"] != workers["mmn"]


def test_a_batch_of_one_diagnosis_still_keeps_every_worker_busy():
    """One diagnosis, each case a situation of its own (all work, no cache hit):
    the home worker falls behind and passes cases on, so both work."""
    from ivig_advisor.engine.batch.pipeline import evaluate_records
    from ivig_advisor.engine.io.record import CaseRecord

    flags = (
        "diabetes",
        "migraine",
        "renal_disease",
        "thrombocytosis",
        "refractory",
        "hypergammaglobulinemia",
        "thrombocytopenia",
        "volume_depletion",
        "iga_deficiency",
    )
    records = [
        CaseRecord(
            {
                "diagnosis": "cidp",
                "id": f"c{i}",
                "ivig_planned": True,
                "age": 20 + (i & 1) * 60,
                **{name: bool(i >> bit & 1) for bit, name in enumerate(flags, start=1)},
            },
            None,
            None,
            f"c{i}",
        )
        for i in range(1000)
    ]
    out = list(evaluate_records(records, workers=2, finish=_where))
    assert [case_id for _, case_id in out] == [f"c{i}" for i in range(1000)]
    shares = sorted(sum(pid == p for pid, _ in out) for p in {pid for pid, _ in out})
    assert len(shares) == 2 and shares[0] >= 100, shares  # without passing on: [0, 1000]


def test_a_rare_diagnosis_whose_chunk_never_fills_does_not_hold_the_batch_back(monkeypatch):
    from ivig_advisor.engine.batch import pool
    from ivig_advisor.engine.batch.pipeline import evaluate_records

    monkeypatch.setattr(pool._Router, "SPILL", 10**9)  # no spilling: the als worker's chunk stays short
    diagnoses = ["gbs"] * 3000
    for i in (1, 700, 2999):
        diagnoses[i] = "als"
    results = evaluate_records(_records(diagnoses), workers=2, finish=_where)
    assert [case_id for _, case_id in results] == [f"c{i}" for i in range(3000)]


def _misses(result, rulebase):
    """Runs in a worker: which worker, how many runs its cache has missed so far, and the result."""
    from ivig_advisor.engine.batch import pool
    from ivig_advisor.engine.output.render import to_json

    return os.getpid(), pool._worker_advisor.situations.misses, to_json(result)


def test_a_situation_one_worker_learnt_is_not_run_again_by_another(monkeypatch):
    """What a worker learns goes to the others with their next chunk: the first 512 cases (8 chunks,
    all in flight before any result is taken) go to one worker, the rest to the other, which then
    answers the same situation from what the first learnt, and the same as a run would."""
    import itertools

    from ivig_advisor.engine.batch import pool
    from ivig_advisor.engine.batch.pipeline import evaluate_records
    from ivig_advisor.engine.io.record import CaseRecord

    sent = itertools.count()
    monkeypatch.setattr(pool._Router, "worker_for", lambda self, record: 0 if next(sent) < 512 else 1)
    case = {"diagnosis": "cidp", "ivig_planned": True, "age": 70, "diabetes": True, "weight_kg": 80}
    records = [CaseRecord(dict(case, id=f"c{i}", weight_kg=60 + i % 40), None, None, f"c{i}") for i in range(640)]
    out = list(evaluate_records(records, workers=2, finish=_misses))
    misses = {}
    for pid, missed, _ in out:
        misses[pid] = max(misses.get(pid, 0), missed)
    assert len(misses) == 2 and sorted(misses.values()) == [0, 1], misses  # without sharing: [1, 1]
    from ivig_advisor.engine.output.render import to_json

    alone = list(evaluate_records(records, workers=1, finish=lambda result, _: to_json(result)))
    assert [text for _, _, text in out] == alone


def test_what_waits_for_a_worker_is_bounded_and_forgets_the_oldest(monkeypatch):
    from ivig_advisor.engine.batch import pool

    monkeypatch.setattr(pool, "LEARNT_WAITING", 10)
    waiting = pool._Learnt()
    for blob in (b"aaaa", b"bbbb", b"cccc", b"dd"):
        waiting.add(blob)
    assert waiting.size == 10 and waiting.take() == [b"bbbb", b"cccc", b"dd"]
    assert waiting.take() == [] and waiting.size == 0


# -- every result is tied to the rules it ran on -----------------------------------------


def test_every_result_carries_the_rules_version_and_content_hash(run_cli, mixed, rules_copy, tmp_path):
    """ok and error results alike, in JSON Lines and CSV; the hash is the rules'
    content (the same in another process, another for any edit), so that an old
    result can be tied to the rules that produced it and re-run on them."""
    from helpers import mutate

    from ivig_advisor.engine import RuleBase

    folder, _ = mixed
    export = str(folder / "export.jsonl")
    results = jsonl(run_cli("evaluate", export, "--format", "jsonl", "-q", "-j", "2").stdout)
    stamp = RuleBase.load().stamp
    assert {r["status"] for r in results} == {"ok", "error"}
    assert all(r["rules"] == stamp for r in results)
    assert stamp["version"] == RuleBase.load().manifest["version"] and len(stamp["hash"]) == len("sha256:") + 16
    rows = list(csv.DictReader(io.StringIO(run_cli("evaluate", export, "--format", "csv", "-q").stdout)))
    assert {(r["rules_version"], r["rules_hash"]) for r in rows} == {(stamp["version"], stamp["hash"])}

    same = RuleBase.load(rules_copy).stamp["hash"]
    assert same == stamp["hash"], "the same content, wherever it is, is the same rules"
    mutate(rules_copy / "mmn.yaml", "title:", "title: (edited)")  # words only: another content
    edited = RuleBase.load(rules_copy).stamp["hash"]
    assert edited != stamp["hash"]
    again = subprocess.run(
        [
            sys.executable,
            "-c",
            "from ivig_advisor.engine import RuleBase; import sys; print(RuleBase.load(sys.argv[1]).stamp['hash'])",
            str(rules_copy),
        ],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONHASHSEED="7"),
    )
    assert again.stdout.strip() == edited
    schema = tmp_path / "case.yaml"
    schema.write_text((ROOT / "facts" / "case.yaml").read_text(encoding="utf-8") + "\n# edited\n", encoding="utf-8")
    from ivig_advisor.engine.core.schema import CaseSchema

    assert RuleBase.load(schema=CaseSchema.load(schema)).stamp["hash"] != stamp["hash"], "the mapping counts too"


def test_a_pooled_run_ends_without_noise_on_stderr():
    """The pool is shut down joined: Python 3.11 otherwise writes 'Exception ignored
    ... Bad file descriptor' at exit, into the stderr a pipeline reads."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "ivig_advisor.cli",
            "evaluate",
            str(ROOT / "examples"),
            str(ROOT / "tests" / "cases"),
            "-j",
            "2",
            "--format",
            "jsonl",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0
    assert done.stderr.count("\n") == 1 and done.stderr.startswith(f"{len(jsonl(done.stdout))} cases: "), done.stderr


def test_a_pooled_batch_joins_its_pools_before_it_returns():
    """No pool's manager thread outlives the batch (one let go unjoined is what
    makes Python 3.11 write to a closed pipe at exit)."""
    import threading
    from concurrent.futures.process import _ExecutorManagerThread

    from ivig_advisor.engine.batch.pipeline import evaluate_records

    assert len(list(evaluate_records(_records(["gbs", "mmn"] * 100), workers=2))) == 200
    assert not [t for t in threading.enumerate() if isinstance(t, _ExecutorManagerThread) and t.is_alive()]


def test_text_and_csv_say_what_was_read_from_another_spelling(run_cli, tmp_path):
    """What JSON lists under `normalised`, a person and a spreadsheet see too."""
    case = tmp_path / "mg.yaml"
    case.write_text("diagnosis: MG\nweight_kg: 70 kg\nplanned_cotherapy: none\n", encoding="utf-8")
    said = "diagnosis: MG -> myasthenia_gravis; weight_kg: 70 kg -> 70; planned_cotherapy: none -> []"
    assert f"  Read as: {said}" in run_cli("evaluate", str(case)).output
    row = next(csv.DictReader(io.StringIO(run_cli("evaluate", str(case), "--format", "csv", "-q").stdout)))
    assert row["normalised"] == said
    plain = tmp_path / "plain.yaml"
    plain.write_text("diagnosis: myasthenia_gravis\nweight_kg: 70\n", encoding="utf-8")
    assert "Read as" not in run_cli("evaluate", str(plain)).output
