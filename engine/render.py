"""Renderers: a Result as text for a person, or as JSON / JSON Lines for programs."""

import csv
import io
import sys
import time
from collections import Counter
from dataclasses import dataclass
from typing import Callable, List, Optional, TextIO

from .escape import for_spreadsheet, for_terminal, json_text
from .rulebase import RuleBase
from .words import basis_and_refs, dose_line, stance_label

STANCE_COLOURS = {"first-line": "green", "second-line": "green", "trial-justified": "yellow",
                  "not-established": "yellow", "not-effective": "red", "out-of-scope": "magenta"}
SEVERITY_COLOURS = {"critical": "red", "warning": "yellow", "info": "blue"}
FORMATS = ("text", "json", "jsonl", "csv")  # what `Formatter` and `ResultWriter` write


def to_json(result) -> str:
    """A result as one line of JSON, safe to show on a terminal (see escape.json_text)."""
    return json_text(result.to_dict())


def plain_style(text, **_):
    """A `style` that leaves text plain (NO_COLOR, files, pipes); picklable for workers."""
    return text


class TextRenderer:
    """Renders results for a terminal; `style` is click.style or a no-op."""

    def __init__(self, rulebase: RuleBase, style: Callable = plain_style, chain: bool = True):
        self.rulebase = rulebase
        self.style = style
        self.chain = chain

    def value(self, name, value) -> str:
        spec = self.rulebase.schema.fields.get(name)
        if spec is not None:
            return spec.label(value)
        if isinstance(value, bool):
            return "yes" if value else "no"
        return str(value)

    def render(self, result) -> str:
        """A result as lines for a person. Critical warnings stand on the
        headline and in full right under it, before anything else: a
        clinician who reads one line still sees them. Text that came from
        input (ids, sources, error messages) is escaped for the terminal."""
        s = self.style
        lines = []
        name = s(for_terminal(result.id), bold=True)
        if not result.ok:
            e = result.error
            where = for_terminal(e.get("source") or "")
            if e.get("line"):
                where += f":{e['line']}"
            lines.append(f"{name}  {s('ERROR', fg='red', bold=True)}  {where}")
            field = f" [{for_terminal(e['field'])}]" if e.get("field") else ""
            lines.append(f"  {for_terminal(e['message'])}{field}")
            for other in e.get("others", []):
                at = f"line {other['line']}: " if other.get("line") else ""
                fld = f" [{for_terminal(other['field'])}]" if other.get("field") else ""
                lines.append(f"  {at}{for_terminal(other['message'])}{fld}")
            return "\n".join(lines)
        stance = result.ivig["stance"]
        headline = f"{name}  {s(stance_label(stance), fg=STANCE_COLOURS[stance], bold=True)}"
        if result.critical:
            headline += "  -  " + s("CRITICAL: " + ", ".join(result.critical), fg="red", bold=True)
        lines.append(headline)
        lines.extend(self.warning_lines(w for w in result.warnings if w["severity"] == "critical"))
        lines.append(f"  {result.ivig['summary']}")
        source = f"; {for_terminal(result.source)}" + (f":{result.line}" if result.line else "") \
            if result.source else ""
        lines.append(s(f"  (rule {result.ivig['rule']}{source})", dim=True))
        if result.dose:
            lines.append("  " + s("Dose: ", bold=True) + dose_line(result.dose, patient=True))
            if result.dose.get("note"):
                lines.append(f"    {result.dose['note']}")
        others = [w for w in result.warnings if w["severity"] != "critical"]
        if others:
            lines.append("  " + s("Warnings:", bold=True))
            lines.extend(self.warning_lines(others))
        if result.missing:
            lines.append("  " + s("Unknown, would let more rules decide: ", bold=True) + ", ".join(result.missing))
        if self.chain and result.trace:
            lines.append("  " + s("How:", bold=True))
            lines.extend("    " + line for line in self.chain_lines(result))
        return "\n".join(lines)

    def warning_lines(self, warnings) -> List[str]:
        """Each warning as a tagged line, and its action under it."""
        lines = []
        for w in warnings:
            tag = self.style(f"{w['severity'].upper():8}", fg=SEVERITY_COLOURS[w["severity"]], bold=True)
            lines.append(f"    {tag} {w['code']}: {w['message']}")
            if w.get("action"):
                lines.append(f"             -> {w['action']}")
        return lines

    def chain_lines(self, result) -> List[str]:
        """The chain behind the stance, the dose and the non-info warnings, as a tree
        from each conclusion back to the input findings."""
        first_by_rule = {}
        for entry in result.trace:
            first_by_rule.setdefault(entry["rule"], entry)
        outputs = [result.ivig["rule"]]
        if result.dose:
            outputs.append(result.dose["rule"])
        outputs += [w["rule"] for w in result.warnings if w["severity"] != "info"]
        lines, shown = [], set()
        for rule_id in dict.fromkeys(outputs):
            entry = first_by_rule.get(rule_id)
            if entry is None:
                continue
            asserted = ", ".join(f"{a['name']} = {self.value(a['name'], a['value'])}" for a in entry["asserted"])
            lines.append(f"{asserted}  ← {self._rule_tag(entry['rule'])}")
            shown.add(rule_id)
            self._children(entry, first_by_rule, lines, "", shown)
        return lines

    def _rule_tag(self, rule_id) -> str:
        rule = self.rulebase.by_id.get(rule_id)
        tag = self.style(rule_id, bold=True)
        return tag + (self.style(f" [{basis_and_refs(rule)}]", dim=True) if rule else "")

    def _children(self, entry, first_by_rule, lines, indent, shown):
        matched = entry["matched"]
        for i, fact in enumerate(matched):
            last = i == len(matched) - 1
            branch, deeper = ("└─ ", "   ") if last else ("├─ ", "│  ")
            text = f"{fact['name']} = {self.value(fact['name'], fact['value'])}"
            parent = first_by_rule.get(fact.get("from")) if fact["fact"] == "Derived" else None
            if parent is None:
                lines.append(indent + branch + text + self.style("  (input)", dim=True))
            elif parent["rule"] in shown:
                lines.append(indent + branch + text + f"  ← {self._rule_tag(parent['rule'])}"
                             + self.style(" (as above)", dim=True))
            else:
                shown.add(parent["rule"])
                lines.append(indent + branch + text + f"  ← {self._rule_tag(parent['rule'])}")
                self._children(parent, first_by_rule, lines, indent + deeper, shown)


