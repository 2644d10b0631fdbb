"""Beyond one machine: evaluating JSON Lines case files on Dask (the `[dask]` extra).

One partition per file keeps every line number and case id exactly as
`ivig evaluate` gives them; each Dask worker process compiles the rule base
once and reuses it for every partition it runs. The recipe (docs/analyst.md, "Beyond
one machine"), as a script::

    import dask.bag as db
    from dask.distributed import Client
    from ivig_advisor.engine.batch.dask_bag import evaluate_bag, to_jsonl

    if __name__ == "__main__":  # worker processes import this script: start nothing then
        with Client():          # a LocalCluster of worker processes; Client("host:8786") for a cluster
            lines = db.read_text("exports/*.jsonl", blocksize=None, include_path=True)
            to_jsonl(evaluate_bag(lines), "results/*.jsonl")

Each result file then holds exactly what `ivig evaluate FILE --format jsonl`
writes for its export: the same JSON, one object per line, the last line
ended too (so ``cat results/*.jsonl`` is valid JSON Lines), and each case's
`source` named as the CLI names it (relative to the directory the batch was
started from). Dask brings the scheduling (processes, a cluster through
dask.distributed); nothing here distributes work by hand.
"""

import os
from functools import cache
from itertools import groupby
from pathlib import Path
from typing import Iterable, List, Optional, Tuple

from ..base.escape import json_text
from ..core.advisor import Advisor
from ..core.rulebase import RuleBase
from ..io.cases import read_jsonl_lines
from .pipeline import evaluate_record


@cache
def _advisor(rules_dir: Optional[str]) -> Advisor:
    """One compiled rule base per worker process (and per rule base)."""
    return Advisor(RuleBase.load(Path(rules_dir) if rules_dir else None))


def result_dicts(
    items: Iterable[Tuple[str, str]], rules_dir: Optional[str] = None, relative_to: Optional[str] = None
) -> List[dict]:
    """Evaluate one partition of `(line, path)` pairs; one result dict per case, in order.
    `relative_to`: a directory (absolute) that paths are named relative to."""
    advisor = _advisor(rules_dir)
    out = []
    for path, group in groupby(items, key=lambda item: item[1]):
        for record in read_jsonl_lines((line for line, _ in group), _named(path, relative_to)):
            out.append(evaluate_record(record, advisor).to_dict())
    return out


def evaluate_bag(bag, rules_dir: Optional[str] = None, relative_to: Optional[str] = "."):
    """A bag of `(line, path)` pairs (``db.read_text(..., include_path=True)``) -> a bag of results.

    Dask gives absolute paths; a case's `source` is named relative to
    `relative_to` (default: this process's working directory, resolved here,
    since a worker's may differ), as `ivig evaluate` names the files it was
    given. None keeps them absolute."""
    base = os.path.abspath(relative_to) if relative_to is not None else None
    return bag.map_partitions(result_dicts, rules_dir, base)


def to_jsonl(results, pattern: str, **to_textfiles):
    """Write a bag of results as `ivig evaluate --format jsonl` does: the same
    JSON text, one object per line, every line ended (Dask's own default
    leaves the last one open). Returns the files written."""
    return results.map(json_text).to_textfiles(pattern, last_endline=True, **to_textfiles)


def _named(path: str, relative_to: Optional[str]) -> str:
    path = path[len("file://") :] if path.startswith("file://") else path
    if relative_to is None:
        return path
    relative = os.path.relpath(path, relative_to)
    return path if relative.startswith(os.pardir) else relative  # outside it: absolute, never ../../x
