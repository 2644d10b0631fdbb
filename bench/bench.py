"""Benchmark of batch evaluation: per-case cost, the situation cache, worker scaling, memory, start-up.

    python bench/bench.py            # the figures the README quotes (about 50 minutes on 2 cores)
    python bench/bench.py --quick    # 1k and 4k cases only, one round, for a first look (about 2 minutes)
    python bench/bench.py --rounds 3 # more rounds: a ratio less at the mercy of the machine's drift

One run, on the same generated cases, measures through the real CLI
(`python -m ivig_advisor.cli evaluate FILE --format jsonl -q -j N [--no-cache]`,
output to a file): wall time, cases/s and ms/case with 1 and 2 workers at 1k,
10k and 100k cases, cache on and off. Each configuration runs once per round,
and the rounds alternate their order (ABBA: off, on, on, off): a machine whose
speed drifts slows both sides of a ratio alike. A configuration's time is its
mean over the rounds; a ratio is given with each round's own, so their spread
shows how far one run can be trusted. Also measured: the peak memory of the whole process
tree (sum of the RSS of the command and its workers, sampled from /proc every
50 ms) and of its largest single process (RSS sampled, and the kernel's VmHWM);
the sha256 of every output. In process, an `Advisor()` over the same cases
gives the cache's hit rate. Then the worst case for the cache: cases drawn
uniformly over the fact space, almost every one a new situation (5k cases,
one worker, cache on and off, in at least WORST_ROUNDS alternating rounds).

Targets, each line saying whether it is met and by how much it misses if not:
issue 13: at 100k cases one worker with the cache at least 3x the cache-off
throughput; memory per worker under 64 MiB; output byte-identical with the
cache on and off (a difference is reported loudly with its first differing
line, and the run exits 1); two workers at least 1.8x one at 10k cases and
above. Issue 6: per-disease engines cost at most half of one engine with
every rule; peak memory per process flat (5%) between the two largest batches
with the cache off; `ivig --help` and `ivig --version` under 150 ms.

The matchers (issue 31): when `ivig evaluate` takes --matcher, every CLI run above is made with
each matcher (`--matchers`, default rete and compiled), in the same alternating rounds, and the
targets above are given for each. Then: at the largest size, the compiled matcher at least 3x
experta's Rete (the matcher before issue 31) with the cache off, and faster than it with the
cache on; the output byte-identical between the matchers, at every size, 1 and 2 workers, cache
on and off, and in the worst case. The service's p99 is bench_service.py's to measure;
the miss path in process against CLIPS is bench/clips.py's.
"""

import argparse
import hashlib
import inspect
import itertools
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from ivig_advisor.engine import Advisor, CaseInvalid, RuleBase
from ivig_advisor.engine.core.analysis import domains

IVIG = [sys.executable, "-m", "ivig_advisor.cli"]
SIZES, QUICK_SIZES = (1_000, 10_000, 100_000), (1_000, 4_000)
WORKERS = (1, 2)
MIB = 1024 * 1024
MATCHERS = ("rete", "compiled")  # issue 31: experta's own matcher (the reference) and ours
WORST_ROUNDS = 3  # rounds of the worst case at least (5k cases: half a minute a run)

# The ranges numbers are drawn from (a real batch's spread, not only the rules' cut values);
# a number field not named here is drawn over its schema range.
NUMBER_RANGES = {"age": (1, 100), "weight_kg": (30, 120)}
# How often each diagnosis comes up in a batch (relative; one not named: 1).
DIAGNOSES = {
    "cidp": 25,
    "gbs": 20,
    "myasthenia_gravis": 15,
    "mmn": 10,
    "paraproteinemic_neuropathy": 5,
    "dermatomyositis": 5,
    "multiple_sclerosis": 4,
    "miller_fisher": 3,
    "polymyositis": 3,
    "inclusion_body_myositis": 3,
    "lems": 2,
    "stiff_person_syndrome": 2,
}
# How often a recorded yes/no field is yes (one not named: 1 in 2). Risk factors are uncommon.
YES = {
    "iga_deficiency": 0.01,
    "anti_iga_antibodies": 0.01,
    "renal_disease": 0.10,
    "volume_depletion": 0.05,
    "migraine": 0.12,
    "diabetes": 0.15,
    "thrombocytopenia": 0.03,
    "thrombocytosis": 0.02,
    "hypergammaglobulinemia": 0.03,
    "ivig_planned": 0.80,
    "refractory": 0.30,
    "needs_ventilation": 0.15,
    "walks_unaided": 0.30,
    "plasma_exchange_available": 0.60,
}
UNKNOWN = 0.02  # a field the case's diagnosis's rules read is left blank (unknown) this often
STRAY = 0.03  # a field only other diagnoses' rules read is filled in anyway this often
LIST_ITEM = 0.15  # each item of a list field (planned co-therapy) is there this often
INVALID = (  # every 50th case is invalid, in one of these ways, in turn
    lambda case: case.update(age=-1),  # out of range
    lambda case: case.update(diagnosis="scurvy"),  # not a value of the enum
    lambda case: case.update(weight_kg="heavy"),  # not a number
    lambda case: case.update(needs_ventilation=True, walks_unaided=True),  # breaks a constraint
    lambda case: case.pop("diagnosis"),  # a required field missing
)


