"""Benchmark of batch evaluation: per-case cost, worker scaling, memory, start-up.

    python bench/bench.py            # the figures the README quotes (a few minutes)
    python bench/bench.py --quick    # smaller batches, for a first look

Targets (issue 6): per-disease engines cost at most half of one engine with
every rule; 2 workers at least 1.8x one; peak memory the same for 10k and
200k cases; `ivig --help` and `ivig --version` under 150 ms. Each line says
whether its target is met, and by how much it misses if not.
"""

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ivig_advisor.engine import Advisor, RuleBase
from ivig_advisor.engine.verify import domains

IVIG = [sys.executable, "-m", "ivig_advisor.cli"]


def synthetic_cases(n, seed=2004):
    """Cases drawn over the values the rules distinguish, with weights; about 1 in 50 invalid."""
    rulebase = RuleBase.load()
    space = domains(rulebase)
    rnd = random.Random(seed)
    diagnoses = [d for d in space["diagnosis"] if d is not None]
    for i in range(n):
        case = {name: rnd.choice(values) for name, values in space.items()}
        case["diagnosis"] = rnd.choice(diagnoses)
        case["weight_kg"] = rnd.randint(30, 120)
        case["id"] = f"case-{i}"
        if case.get("needs_ventilation"):
            case["walks_unaided"] = False
        if i % 50 == 49:
            case["age"] = -1  # an invalid case: an error result, not a crash
        yield {k: list(v) if isinstance(v, tuple) else v for k, v in case.items() if v is not None}


def write_jsonl(path, n):
    with open(path, "w", encoding="utf-8") as out:
        for case in synthetic_cases(n):
            out.write(json.dumps(case) + "\n")


def per_case_ms(advisor, cases):
    for case in cases[:200]:  # warm: engines compiled, caches filled
        advisor.evaluate(case)
    start = time.perf_counter()
    for case in cases:
        advisor.evaluate(case)
    return (time.perf_counter() - start) * 1000 / len(cases)


def run_batch(path, workers):
    """Wall time and peak RSS (largest process: the reader or a worker) of one `ivig evaluate`."""
    probe = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
             "subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, check=False); "
             "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", probe, *IVIG, "evaluate", str(path), "--format", "jsonl",
                          "--quiet", "--workers", str(workers)], capture_output=True, text=True, check=True)
    seconds, kib = out.stdout.split()
    return float(seconds), int(kib) / 1024


def startup_ms(args, runs=7):
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([*IVIG, *args], stdout=subprocess.DEVNULL, check=True)
        best = min(best, time.perf_counter() - start)
    return best * 1000


def verdict(ok, miss):
    return "meets target" if ok else f"MISSES target by {miss}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller batches")
    args = parser.parse_args()
    small, large, scaling, inproc = (2_000, 20_000, 4_000, 1_000) if args.quick else (10_000, 200_000, 20_000, 5_000)
    os.environ.setdefault("PYTHONHASHSEED", "0")

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, {platform.system()} {platform.release()}")
    rulebase = RuleBase.load()
    whole, split = Advisor(rulebase, per_disease=False), Advisor(rulebase)
    cases = [whole.validate(c) for c in synthetic_cases(inproc) if c.get("age", 0) >= 0]
    naive, ours = per_case_ms(whole, cases), per_case_ms(split, cases)
    print(f"per case, one engine with all {len(rulebase.rules)} rules: {naive:.2f} ms")
    print(f"per case, one engine per diagnosis:          {ours:.2f} ms  = {ours / naive:.2f} of it; "
          + verdict(ours <= naive / 2, f"{ours / naive - 0.5:.2f}"))

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "scaling.jsonl"
        write_jsonl(path, scaling)
        one, _ = run_batch(path, 1)
        two, _ = run_batch(path, 2)
        print(f"{scaling:,} cases, 1 worker: {one:.1f} s ({scaling / one:,.0f}/s); 2 workers: {two:.1f} s "
              f"({scaling / two:,.0f}/s) = {one / two:.2f}x; " + verdict(one / two >= 1.8, f"{1.8 - one / two:.2f}x"))
        peaks = []
        for n in (small, large):  # the default: as many workers as cores
            path = Path(tmp) / f"{n}.jsonl"
            write_jsonl(path, n)
            seconds, mib = run_batch(path, os.cpu_count())
            peaks.append(mib)
            print(f"{n:,} cases, {os.cpu_count()} workers: {seconds:.1f} s ({n / seconds:,.0f}/s), "
                  f"peak RSS {mib:.0f} MiB")
            path.unlink()
        growth = peaks[1] / peaks[0] - 1
        print(f"  peak memory {small:,} -> {large:,} cases: {growth:+.1%}; "
              + verdict(abs(growth) <= 0.05, f"{abs(growth) - 0.05:.1%} over a 5% tolerance"))

    for what in (["--help"], ["--version"]):
        ms = startup_ms(what)
        print(f"ivig {what[0]}: {ms:.0f} ms; " + verdict(ms < 150, f"{ms - 150:.0f} ms"))


if __name__ == "__main__":
    main()