class Summary:
    """Counts of a batch as it streams by: constant memory, whatever the batch size."""

    def __init__(self):
        self.statuses, self.stances = Counter(), Counter()

    def add(self, result):
        self.statuses[result.status] += 1
        if result.ok:
            self.stances[result.ivig["stance"]] += 1

    @property
    def failed(self) -> bool:
        return self.statuses["error"] > 0

    def __str__(self) -> str:
        """'12 cases: 11 ok, 1 error; first-line 5, ...'."""
        total, errors = sum(self.statuses.values()), self.statuses["error"]
        text = (f"{total} case{'s' if total != 1 else ''}: {self.statuses['ok']} ok, "
                f"{errors} error{'s' if errors != 1 else ''}")
        if self.stances:
            text += "; " + ", ".join(f"{k} {v}" for k, v in sorted(self.stances.items()))
        return text


CSV_COLUMNS = ("id", "status", "stance", "max_severity", "critical", "rule", "total_g_per_kg",
               "g_per_kg_per_day", "days", "total_g", "repeat", "warnings", "missing", "error", "source", "line")


def csv_row(result) -> list:
    """One case as a CSV row: warnings are codes, and missing fields names, joined by ';'.

    The highest severity and the critical codes sit beside the stance, so a
    spreadsheet filtered on the stance still shows them. Every text cell is
    made safe for spreadsheets (no cell from input can start a formula).
    """
    dose = result.dose or {}
    error = result.error or {}
    row = [result.id, result.status, (result.ivig or {}).get("stance", ""), result.max_severity or "",
           ";".join(result.critical), (result.ivig or {}).get("rule", ""),
           *("" if dose.get(k) is None else dose[k] for k in ("total_g_per_kg", "g_per_kg_per_day", "days",
                                                                "total_g", "repeat")),
           ";".join(w["code"] for w in result.warnings), ";".join(result.missing),
           error.get("message", "") + (f" [{error['field']}]" if error.get("field") else ""),
           result.source or "", "" if result.line is None else result.line]
    return [for_spreadsheet(cell) for cell in row]