# -- the cases -----------------------------------------------------------------


def synthetic_cases(n, seed=2004, uniform=False):
    """Cases like a real batch's, deterministic for a seed; 1 in 50 invalid.

    A diagnosis drawn by how common it is (DIAGNOSES); the fields its rules
    read (its engine's situation key) recorded 49 times in 50, with uncommon risk
    factors (YES); the fields only other diagnoses' rules read seldom filled
    in; numbers across their ranges (age 1-100, weight 30-120 kg, some with a
    decimal), not only at the rules' cut values. Weight and sex, which no rule
    tests, are there too (weight gives the grams of a dose).

    `uniform`: every tested field drawn uniformly over the fact space
    (analysis.domains, unknown included), numbers still across their ranges:
    the worst case for the situation cache, almost every case a new situation.
    """
    rulebase = RuleBase.load()
    fields, space = rulebase.schema.fields, domains(rulebase)
    rnd = random.Random(seed)
    diagnoses = [d for d in space["diagnosis"] if d is not None]
    weights = [1 if uniform else DIAGNOSES.get(d, 1) for d in diagnoses]
    reads = _fields_read(rulebase, diagnoses)
    for i in range(n):
        diagnosis = rnd.choices(diagnoses, weights)[0]
        case = {"id": f"case-{i}", "diagnosis": diagnosis}
        for name, values in space.items():
            if name == "diagnosis":
                continue
            spec = fields[name]
            if uniform:
                unknown = rnd.random() < 1 / len(values)  # as often as the fact space has it
            else:
                unknown = rnd.random() < (UNKNOWN if name in reads[diagnosis] else 1 - STRAY)
            if unknown:
                continue
            if spec.type in ("number", "integer"):
                case[name] = _number(rnd, name, spec)
            elif uniform:
                case[name] = rnd.choice([v for v in values if v is not None])
            elif spec.type == "boolean":
                case[name] = rnd.random() < YES.get(name, 0.5)
            elif spec.type == "list":
                case[name] = [v for v in spec.values if rnd.random() < LIST_ITEM]
            else:
                case[name] = rnd.choice([v for v in values if v is not None])
        if rnd.random() >= 0.05:
            case["weight_kg"] = _number(rnd, "weight_kg", fields["weight_kg"])
        sex = rnd.choice(["female", "male", "female", "male", "other", None])
        if sex:
            case["sex"] = sex
        if case.get("needs_ventilation"):
            case["walks_unaided"] = False
        case = {k: list(v) if isinstance(v, tuple) else v for k, v in case.items()}
        if i % 50 == 49:
            INVALID[(i // 50) % len(INVALID)](case)
        yield case


_READS = {}


def valid_cases(advisor, n, uniform=False) -> list:
    """The bench's generated cases (synthetic_cases), validated by `advisor`: the invalid 1 in 50 left out."""
    out = []
    for data in synthetic_cases(n, uniform=uniform):
        try:
            out.append(advisor.validate(data))
        except CaseInvalid:
            pass
    return out


def _fields_read(rulebase, diagnoses):
    """For each diagnosis, the case fields the rules of its engine read (its situations' key)."""
    if not _READS:
        advisor = Advisor(rulebase)
        for d in diagnoses:
            advisor.situation({"diagnosis": d})  # builds the engine of d and its Keyer
            _READS[d] = set(advisor.keyers[d].names)
    return _READS


def _number(rnd, name, spec):
    low, high = NUMBER_RANGES.get(
        name, (spec.min if spec.min is not None else 0, spec.max if spec.max is not None else 100)
    )
    value = rnd.randint(int(low), int(high))
    if spec.type == "number" and rnd.random() < 0.3:
        value = min(high, round(value + rnd.random(), 1))
    return value


def write_jsonl(path, n, uniform=False):
    with open(path, "w", encoding="utf-8") as out:
        for case in synthetic_cases(n, uniform=uniform):
            out.write(json.dumps(case) + "\n")


# -- in process ----------------------------------------------------------------


def has_cache():
    """Whether this build's Advisor has the situation cache (issue 13)."""
    return "cache" in inspect.signature(Advisor).parameters


def cli_has_no_cache():
    """Whether this build's `ivig evaluate` takes --no-cache."""
    out = subprocess.run([*IVIG, "evaluate", "--help"], capture_output=True, text=True, check=True)
    return "--no-cache" in out.stdout


def cli_has_matcher():
    """Whether this build's `ivig evaluate` takes --matcher (issue 31)."""
    out = subprocess.run([*IVIG, "evaluate", "--help"], capture_output=True, text=True, check=True)
    return "--matcher" in out.stdout


def with_matcher(label, matcher):
    """A label naming the matcher too, when the runs name one."""
    return f"{label}, matcher {matcher}" if matcher else label


def make_advisor(rulebase=None, per_disease=True, cache=None, matcher=None):
    """An Advisor; cache=0 is an Advisor without the cache, also on a build that has none;
    `matcher` (None: the build's default) only on a build whose Advisor takes one."""
    extra = {} if matcher is None else {"matcher": matcher}
    if cache is None:
        return Advisor(rulebase, per_disease=per_disease, **extra)
    if not has_cache():
        if cache:
            raise RuntimeError("this build has no situation cache")
        return Advisor(rulebase, per_disease=per_disease, **extra)
    return Advisor(rulebase, per_disease=per_disease, cache=cache, **extra)


def has_advisor_matcher() -> bool:
    """Whether this build's Advisor takes `matcher` (issue 31)."""
    return "matcher" in inspect.signature(Advisor).parameters


def per_case_ms(advisor, cases):
    for case in cases[:200]:  # warm: engines compiled, caches filled
        advisor.evaluate(case)
    start = time.perf_counter()
    for case in cases:
        advisor.evaluate(case)
    return (time.perf_counter() - start) * 1000 / len(cases)


def unbounded_cache(n, uniform):
    """(hits, valid cases) of a cache that forgets nothing over n generated cases: the most any can hit."""
    advisor, valid = Advisor(cache=10**9), 0
    for i, case in enumerate(synthetic_cases(n, uniform=uniform)):
        valid += advisor.evaluate_mapping(case, default_id=f"case:{i + 1}").ok
    return advisor.situations.hits, valid


def cache_in_process(sizes):
    """An `Advisor()` (the default cache) over the cases the CLI runs read, in one pass over the
    largest batch (the first n cases of it are the n-case batch): at each size, hits, misses, time."""
    advisor = Advisor()
    errors, seconds = 0, 0.0
    for i, case in enumerate(synthetic_cases(max(sizes))):
        start = time.perf_counter()
        result = advisor.evaluate_mapping(case, default_id=f"case:{i + 1}")
        seconds += time.perf_counter() - start
        errors += result.status == "error"
        if i + 1 in sizes:
            cache = advisor.situations
            yield (
                {
                    "n": i + 1,
                    "seconds": seconds,
                    "hits": cache.hits,
                    "misses": cache.misses,
                    "size": len(cache),
                    "maxsize": cache.maxsize,
                    "errors": errors,
                }
            )


# -- through the CLI -------------------------------------------------------------

PAGE = os.sysconf("SC_PAGE_SIZE")


class TreeSampler(threading.Thread):
    """Samples the memory of a process and all its descendants from /proc every `interval` seconds.

    Finding the descendants means reading every process's stat (about 1.5 ms), so
    the tree is looked for again only every `rescan` seconds (a batch starts its
    workers at once); sampling the tree found costs a tenth of that. Scanning
    all of /proc every 20 ms took an eighth of a core, which the workers of a
    2-worker run need."""

    def __init__(self, root, interval=0.05, rescan=0.5):
        super().__init__(daemon=True)
        self.root, self.interval, self.rescan = root, interval, rescan
        self.stop = threading.Event()
        self.tree_peak = 0  # the largest sum of RSS over the tree at one sample
        self.process_peak = 0  # the largest RSS of any single process at one sample
        self.hwm = 0  # the largest VmHWM (the kernel's peak RSS of a process) seen
        self.pids, self.samples = set(), 0

    def run(self):
        tree, scanned = [self.root], -float("inf")
        while not self.stop.is_set():
            if time.monotonic() - scanned >= self.rescan:
                tree, scanned = _descendants(self.root), time.monotonic()
            memory = {pid: _memory(pid) for pid in tree}
            memory = {pid: m for pid, m in memory.items() if m}
            self.pids |= set(memory)
            self.tree_peak = max(self.tree_peak, sum(rss for rss, _ in memory.values()))
            self.process_peak = max([self.process_peak, *(rss for rss, _ in memory.values())])
            self.hwm = max([self.hwm, *(hwm for _, hwm in memory.values())])
            self.samples += 1
            self.stop.wait(self.interval)


def _descendants(root):
    children = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as f:
                    stat = f.read()
            except OSError:
                continue
            ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, ()))
    return out


