"""Beyond one machine: evaluating JSON Lines case files on Dask (the `[dask]` extra).

One partition per file keeps every line number and case id exactly as
`ivig evaluate` gives them; each Dask worker process compiles the rule base
once and reuses it for every partition it runs::

    import json
    import dask.bag as db
    from ivig_advisor.engine.dask_bag import evaluate_bag

    lines = db.read_text("exports/*.jsonl", blocksize=None, include_path=True)
    results = evaluate_bag(lines)                      # a bag of result dicts, in order
    results.map(json.dumps).to_textfiles("results/*.jsonl")

Dask brings the scheduling (processes, a cluster through dask.distributed);
nothing here distributes work by hand.
"""

from functools import lru_cache
from itertools import groupby
from pathlib import Path
from typing import Iterable, List, Optional, Tuple

from .batch import evaluate_record
from .caseio import read_jsonl_lines
from .evaluate import Advisor
from .rulebase import RuleBase


@lru_cache(maxsize=None)
def _advisor(rules_dir: Optional[str]) -> Advisor:
    """One compiled rule base per worker process (and per rule base)."""
    return Advisor(RuleBase.load(Path(rules_dir) if rules_dir else None))


def evaluate_lines(items: Iterable[Tuple[str, str]], rules_dir: Optional[str] = None) -> List[dict]:
    """Evaluate one partition of `(line, path)` pairs; one result dict per case, in order."""
    advisor = _advisor(rules_dir)
    out = []
    for path, group in groupby(items, key=lambda item: item[1]):
        for record in read_jsonl_lines((line for line, _ in group), _local(path)):
            out.append(evaluate_record(record, advisor).to_dict())
    return out


def evaluate_bag(bag, rules_dir: Optional[str] = None):
    """A bag of `(line, path)` pairs (``db.read_text(..., include_path=True)``) -> a bag of results."""
    return bag.map_partitions(evaluate_lines, rules_dir)


def _local(path: str) -> str:
    return path[len("file://"):] if path.startswith("file://") else path
