"""How the situation cache's gain follows the repetition of a batch (issue 13).

    python bench/repetition.py            # about 4 minutes on 2 cores

The cache pays for a case only when its clinical situation was seen before,
so its gain is a property of the batch, not of the code alone. This runs, in
process, batches of 10,000 cases drawn (with replacement, each with its own
id) from pools of the bench's realistic cases of different sizes: a small pool
repeats a lot (a clinic's referrals), a large one little. For each it gives
the share of hits and the throughput with the cache against without it on
the same cases (the engines compiled once and shared, so only the cache
differs); the outputs are compared, and must be identical.

For scale: the prototype in issue 13 saw 83.5% hits at 100k cases; the
bench's realistic mix (bench/bench.py) 67%.
"""

import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from bench import synthetic_cases  # noqa: E402
from ivig_advisor.engine import Advisor  # noqa: E402
from ivig_advisor.engine.base.escape import json_text  # noqa: E402

POOLS = (500, 2_000, 8_000, 30_000)
N = 10_000


def timed(advisor, cases):
    """(seconds, outputs) of evaluating `cases` with `advisor`."""
    start = time.perf_counter()
    out = [json_text(advisor.evaluate_mapping(case).to_dict()) for case in cases]
    return time.perf_counter() - start, out


def main():
    source = list(synthetic_cases(max(POOLS)))
    plain = Advisor(cache=0)
    for case in source[:300]:  # compile every diagnosis's engine before timing
        plain.evaluate_mapping(case)
    print(f"{N:,} cases drawn from pools of the bench's cases; in process, one worker")
    print(f"{'pool':>7} {'hits':>7} {'off ms/case':>12} {'on ms/case':>11} {'on vs off':>10}  identical")
    failed = False
    for pool in POOLS:
        rnd = random.Random(pool)
        cases = [dict(rnd.choice(source[:pool]), id=f"r{i}") for i in range(N)]
        cached = Advisor(plain.rulebase)
        cached.engines = plain.engines  # the same compiled engines: only the cache differs
        off, expected = timed(plain, cases)
        on, got = timed(cached, cases)
        hits = cached.situations.hits / (cached.situations.hits + cached.situations.misses)
        same = got == expected
        failed |= not same
        print(
            f"{pool:>7,} {hits:>7.1%} {off * 1000 / N:>12.3f} {on * 1000 / N:>11.3f} {off / on:>9.2f}x  "
            f"{'yes' if same else 'NO: OUTPUT DIFFERS'}",
            flush=True,
        )
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