def _memory(pid):
    """(RSS, VmHWM) of a process in bytes; None once it has gone (or is a zombie)."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            status = f.read()
    except OSError:
        return None
    found = {}
    for line in status.splitlines():
        if line.startswith((b"VmRSS:", b"VmHWM:")):
            key, value = line.split(b":")
            found[key] = int(value.split()[0]) * 1024
    return (found[b"VmRSS"], found[b"VmHWM"]) if len(found) == 2 else None


def run_cli(path, workers, cache, output, matcher=None):
    """One `ivig evaluate` of `path` into `output`: wall time, memory, the output's sha256.
    `matcher`: passed as --matcher (None: the CLI's own choice, no option given)."""
    command = [*IVIG, "evaluate", str(path), "--format", "jsonl", "-q", "-j", str(workers)]
    if not cache and CLI_NO_CACHE:
        command.append("--no-cache")
    if matcher:
        command += ["--matcher", matcher]
    with open(output, "wb") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.PIPE)
        sampler = TreeSampler(proc.pid)
        sampler.start()
        _, status = os.waitpid(proc.pid, 0)
        seconds = time.perf_counter() - start
        sampler.stop.set()
        sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    stderr = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    if proc.returncode not in (0, 1):  # 1: some cases are invalid, on purpose
        raise RuntimeError(f"{' '.join(command)} exited {proc.returncode}:\n{stderr}")
    return {
        "seconds": seconds,
        "tree": sampler.tree_peak / MIB,
        "process": sampler.process_peak / MIB,
        "hwm": sampler.hwm / MIB,
        "processes": len(sampler.pids),
        "samples": sampler.samples,
        "sha256": sha256(output),
    }


