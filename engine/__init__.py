"""The machinery of ivig-advisor: case schema, rule language, experta compiler, evaluation.

Public API::

    from ivig_advisor.engine import evaluate_case, evaluate_many, Advisor, RuleBase, Result

Nothing clinical lives here: the knowledge is in rules/ and facts/.
"""

from typing import TYPE_CHECKING

from . import _moved
from .base.errors import CaseInvalid, IvigError, RuleBaseInvalid, SourceError

# Each public name and the module it lives in, imported when the name is first asked for: the
# command line imports this package before every command (base.stdio), `ivig --help` too, and
# must not pay for the compiler, experta and the batch machinery it does not use (PEP 562).
_LAZY = {
    "evaluate_files": "batch.pipeline",
    "evaluate_many": "batch.pipeline",
    "Advisor": "core.advisor",
    "default_advisor": "core.advisor",
    "evaluate_case": "core.advisor",
    "Result": "core.result",
    "Run": "core.result",
    "RuleBase": "core.rulebase",
    "RuleSpec": "core.rulebase",
    "Case": "core.schema",
    "CaseSchema": "core.schema",
}

if TYPE_CHECKING:  # what the names are, for the type checker and editors
    from .batch.pipeline import evaluate_files, evaluate_many
    from .core.advisor import Advisor, default_advisor, evaluate_case
    from .core.result import Result, Run
    from .core.rulebase import RuleBase, RuleSpec
    from .core.schema import Case, CaseSchema


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    globals()[name] = value  # asked once
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "Advisor",
    "Case",
    "CaseInvalid",
    "CaseSchema",
    "IvigError",
    "Result",
    "RuleBase",
    "RuleBaseInvalid",
    "RuleSpec",
    "Run",
    "SourceError",
    "default_advisor",
    "evaluate_case",
    "evaluate_files",
    "evaluate_many",
]

_moved.install()  # the module paths before the engine had rooms still import
