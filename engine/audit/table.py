"""A diagnosis's rules as a decision table, in the manner of a Drools or DMN decision table
(`ivig audit table`, and a section per disease in the report).

Rows are the rules that can fire for the diagnosis, in the order they fire (layer by layer, then
as written); a rule whose condition is an `any` is one row per alternative. Columns are the
fields and derived facts the rows test, cells the tests (`≥65`, `yes`, `?` for unknown, blank
for any value); each row ends with what it concludes. The rules every disease shares (the
adverse events, whether IVIG is given) are one table of their own, so that a disease's table
shows what is particular to it. The hit policy is stated from the manifest's layers, and the
exhaustive check's gaps and conflicts for the diagnosis are listed under its table with the
patient that shows each: what no row covers, at a glance.
"""

import html
import textwrap
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional

from ..base.escape import for_terminal
from ..core import conditions
from ..core.analysis import live_rules
from ..core.rulebase import RuleBase, RuleSpec
from ..core.words import dose_line
from .check import Finding, Verification

SHARED = "every-disease"  # the name of the table of the rules every diagnosis shares
SYMBOLS = {"lt": "<", "le": "≤", "gt": ">", "ge": "≥", "ne": "≠"}
CELL_MAX = 9  # characters a text cell shows; a longer test is a letter, spelled out under the table
BESIDE_MIN = 30  # characters a row's rule and outcome need beside its cells; with fewer, they go under them


@dataclass
class Row:
    """One way a rule's condition holds: its cells by column, and what it concludes."""

    rule: str
    alternative: int  # 1, 2, ... for the alternatives of an `any`; 0 when the rule has one
    layer: str
    cells: Dict[str, str]
    outcome: str
    fires: bool  # whether the exhaustive walk saw it fire for this diagnosis

    @property
    def name(self) -> str:
        return f"{self.rule} ({self.alternative})" if self.alternative else self.rule


@dataclass
class DecisionTable:
    """The rules of one diagnosis (or those every diagnosis shares) as a table."""

    diagnosis: str
    label: str
    columns: List[str]  # the fields, in the schema's order, then the derived facts
    derived: List[str]  # which of the columns are derived facts (no field of the case)
    rows: List[Row]
    hit_policy: str
    findings: List[Finding] = field(default_factory=list)  # the check's gaps and conflicts for it
    combinations: int = 0  # how many combinations the check walked for it (0: not checked)

    def to_dict(self) -> dict:
        """`audit table --format json`."""
        return {
            "diagnosis": self.diagnosis,
            "label": self.label,
            "columns": self.columns,
            "derived": self.derived,
            "hit_policy": self.hit_policy,
            "rows": [asdict(r) for r in self.rows],  # rule, alternative, layer, cells, outcome, fires
            "findings": [f.to_dict() for f in self.findings],
            "combinations": self.combinations,
        }


def hit_policy(rulebase: RuleBase) -> str:
    """How the rows of a table decide, from the manifest's layers."""
    order = ", ".join(layer.name for layer in rulebase.layers)
    stance = ", ".join(layer.name for layer in rulebase.layers if layer.sets_stance)
    return (
        f"Hit policy: rows fire layer by layer ({order}); every row whose condition holds fires. "
        f"The stance is the first hit by layer: the first of the stance layers ({stance}) in which a "
        "row holds sets it, and it is final; two rows of one layer with different stances are a "
        "conflict, which the check reports. A blank cell: any value; ?: unknown."
    )


def decision_tables(
    rulebase: RuleBase,
    diagnoses: Optional[List[str]] = None,
    verification: Optional[Verification] = None,
    shared: bool = True,
) -> List[DecisionTable]:
    """The tables of `diagnoses` (default: every diagnosis), then (`shared`) the table of the rules
    they all share; `verification` (the exhaustive check) marks rows that never fire and gives
    each diagnosis's gaps and conflicts."""
    every = list(rulebase.schema.fields["diagnosis"].values)
    live = {d: live_rules(rulebase, d) for d in every}
    shared_ids = set.intersection(*({r.id for r in rules} for rules in live.values()))
    tables = []
    for diagnosis in diagnoses or every:
        own = [r for r in live[diagnosis] if r.id not in shared_ids]
        tables.append(_table(rulebase, diagnosis, _label(rulebase, diagnosis), own, verification))
    if shared:
        common = [r for r in rulebase.rules if r.id in shared_ids]
        tables.append(_table(rulebase, SHARED, "Every disease (the rules all diagnoses share)", common, None))
    return tables


def _label(rulebase: RuleBase, diagnosis: str) -> str:
    return rulebase.schema.fields["diagnosis"].label(diagnosis)