def alternate(path, n, configurations, rounds, tmp, label):
    """Run each (workers, cache, matcher) of `configurations` on `path` once per round, the order
    reversed every other round (ABBA), printing a row per run. Returns (rows, outputs,
    failures): per configuration, its row with the mean time, each round's time and the
    largest memory of any round; its first output (a repeat's output, once compared with
    it, is removed); and how many repeats gave other bytes than the first."""
    outputs, tries, failures = {}, {c: [] for c in configurations}, 0
    for round_ in range(rounds):
        for workers, cache, matcher in configurations[::-1] if round_ % 2 else configurations:
            config = workers, cache, matcher
            name = f"out-{label}-{workers}-{'on' if cache else 'off'}-{matcher or 'default'}-{round_}.jsonl"
            output = Path(tmp) / name
            r = run_cli(path, workers, cache, output, matcher)
            tries[config].append(r)
            say(row(n, cache, workers, r, round_ + 1, matcher))
            first = outputs.setdefault(config, output)
            if first != output:  # a repeat: the same bytes as the first, then no need to keep it
                if r["sha256"] != tries[config][0]["sha256"]:
                    failures += 1
                    loud_difference(
                        with_matcher(f"{label}, -j {workers}, cache {'on' if cache else 'off'}", matcher)
                        + f", round 1 vs {round_ + 1}",
                        first,
                        output,
                    )
                output.unlink()
    rows = {
        c: dict(
            each[0],
            seconds=sum(t["seconds"] for t in each) / len(each),
            each=[t["seconds"] for t in each],
            **{m: max(t[m] for t in each) for m in ("tree", "process", "hwm", "processes")},
        )
        for c, each in tries.items()
    }
    return rows, outputs, failures


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def first_difference(a, b):
    """The first line where two files differ: (line number, line of a, line of b)."""
    number = 0
    with open(a, "rb") as fa, open(b, "rb") as fb:
        for number, (x, y) in enumerate(zip(fa, fb), start=1):
            if x != y:
                return number, x.decode(errors="replace"), y.decode(errors="replace")
        rest_a, rest_b = fa.readline(), fb.readline()
        return number + 1 if rest_a or rest_b else None, rest_a.decode(), rest_b.decode()


