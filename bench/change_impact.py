"""What change impact over every patient costs: `impact` (audit/impact.py: the pair walk and
each change's patient through both real engines) for the edits issue 29 names, and for edits
that reach every diagnosis or turn the walk's shortcuts off, on a copy of the shipped rules.

    python bench/change_impact.py            # each edit, best of 3
    python bench/change_impact.py --rounds 1
"""

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from ivig_advisor.engine import Advisor, RuleBase
from ivig_advisor.engine.audit.impact import impact

RULES = Path(__file__).resolve().parent.parent / "rules"

EDITS = {
    "none": [],
    "MMN's steroid warning critical -> warning": [
        ("mmn.yaml", "        severity: critical", "        severity: warning")
    ],
    "elderly at 70, not 65 (every diagnosis)": [("safety.yaml", "when: {age: {ge: 65}}", "when: {age: {ge: 70}}")],
    "diabetes dropped from the risk group": [("safety.yaml", "        - diabetes: true\n", "")],
    "GBS course 2.4 g/kg over 6 days": [
        ("regimens.yaml", "total_g_per_kg: 2.0, g_per_kg_per_day: 0.4, days: 5,",
         "total_g_per_kg: 2.4, g_per_kg_per_day: 0.4, days: 6,")
    ],
    "the situation layer before subtype (no twins, interleaved layers)": [
        ("rulebase.yaml", "  - name: subtype\n", "  - name: subtype-x\n"),
        ("rulebase.yaml", "  - name: situation\n", "  - name: subtype\n"),
        ("rulebase.yaml", "  - name: subtype-x\n", "  - name: situation\n"),
    ],
}  # fmt: skip


def edited(edits) -> RuleBase:
    target = Path(tempfile.mkdtemp(prefix="ivig-bench-")) / "rules"
    shutil.copytree(RULES, target)
    (target / "review-log.yaml").unlink(missing_ok=True)
    for name, old, new in edits:
        text = (target / name).read_text(encoding="utf-8")
        assert old in text, (name, old)
        (target / name).write_text(text.replace(old, new, 1), encoding="utf-8")
    return RuleBase.load(target)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    rounds = parser.parse_args().rounds
    base = Advisor(RuleBase.load(RULES))
    print(f"{'edit':52} {'seconds':>8} {'regions':>8} {'differ':>7} {'changes':>7} {'regressions':>11}")
    for label, edits in EDITS.items():
        this = Advisor(edited(edits))
        times = []
        for _ in range(rounds):
            start = time.perf_counter()
            found = impact(base, this)
            times.append(time.perf_counter() - start)
        print(
            f"{label:52} {min(times):8.2f} {found.regions:8,} {found.differing:7,} "
            f"{len(found.changes):7} {len(found.regressions):11}"
        )


if __name__ == "__main__":
    main()