def _table(rulebase: RuleBase, diagnosis: str, label: str, rules, verification) -> DecisionTable:
    rules = sorted(rules, key=lambda r: -r.salience)  # the order they fire
    coverage = next((c for c in verification.coverage if c.diagnosis == diagnosis), None) if verification else None
    rows = [row for rule in rules for row in _rows(rule, coverage is None or rule.id in coverage.fired)]
    fields = list(rulebase.schema.fields)
    tested = {name for row in rows for name in row.cells}
    derived = sorted(tested - set(fields))
    combinations = coverage.combinations if coverage else 0
    return DecisionTable(
        diagnosis,
        label,
        [f for f in fields if f in tested] + derived,
        derived,
        rows,
        hit_policy(rulebase),
        _findings(verification, diagnosis, rules),
        combinations,
    )


def _rows(rule: RuleSpec, fires: bool) -> List[Row]:
    alternatives = _disjuncts(conditions.normal(rule.when))
    numbered = len(alternatives) > 1
    return [
        Row(rule.id, i + 1 if numbered else 0, rule.layer, _cells(tests), _outcome(rule), fires)
        for i, tests in enumerate(alternatives)
    ]


def _disjuncts(cond) -> List[List[conditions.Test]]:
    """A condition in negation normal form as its alternatives, each the tests that all hold."""
    if isinstance(cond, conditions.Test):
        return [[cond]]
    parts = [_disjuncts(c) for c in cond.items]
    if isinstance(cond, conditions.AnyOf):
        return [alternative for part in parts for alternative in part]
    out: List[List[conditions.Test]] = [[]]
    for part in parts:
        out = [done + alternative for done in out for alternative in part]
    return out


def _cells(tests: List[conditions.Test]) -> Dict[str, str]:
    """Each tested name's cell: its tests in brief ('≥65', 'yes', '?'); the diagnosis, the same in
    every row of its table, is left out."""
    cells: Dict[str, List[str]] = {}
    for test in tests:
        if test.name != "diagnosis":
            cells.setdefault(test.name, []).append(_cell(test))
    return {name: " ".join(parts) for name, parts in cells.items()}


def _cell(test: conditions.Test) -> str:
    if test.op == "known":
        return "known" if test.operand else "?"
    if test.op in ("in", "not_in"):
        return ("" if test.op == "in" else "not ") + "|".join(_value(v) for v in test.operands)
    if test.op in ("contains", "excludes"):
        return ("+" if test.op == "contains" else "−") + _value(test.operand)
    return SYMBOLS.get(test.op, "") + _value(test.operand)