def shorten(line, at, width=160):
    start = max(0, at - width // 2)
    return (
        ("..." if start else "")
        + line[start : start + width].rstrip("\n")
        + ("..." if start + width < len(line) else "")
    )


def loud_difference(label, a, b):
    number, x, y = first_difference(a, b)
    at = next((i for i, (p, q) in enumerate(zip(x, y)) if p != q), min(len(x), len(y)))
    print(f"!!! OUTPUT DIFFERS: {label}; first differing line {number}, at character {at}:")
    print(f"!!!   {shorten(x, at)}")
    print(f"!!!   {shorten(y, at)}")


# -- the report ------------------------------------------------------------------


def row(n, cache, workers, r, round_, matcher=None):
    return (
        f"{n:>8,} {'on' if cache else 'off':>5} {workers:>2} "
        + (f"{matcher:>8} " if matcher else "")
        + f"{round_:>5} {r['seconds']:>8.2f} "
        f"{n / r['seconds']:>8,.0f} {r['seconds'] * 1000 / n:>8.3f} {r['tree']:>6.1f} "
        f"{r['process']:>7.1f} {r['hwm']:>6.1f} {r['processes']:>5}  {r['sha256'][:16]}"
    )


def ratios(slow, fast):
    """How many times faster `fast` ran than `slow`: of their mean times, and in each round."""
    each = [a / b for a, b in zip(slow["each"], fast["each"])]
    return slow["seconds"] / fast["seconds"], each


def shown_ratio(slow, fast):
    ratio, each = ratios(slow, fast)
    return f"{ratio:.2f}x" + (f" (rounds: {', '.join(f'{x:.2f}' for x in each)})" if len(each) > 1 else "")


def every_round(each, target):
    """Whether each round on its own met the target too, when there was more than one."""
    if len(each) < 2:
        return ""
    met = sum(x >= target for x in each)
    return f"; {met} of {len(each)} rounds meet it on their own"


def verdict(ok, miss):
    return "meets target" if ok else f"MISSES target by {miss}"


def startup_ms(args, runs=7):
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([*IVIG, *args], stdout=subprocess.DEVNULL, check=True)
        best = min(best, time.perf_counter() - start)
    return best * 1000


def say(*args):
    print(*args, flush=True)


def machine():
    commit = (
        subprocess.run(
            ["git", "-C", str(Path(__file__).parent), "describe", "--always", "--dirty"], capture_output=True, text=True
        ).stdout.strip()
        or "?"
    )
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}; code {commit}; "
        f"load average {load}"
    )


def compare_matchers(label, rows, outputs, matchers, same):
    """The outputs of one configuration under each matcher, against the first (issue 31: byte-identical).
    Adds one bool a comparison to `same`; returns how many differ, each shown loudly."""
    differ = 0
    for (workers, cache, matcher), r in rows.items():
        reference = (workers, cache, matchers[0])
        if matcher == matchers[0] or reference not in rows:
            continue
        ok = r["sha256"] == rows[reference]["sha256"]
        same.append(ok)
        if not ok:
            differ += 1
            loud_difference(
                f"{label}, -j {workers}, cache {'on' if cache else 'off'}, matcher {matchers[0]} vs {matcher}",
                outputs[reference],
                outputs[workers, cache, matcher],
            )
    return differ


def matcher_targets(runs, big, matchers, caches, same):
    """Issue 31's targets through the CLI: the compiled matcher against experta's Rete (the matcher
    before it) at the largest size, and the output byte-identical between them."""
    if not {"rete", "compiled"} <= set(matchers):
        why = "`ivig evaluate` has no --matcher" if matchers == (None,) else "it needs both rete and compiled"
        say(f"  compiled vs rete matcher (issue 31): not measured ({why})")
        return
    note = "" if big == 100_000 else f" (the target is at 100,000; this run stops at {big:,})"
    for workers, cache in itertools.product(WORKERS, caches):
        rete, compiled = runs[big, workers, cache, "rete"], runs[big, workers, cache, "compiled"]
        gain, each = ratios(rete, compiled)
        target = 1 if cache else 3  # cache on: faster than the Rete's; cache off: 3x as fast
        met = gain > target if cache else gain >= target
        say(
            f"  {big:,} cases, -j {workers}, cache {'on' if cache else 'off'}: compiled vs rete "
            f"{shown_ratio(rete, compiled)}; "
            + verdict(met, f"{target - gain:.2f}x (wants {'>' if cache else '>='} {target}x)")
            + every_round(each, target)
            + note
        )
    say(
        f"  output byte-identical, matcher {matchers[0]} vs the others: {sum(same)} of {len(same)} runs (every size, "
        "worker count and cache, and the worst case); " + verdict(all(same), f"{len(same) - sum(same)} runs DIFFER")
    )


