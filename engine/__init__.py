"""The machinery of ivig-advisor: case schema, rule language, experta compiler, evaluation.

Public API::

    from ivig_advisor.engine import evaluate_case, evaluate_many, Advisor, RuleBase, Result

Nothing clinical lives here: the knowledge is in rules/ and facts/.
"""

from .batch import evaluate_files, evaluate_many
from .errors import IvigError
from .evaluate import Advisor, Result, Run, default_advisor, evaluate_case
from .rulebase import RuleBase, RuleBaseInvalid, RuleSpec
from .schema import Case, CaseInvalid, CaseSchema
from .yamlsrc import SourceError

__all__ = ["Advisor", "Case", "CaseInvalid", "CaseSchema", "IvigError", "Result", "RuleBase", "RuleBaseInvalid",
           "RuleSpec", "Run", "SourceError", "default_advisor", "evaluate_case", "evaluate_files", "evaluate_many"]