def _value(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _outcome(rule: RuleSpec) -> str:
    """What a row concludes, in brief: the stance, the dose, a warning and its severity, or a fact."""
    then, parts = rule.then, []
    if "recommend" in then:
        parts.append(f"stance {then['recommend']['stance']}")
    if "dose" in then:
        parts.append(f"dose {dose_line(then['dose'])}")
    parts += [f"warn {w['code']} ({w['severity']})" for w in rule.warnings]
    parts += [f"{name} = {_value(value)}" for name, value in (then.get("derive") or {}).items()]
    return "; ".join(parts)


def _findings(verification: Optional[Verification], diagnosis: str, rules: List[RuleSpec]) -> List[Finding]:
    """The check's gaps and conflicts for this diagnosis: those whose patient has it, or that name
    one of its rules."""
    if verification is None:
        return []
    ids = {r.id for r in rules}
    return [
        f
        for f in verification.findings
        if f.kind in ("gap", "conflict") and ((f.witness or {}).get("diagnosis") == diagnosis or f.rule in ids)
    ]


# -- as text, Markdown and HTML -------------------------------------------------------------


def table_text(table: DecisionTable, width: int = 80) -> str:
    """One table at a terminal: numbered columns (named in a line above it), cells of at most
    CELL_MAX characters (a longer test is a letter, spelled out under the table), and each row's
    rule and outcome after its cells, wrapped to `width` under themselves."""
    letters: Dict[str, str] = {}

    def brief(text: str) -> str:
        if len(text) <= CELL_MAX:
            return text
        return letters.setdefault(text, chr(ord("a") + len(letters)) if len(letters) < 26 else "*")

    cells = [[brief(row.cells.get(c, "")) for c in table.columns] for row in table.rows]
    widths = [max([len(str(i + 1))] + [len(r[i]) for r in cells]) for i in range(len(table.columns))]
    number = len(str(len(table.rows)))
    out = [*_wrapped(f"{table.label} [{table.diagnosis}]", width), *_wrapped(table.hit_policy, width)]
    names = [f"{i + 1} {c}{'*' if c in table.derived else ''}" for i, c in enumerate(table.columns)]
    out += _items("Columns: ", names + (["* derived by a rule"] if table.derived else []), width)
    head = " " * (number + 2) + " ".join(str(i + 1).ljust(w) for i, w in enumerate(widths))
    out.append(head.rstrip())
    for i, (row, shown) in enumerate(zip(table.rows, cells)):
        left = f"{i + 1:>{number}}  " + " ".join(c.ljust(w) for c, w in zip(shown, widths))
        said = f"{row.name} → {row.outcome}" + ("" if row.fires else " (never fires)")
        out += _beside(left, said, width)
    out += [f"  {letter} = {for_terminal(text)}" for text, letter in letters.items()]
    out += _verdict(table)
    return "\n".join(out)


def _beside(left: str, said: str, width: int) -> List[str]:
    """`left` (a row's cells) and `said` after it, wrapped under itself; under the cells, indented,
    when the cells leave it less than BESIDE_MIN characters."""
    if width - len(left) - 2 < BESIDE_MIN:
        indent = " " * (len(left) - len(left.lstrip()) + 4)
        said_lines = textwrap.wrap(for_terminal(said), width, initial_indent=indent, subsequent_indent=indent)
        return [left.rstrip()] + said_lines
    lines = textwrap.wrap(for_terminal(said), width - len(left) - 2) or [""]
    return [f"{left}  {lines[0]}"] + [" " * (len(left) + 2) + line for line in lines[1:]]


def _items(head: str, items: List[str], width: int) -> List[str]:
    """`items` after `head`, joined by commas, each kept whole on one line."""
    lines, line = [], head
    for i, item in enumerate(items):
        piece = item + ("," if i < len(items) - 1 else "")
        if len(line) + len(piece) + 1 > width and line.strip():
            lines.append(line.rstrip())
            line = "  "
        line += piece + " "
    return lines + [line.rstrip()]


def _wrapped(text: str, width: int) -> List[str]:
    return textwrap.wrap(for_terminal(text), width)


def _verdict(table: DecisionTable) -> List[str]:
    """What the check found for the table's diagnosis: its gaps and conflicts, each with its patient."""
    if table.diagnosis == SHARED:
        return []
    if not table.combinations:
        return ["(not checked)"]
    if not table.findings:
        return [
            f"Checked: {table.combinations:,} combinations; no gap, no conflict.",
        ]
    out = [f"Checked: {table.combinations:,} combinations; {len(table.findings)} found:"]
    for f in table.findings:
        patient = ", ".join(f"{k}={v}" for k, v in (f.witness or {}).items() if v is not None)
        out.append(for_terminal(f"  {f.kind}: {f.message}" + (f" (e.g. {patient})" if patient else "")))
    return out


def table_markdown(table: DecisionTable) -> str:
    """One table in Markdown, every name and test written out."""
    header = ["#", "rule", *[c + ("*" if c in table.derived else "") for c in table.columns], "outcome"]
    out = [f"## {_md(table.label)} (`{table.diagnosis}`)", "", _md(table.hit_policy), ""]
    out += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for i, row in enumerate(table.rows):
        outcome = row.outcome + ("" if row.fires else " (never fires)")
        cells = [str(i + 1), f"`{row.name}`", *[_md(row.cells.get(c, "")) for c in table.columns], _md(outcome)]
        out.append("| " + " | ".join(cells) + " |")
    out += ["", *_verdict(table)]
    return "\n".join(out).rstrip()


def table_html(table: DecisionTable) -> str:
    """One table for the report: each rule linked to its card, in a frame that scrolls."""
    header = "".join(f"<th>{html.escape(c)}{'*' if c in table.derived else ''}</th>" for c in table.columns)
    rows = []
    for row in table.rows:
        cells = "".join(f"<td>{html.escape(for_terminal(row.cells.get(c, '')))}</td>" for c in table.columns)
        never = "" if row.fires else ' <span class="meta">(never fires)</span>'
        rows.append(
            f'<tr><td><a href="#rule-{html.escape(row.rule)}">{html.escape(row.name)}</a></td>{cells}'
            f"<td>{html.escape(for_terminal(row.outcome))}{never}</td></tr>"
        )
    verdict = " ".join(html.escape(line) for line in _verdict(table) if line.strip())
    return (
        f'<div class="decision" style="overflow-x:auto"><table><tr><th>rule</th>{header}<th>outcome</th></tr>'
        + "".join(rows)
        + f'</table><p class="meta">{html.escape(table.hit_policy)} {verdict}</p></div>'
    )


def _md(text: str) -> str:
    return for_terminal(text).replace("|", "\\|")


__all__ = ["DecisionTable", "Row", "decision_tables", "hit_policy", "table_html", "table_markdown", "table_text"]