def main():
    global CLI_NO_CACHE
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1k and 4k cases only")
    parser.add_argument("--sizes", help="batch sizes to run instead, e.g. 500,2000 (a trial of the bench itself)")
    parser.add_argument(
        "--rounds",
        type=int,
        help="times each CLI configuration runs, in alternating order (default 2; 1 with --quick or --sizes)",
    )
    parser.add_argument(
        "--matchers",
        help=f"matchers to run every CLI configuration with, if `ivig evaluate` has --matcher ({','.join(MATCHERS)})",
    )
    args = parser.parse_args()
    rounds = max(1, args.rounds or (1 if args.quick or args.sizes else 2))
    sizes, inproc = (QUICK_SIZES, 500) if args.quick else (SIZES, 2_000)
    if args.sizes:
        sizes, inproc = tuple(int(x) for x in args.sizes.split(",")), 500
    os.environ.setdefault("PYTHONHASHSEED", "0")
    began = time.perf_counter()

    say(machine())
    cached = has_cache()
    CLI_NO_CACHE = cli_has_no_cache()
    caches = (False, True) if cached and CLI_NO_CACHE else (False,)
    if len(caches) == 1:
        say(
            "NOTE: this build has no situation cache "
            f"(Advisor(cache=...): {'yes' if cached else 'no'}, evaluate --no-cache: "
            f"{'yes' if CLI_NO_CACHE else 'no'}); measuring it as it is, cache off"
        )
    matchers = tuple(args.matchers.split(",")) if args.matchers else MATCHERS
    if not cli_has_matcher():
        matchers = (None,)
        say("NOTE: this build's `ivig evaluate` has no --matcher (issue 31): measuring it with the matcher it has")

    # -- per case, in process (issue 6), the cache off unless said. Issue 6's target is of
    # experta's Rete, whose cost grows with every rule in its network; the compiled matcher looks
    # only at the rules a fact's patterns lead to, so for it the split gains little (shown beside).
    rulebase = RuleBase.load()
    cases = valid_cases(make_advisor(rulebase, cache=0), inproc)
    for matcher in ("rete", "compiled") if has_advisor_matcher() else (None,):
        whole = make_advisor(rulebase, per_disease=False, cache=0, matcher=matcher)
        split = make_advisor(rulebase, cache=0, matcher=matcher)
        naive, ours = per_case_ms(whole, cases), per_case_ms(split, cases)
        named = f", {matcher} matcher" if matcher else ""
        say(f"per case, one engine with all {len(rulebase.rules)} rules{named}: {naive:.2f} ms")
        say(
            f"per case, one engine per diagnosis{named}:          {ours:.2f} ms  = {ours / naive:.2f} of it; "
            + (
                verdict(ours <= naive / 2, f"{ours / naive - 0.5:.2f}")
                if matcher in (None, "rete")
                else "(issue 6's target is the Rete's; not judged here)"
            )
        )
    if cached:
        warm = per_case_ms(make_advisor(rulebase), cases)
        say(
            f"per case, per diagnosis with the cache:       {warm:.2f} ms  = {ours / warm:.2f}x faster "
            f"({len(cases):,} valid cases, in process)"
        )

    # -- the cache's hit rate, in process
    say("\nthe cache in process: Advisor() over the same cases as the CLI runs below")
    if cached:
        for c in cache_in_process(sizes):
            n = c["n"]
            looked = c["hits"] + c["misses"]
            rate = c["hits"] / looked if looked else 0
            # every miss kept: no situation met was forgotten (or left out by sampling)
            ideal = "; every situation met is kept" if c["size"] == c["misses"] else ""
            say(
                f"  {n:>7,} cases: {c['hits']:,} hits, {c['misses']:,} misses = {rate:.1%} hits; "
                f"{c['size']:,} of at most {c['maxsize']:,} kept{ideal}; "
                f"{c['seconds'] * 1000 / n:.3f} ms/case; {c['errors']:,} invalid"
            )
    else:
        say("  not measured: no cache in this build")

    # -- through the CLI
    named = matchers != (None,)
    say(
        "\nthrough the CLI: evaluate FILE --format jsonl -q -j N [--no-cache]"
        + (" --matcher M" if named else "")
        + " > file; memory in MiB: "
        "tree = peak sum of RSS over the command and its workers, process = the largest single process "
        "(both sampled from /proc every 50 ms), hwm = the largest VmHWM (the kernel's own peak RSS of a process)"
    )
    header = (
        f"{'cases':>8} {'cache':>5} {'-j':>2} "
        + (f"{'matcher':>8} " if named else "")
        + f"{'round':>5} {'wall s':>8} {'cases/s':>8} {'ms/case':>8} "
        f"{'tree':>6} {'process':>7} {'hwm':>6} {'procs':>5}  sha256"
    )
    say(f"{rounds} round(s), each configuration once per round, the order reversed every other round")
    say(header)
    configurations = [(workers, cache, m) for m in matchers for workers in WORKERS for cache in caches]
    runs, identical, same_matchers, failures = {}, [], [], 0
    with tempfile.TemporaryDirectory(prefix="ivig-bench-") as tmp:
        for n in sizes:
            path = Path(tmp) / f"{n}.jsonl"
            write_jsonl(path, n)
            rows, outputs, differ = alternate(path, n, configurations, rounds, tmp, f"{n:,} cases")
            failures += differ + compare_matchers(f"{n:,} cases", rows, outputs, matchers, same_matchers)
            runs.update(((n, *c), r) for c, r in rows.items())
            for m in matchers:
                for workers in WORKERS:  # cache on vs off: the target
                    if True in caches:
                        same = runs[n, workers, True, m]["sha256"] == runs[n, workers, False, m]["sha256"]
                        identical.append(same)
                        if not same:
                            failures += 1
                            loud_difference(
                                with_matcher(f"{n:,} cases, -j {workers}, cache off vs on", m),
                                outputs[workers, False, m],
                                outputs[workers, True, m],
                            )
                for cache in caches:  # 1 vs 2 workers: the contract (issue 6)
                    if runs[n, 1, cache, m]["sha256"] != runs[n, 2, cache, m]["sha256"]:
                        failures += 1
                        loud_difference(
                            with_matcher(f"{n:,} cases, cache {'on' if cache else 'off'}, -j 1 vs -j 2", m),
                            outputs[1, cache, m],
                            outputs[2, cache, m],
                        )
            for output in outputs.values():
                output.unlink()
            path.unlink()

    worst_rows = {}
    if True in caches:
        n = 1_000 if args.quick or args.sizes else 5_000
        hits, valid = unbounded_cache(n, uniform=True)
        say(
            f"\nworst case for the cache: {n:,} cases drawn uniformly over the fact space; a cache that forgets "
            f"nothing hits {hits:,} of {valid:,} valid cases ({hits / valid:.1%})"
        )
        say(header)
        with tempfile.TemporaryDirectory(prefix="ivig-bench-") as tmp:
            path = Path(tmp) / "uniform.jsonl"
            write_jsonl(path, n, uniform=True)
            # short runs: more rounds, as drift weighs more
            rows, outputs, differ = alternate(
                path,
                n,
                [(1, c, m) for m in matchers for c in caches],
                max(rounds, WORST_ROUNDS),
                tmp,
                f"worst case, {n:,} cases",
            )
            failures += differ + compare_matchers(f"worst case, {n:,} cases", rows, outputs, matchers, same_matchers)
            worst_rows = {(cache, m): r for (_, cache, m), r in rows.items()}
            for m in matchers:
                same = worst_rows[True, m]["sha256"] == worst_rows[False, m]["sha256"]
                identical.append(same)
                if not same:
                    failures += 1
                    loud_difference(
                        with_matcher(f"worst case, {n:,} cases, -j 1, cache off vs on", m),
                        outputs[1, False, m],
                        outputs[1, True, m],
                    )
        for m in matchers:
            say(f"  {with_matcher('cache on vs off', m)}: {shown_ratio(worst_rows[False, m], worst_rows[True, m])}")

    say("\nspeed-ups (throughput ratios: of the mean times, then each round's own)")
    for m in matchers:
        for n in sizes:
            parts = [
                f"2 vs 1 worker, cache {'on' if c else 'off'}: " + shown_ratio(runs[n, 1, c, m], runs[n, 2, c, m])
                for c in caches
            ]
            if True in caches:
                parts = [
                    f"cache on vs off, -j {w}: " + shown_ratio(runs[n, w, False, m], runs[n, w, True, m])
                    for w in WORKERS
                ] + parts
            say(f"  {with_matcher(f'{n:>7,} cases', m)}: " + "; ".join(parts))

    if True in caches:
        for m, n in itertools.product(matchers, sizes):  # the cache grows a process that uses it: in the workers?
            grew = {
                w: max(runs[n, w, True, m]["process"], runs[n, w, True, m]["hwm"])
                - max(runs[n, w, False, m]["process"], runs[n, w, False, m]["hwm"])
                for w in WORKERS
            }
            if grew[1] > 5 and grew[2] < 2:
                say(
                    f"  !!! {with_matcher(f'{n:,} cases', m)}: the cache grows the one process of -j 1 by "
                    f"{grew[1]:.1f} MiB but the workers of -j 2 by {grew[2]:.1f} MiB: is the cache on in the workers?"
                )

    say("\ntargets")
    big = sizes[-1]
    for m in matchers:
        if True in caches:
            gain, each = ratios(runs[big, 1, False, m], runs[big, 1, True, m])
            note = "" if big == 100_000 else f" (the target is at 100,000; this run stops at {big:,})"
            say(
                f"  {with_matcher(f'{big:,} cases, 1 worker', m)}, cache on vs off: "
                f"{shown_ratio(runs[big, 1, False, m], runs[big, 1, True, m])}; "
                + verdict(gain >= 3, f"{3 - gain:.2f}x (wants >= 3x)")
                + every_round(each, 3)
                + note
            )
        else:
            say("  cache on vs off: not measured (no cache in this build)")
    worst_key = max(runs, key=lambda k: max(runs[k]["process"], runs[k]["hwm"]))
    worst = max(runs[worst_key]["process"], runs[worst_key]["hwm"])
    n, w, c, m = worst_key
    say(
        f"  memory per worker (largest single process of any run; the larger of RSS and VmHWM): "
        f"{worst:.1f} MiB, at {with_matcher(f'{n:,} cases, -j {w}, cache ' + ('on' if c else 'off'), m)}; "
        + verdict(worst < 64, f"{worst - 64:.1f} MiB (wants < 64 MiB)")
    )
    if worst_rows:
        worst = max(max(r["process"], r["hwm"]) for r in worst_rows.values())
        say(
            f"  memory per worker, worst case for the cache (uniform fact space): {worst:.1f} MiB; "
            + verdict(worst < 64, f"{worst - 64:.1f} MiB (wants < 64 MiB)")
        )
    if True in caches:
        say(
            f"  output byte-identical, cache on vs off: {sum(identical)} of {len(identical)} runs (every size "
            f"and worker count, and the worst case{', with each matcher' if named else ''}); "
            + verdict(all(identical), f"{len(identical) - sum(identical)} runs DIFFER")
        )
    else:
        say("  output byte-identical, cache on vs off: not measured (no cache in this build)")
    for m, n in itertools.product(matchers, sizes):
        if n < 10_000:
            continue
        for c in caches:
            ratio, each = ratios(runs[n, 1, c, m], runs[n, 2, c, m])
            say(
                f"  {with_matcher(f'{n:,} cases', m)}, cache {'on' if c else 'off'}: 2 workers "
                f"{shown_ratio(runs[n, 1, c, m], runs[n, 2, c, m])} "
                "one; " + verdict(ratio >= 1.8, f"{1.8 - ratio:.2f}x (wants >= 1.8x)") + every_round(each, 1.8)
            )
    if len(sizes) >= 2:  # flat memory needs two sizes (--sizes may give one)
        small, large = sizes[-2], sizes[-1]
        for m in matchers:
            a, b = (max(runs[k, 2, False, m]["process"], runs[k, 2, False, m]["hwm"]) for k in (small, large))
            growth = b / a - 1
            say(
                f"  {with_matcher('peak memory per process', m)}, 2 workers, cache off, {small:,} -> {large:,} cases: "
                f"{a:.1f} -> {b:.1f} MiB = {growth:+.1%}; "
                + verdict(abs(growth) <= 0.05, f"{abs(growth) - 0.05:.1%} over a 5% tolerance")
            )
    matcher_targets(runs, big, matchers, caches, same_matchers)
    for what in (["--help"], ["--version"]):
        ms = startup_ms(what)
        say(f"  ivig {what[0]}: {ms:.0f} ms; " + verdict(ms < 150, f"{ms - 150:.0f} ms"))
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    say(f"\n{time.perf_counter() - began:.0f} s in all; load average at the end {load}")
    if failures:
        say(f"!!! {failures} OUTPUT DIFFERENCES (see the lines starting with !!! above)")
        sys.exit(1)


CLI_NO_CACHE = False

if __name__ == "__main__":
    main()
