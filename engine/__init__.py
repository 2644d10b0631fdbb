"""The machinery of ivig-advisor: case schema, rule language, experta compiler, evaluation.

Public API::

    from ivig_advisor.engine import evaluate_case, evaluate_many, Advisor, RuleBase, Result

Nothing clinical lives here: the knowledge is in rules/ and facts/.
"""

from . import _moved
from .base.errors import CaseInvalid, IvigError, RuleBaseInvalid, SourceError
from .batch.pipeline import evaluate_files, evaluate_many
from .core.advisor import Advisor, default_advisor, evaluate_case
from .core.result import Result, Run
from .core.rulebase import RuleBase, RuleSpec
from .core.schema import Case, CaseSchema

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