@dataclass
class Formatted:
    """A result already rendered, with what the summary and progress need of it."""
    id: str
    status: str
    ivig: Optional[dict]
    text: str

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class Formatter:
    """Renders one result as one item of an output format; picklable, so that
    worker processes can render what they evaluate."""

    def __init__(self, fmt: str, chain: bool = True, style: Callable = plain_style):
        if fmt not in FORMATS:
            raise ValueError(f"no output format '{fmt}' (formats: {', '.join(FORMATS)})")
        self.fmt, self.chain, self.style = fmt, chain, style
        self._renderers = {}

    def __getstate__(self):
        return {"fmt": self.fmt, "chain": self.chain, "style": self.style, "_renderers": {}}

    def __call__(self, result, rulebase: RuleBase) -> Formatted:
        if self.fmt == "text":
            renderer = self._renderers.get(id(rulebase))
            if renderer is None:
                renderer = self._renderers[id(rulebase)] = TextRenderer(rulebase, self.style, self.chain)
            text = renderer.render(result)
        elif self.fmt == "csv":
            # with an empty line terminator the csv module would not quote a
            # cell holding a newline: write a whole row, then drop its end
            line = io.StringIO()
            csv.writer(line, lineterminator="\n").writerow(csv_row(result))
            text = line.getvalue()[:-1]
        else:
            text = to_json(result)
        return Formatted(result.id, result.status, result.ivig and {"stance": result.ivig["stance"]}, text)


class ResultWriter:
    """Writes formatted results to a stream: separators, header and footer of each format."""

    def __init__(self, stream: TextIO, fmt: str):
        self.stream, self.fmt = stream, fmt
        self.count = 0
        if fmt == "json":
            stream.write("[")
        elif fmt == "csv":
            csv.writer(stream, lineterminator="\n").writerow(CSV_COLUMNS)

    def write(self, item: Formatted):
        first = self.count == 0
        self.count += 1
        if self.fmt == "text":
            self.stream.write(("" if first else "\n") + item.text + "\n")
        elif self.fmt == "json":
            self.stream.write(("\n" if first else ",\n") + item.text)
        else:
            self.stream.write(item.text + "\n")

    def close(self):
        if self.fmt == "json":
            self.stream.write("\n]\n")
        self.stream.flush()


class Progress:
    """A one-line counter on a terminal's stderr for long batches: cases, rate, errors.

    Silent for the first second (a short batch shows nothing), then redrawn
    at most five times a second; `close()` wipes it.
    """

    def __init__(self, stream: TextIO = None, delay: float = 1.0, every: float = 0.2):
        self.stream = stream or sys.stderr
        self.start = time.monotonic()
        self.delay, self.every = delay, every
        self.next = self.start + delay
        self.cases = self.errors = 0
        self.shown = False

    def add(self, result):
        self.cases += 1
        self.errors += not result.ok
        now = time.monotonic()
        if now >= self.next:
            self.next = now + self.every
            rate = self.cases / max(now - self.start, 1e-9)
            self.stream.write(f"\r  {self.cases:,} cases  {rate:,.0f}/s  {self.errors:,} errors ")
            self.stream.flush()
            self.shown = True

    def close(self):
        if self.shown:
            self.stream.write("\r" + " " * 60 + "\r")
            self.stream.flush()
