"""What a rule's values may be, checked where a rule and a later-evidence entry share them: a
test of a case field (its operands against the field's type and values) and a warning (code,
severity, whom it applies to, grade, summary). The loader (loader.py) and the later-evidence
file (later.py) both use them, so that an entry can say nothing a rule could not."""

import re
from typing import List, Optional

from ..base.yamlsrc import shown
from . import conditions
from .rulespec import APPLIES, GRADES, SEVERITIES
from .schema import spelled
from .words import suggest

SUMMARY_MAX = 139  # characters: a CDS Hooks card's summary ("<140 characters", the spec says), and one line of text
ID_PATTERN = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
# The mark of a finding of later evidence (later.py): every output tells it from the review's own
# findings by this start of its code (the CSV's warnings, the headline's critical codes), so a
# harm finding's code has it and a rule's never does.
LATER_PREFIX = "later-"


def warning_problem(item: dict) -> Optional[str]:
    """The first thing wrong with a warning's values, or None."""
    code, severity = item.get("code"), item.get("severity")
    if not isinstance(code, str) or not ID_PATTERN.fullmatch(code):
        return "a warning needs a code of lower-case words joined by '-'"
    if severity not in SEVERITIES:
        return f"warning '{code}' needs a severity: {', '.join(SEVERITIES)}"
    if not item.get("message"):
        return f"warning '{code}' needs a message"
    applies, grade = item.get("applies"), item.get("grade")
    if applies not in APPLIES:
        return (
            f"warning '{code}' needs applies: {' or '.join(APPLIES)} (because of something about this patient, "
            "or for any infusion)"
        )
    if applies == "every-infusion" and severity != "info":
        return (
            f"warning '{code}' applies to every infusion, so it is info (one of the general precautions): "
            "critical and warning are for what is specific to the patient"
        )
    if grade is not None and grade not in GRADES:
        return f"warning '{code}': grade must be one of {', '.join(GRADES)} (the review's grading)"
    summary = " ".join(str(item.get("summary") or "").split())
    if not summary:
        return (
            f"warning '{code}' needs a summary: at most {SUMMARY_MAX} characters, written as a summary (a CDS "
            "Hooks card's, never a sentence cut short)"
        )
    if len(summary) > SUMMARY_MAX:
        return f"warning '{code}': the summary has {len(summary)} characters; at most {SUMMARY_MAX}"
    return None


def nested_operand_problem(test: conditions.Test) -> Optional[str]:
    """Why a test names a list or mapping among its values (`in: [igg, [iga]]`), or None: no
    fact has such a value, so the test could never hold, and it cannot be compared or kept."""
    for value in test.operands:
        if isinstance(value, (list, dict)):
            return f"'{test.op}' takes single values (texts, numbers, true or false), not {spelled(value)} among them"
    return None


def field_test_problem(test: conditions.Test, spec) -> Optional[str]:
    """Why a test cannot apply to a case field, or None."""
    if test.op == "known":
        return None
    kind = spec.type
    operands = test.operands
    if test.op in ("lt", "le", "gt", "ge"):
        return None if kind in ("number", "integer") else f"'{test.op}' compares numbers; '{spec.name}' is {kind}"
    if test.op in ("contains", "excludes"):
        if kind != "list":
            return f"'{test.op}' applies to lists; '{spec.name}' is {kind}"
    elif kind == "list":
        return f"'{spec.name}' is a list: test it with contains/excludes"
    for value in operands:
        if kind in ("enum", "list") and value not in spec.values:
            return f"'{value}' is not a value of '{spec.name}'{suggest(value, spec.values)}"
        if kind == "boolean" and not isinstance(value, bool):
            return f"'{spec.name}' is yes/no: compare it with true or false, not {value!r}"
        if kind in ("number", "integer") and (isinstance(value, bool) or not isinstance(value, (int, float))):
            return f"'{spec.name}' is a number, not {value!r}"
    return None


def derived_test_problem(test: conditions.Test, values: Optional[set], known: List[str]) -> Optional[str]:
    """Why a test of a name that is no case field cannot hold: no rule derives it (`values` None),
    or none derives the value it compares with; `known`: the names it could have meant."""
    if values is None:
        return f"{shown(test.name)} is neither a case field nor derived by any rule{suggest(test.name, known)}"
    if test.op in ("eq", "ne") and test.operand not in values:
        return f"no rule derives {test.name} = {shown(test.operand)} (derived values: {sorted(map(str, values))})"
    return None
