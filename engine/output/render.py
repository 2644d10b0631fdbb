"""Renderers: a Result as text for a person, or as JSON, JSON Lines or CSV for programs (Formatter),
a batch's results written to a stream (ResultWriter), and its summary line (Summary). Text is
wrapped to the terminal by wrap; the progress line is progress's."""

import csv
import io
import os
import re
from collections import Counter
from dataclasses import dataclass
from typing import Callable, List, Optional, TextIO

from ..base.errors import FormatContradicted
from ..base.escape import for_spreadsheet, for_terminal, json_text
from ..core.advisor import GENERAL
from ..core.contract import CSV_COLUMNS, RESULT_DOSE_KEYS
from ..core.later import RELATION_WORDS, kind_words, since
from ..core.rulebase import RuleBase
from ..core.words import basis_and_refs, dose_line, grade_tag, stance_label
from .wrap import wrap

STANCE_COLOURS = {
    "first-line": "green",
    "second-line": "green",
    "trial-justified": "yellow",
    "not-established": "yellow",
    "not-effective": "red",
    "out-of-scope": "magenta",
}
SEVERITY_COLOURS = {"critical": "red", "warning": "yellow", "info": "blue"}
FORMATS = ("text", "json", "jsonl", "csv")  # what `Formatter` and `ResultWriter` write
# The format an output file's extension names; any other name is written as text by default.
EXTENSION_FORMATS = {".csv": "csv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl"}


def output_format(asked: Optional[str], output: Optional[str]) -> str:
    """The format to write: `asked` (--format), else the one the output file's extension names
    (`results.csv` is CSV, not 24 MB of text in a file called .csv), else text.

    FormatContradicted when `asked` is not the format the extension names."""
    implied = EXTENSION_FORMATS.get(os.path.splitext(output)[1].lower()) if output else None
    if asked is not None and implied is not None and asked != implied:
        raise FormatContradicted(
            f"{asked} contradicts the output file's name {output} (a "
            f"{os.path.splitext(output)[1]} file is {implied}): leave out --format, or name "
            f"the file for {asked}",
            "--format",
        )
    return asked or implied or "text"


def to_json(result) -> str:
    """A result as one line of JSON, safe to show on a terminal (see escape.json_text)."""
    return json_text(result.to_dict())


def plain_style(text, **_):
    """A `style` that leaves text plain (NO_COLOR, files, pipes); picklable for workers."""
    return text


class TextRenderer:
    """Renders results for a terminal; `style` is click.style or a no-op; `width`
    the columns to wrap to (None: no wrapping, for files and pipes)."""

    def __init__(
        self, rulebase: RuleBase, style: Callable = plain_style, chain: bool = True, width: Optional[int] = None
    ):
        self.rulebase = rulebase
        year = rulebase.review_year
        self.review = f"the review, {year}" if year else "the review"  # whose stance it is, always said
        self.style = style
        self.chain = chain
        self.width = width

    def value(self, name, value) -> str:
        spec = self.rulebase.schema.fields.get(name)
        if spec is not None:
            return spec.label(value)
        if isinstance(value, bool):
            return "yes" if value else "no"
        return str(value)

    def fit(self, line: str, hang) -> str:
        """A line wrapped to the width; further lines start with `hang` (spaces, or a prefix)."""
        return wrap(line, self.width, " " * hang if isinstance(hang, int) else hang)

    def render(self, result, unknown: Optional[List[str]] = None) -> str:
        """A result as lines for a person. Critical warnings stand on the
        headline and in full right under it, before anything else: a
        clinician who reads one line still sees them. Text that came from
        input (ids, sources, error messages) is escaped for the terminal.

        `unknown`: what to report as unknown instead of the missing fields'
        names, one item a line (the interview gives its questions)."""
        if not result.ok:
            return "\n".join(self.error_lines(result))
        s = self.style
        # what is about this patient, in full, before the stance: critical first
        lines = self.headline(result) + self.patient_warning_lines(result) + self.stance_lines(result)
        lines.extend(self.since_lines(result))
        lines.extend(self.precaution_lines(result.warnings))
        lines.extend(self.unknown_lines(result.missing, unknown))
        normalised = result.source_notes.normalised
        if normalised:  # what was read from another spelling, so a person can check it
            lines.append(self.fit("  " + s("Read as: ", bold=True) + normalised_text(normalised), 4))
        lines.extend(self.record_lines(result))
        if self.chain and result.trace:
            lines.append("  " + s("How:", bold=True))
            lines.extend(self.chain_lines(result, prefix="    "))
        return "\n".join(lines)

    def headline(self, result) -> List[str]:
        """The id and the stance, and every critical code: one line, wrapped."""
        s, stance = self.style, result.ivig["stance"]
        line = (
            f"{s(for_terminal(result.id), bold=True)}  {s(stance_label(stance), fg=STANCE_COLOURS[stance], bold=True)}"
        )
        if result.critical:
            later = {w["code"] for w in result.warnings if w.get("later_evidence")}
            codes = [f"{code} (later evidence)" if code in later else code for code in result.critical]
            line += "  -  " + s("CRITICAL: " + ", ".join(codes), fg="red", bold=True)
        return [self.fit(line, 4)]

    def patient_warning_lines(self, result, most_severe_last: bool = False) -> List[str]:
        """The warnings about this patient, in full (what applies to every infusion is one line apart),
        most severe first; with `most_severe_last`, in the reverse order, so that read upwards from a
        headline under them they come as they do in reading order. A finding of later evidence is
        marked so, with its source and where to read it."""
        warnings = [w for w in result.warnings if w["code"] != GENERAL]  # most severe first (advisor)
        return self.warning_lines(reversed(warnings) if most_severe_last else warnings)

    def stance_lines(self, result) -> List[str]:
        """What the review says (the stance's summary and rule, named as the review's) and the dose for
        this patient."""
        s = self.style
        source = (
            f"; {for_terminal(result.source)}" + (f":{result.line}" if result.line else "") if result.source else ""
        )
        lines = [
            self.fit(f"  {result.ivig['summary']}", 2),
            self.fit(s(f"  ({self.review}: rule {result.ivig['rule']}{source})", dim=True), 3),
        ]
        if result.dose:
            lines.append(self.fit("  " + s("Dose: ", bold=True) + dose_line(result.dose, patient=True), 8))
            if result.dose.get("note"):
                lines.append(self.fit(f"    {result.dose['note']}", 4))
        return lines

    def error_lines(self, result) -> List[str]:
        """An error result: the headline with where, the message, and the other errors."""
        s, e = self.style, result.error
        where = for_terminal(e.get("source") or "")
        if e.get("line"):
            where += f":{e['line']}"
        lines = [self.fit(f"{s(for_terminal(result.id), bold=True)}  {s('ERROR', fg='red', bold=True)}  {where}", 4)]
        field = f" [{for_terminal(e['field'])}]" if e.get("field") else ""
        lines.append(self.fit(f"  {for_terminal(e['message'])}{field}", 4))
        for other in e.get("others", []):
            at = f"line {other['line']}: " if other.get("line") else ""
            fld = f" [{for_terminal(other['field'])}]" if other.get("field") else ""
            lines.append(self.fit(f"  {at}{for_terminal(other['message'])}{fld}", 4))
        return lines + self.record_lines(result)

    def record_lines(self, result) -> List[str]:
        """For a case read from FHIR: which resource set each field, and what the mapping did not read."""
        origins, unmapped = result.source_notes.origins, result.source_notes.unmapped
        if origins is None:
            return []
        s, lines = self.style, []
        if origins:
            lines.append("  " + s("From the record:", bold=True))
            lines.extend(
                self.fit(f"    {name}: " + for_terminal("; ".join(where)), 6) for name, where in origins.items()
            )
        if unmapped:
            lines.append("  " + s(f"Not read ({len(unmapped)}; extend facts/fhir-map.yaml to read them):", bold=True))
            for u in unmapped[:UNMAPPED_SHOWN]:
                codes = f" {'; '.join(u['codes'])}" if u["codes"] else ""
                lines.append(self.fit(for_terminal(f"    {u['resource']}{codes}: {u['reason']}"), 6))
            if len(unmapped) > UNMAPPED_SHOWN:
                lines.append(f"    ... and {len(unmapped) - UNMAPPED_SHOWN} more (every one in --format json)")
        return lines

    def unknown_lines(self, missing: List[str], unknown: Optional[List[str]]) -> List[str]:
        """The unknown fields: their names on one line, or the given items one a line."""
        heading = self.style("Unknown, would let more rules decide:", bold=True)
        if unknown is None:
            return [self.fit(f"  {heading} " + ", ".join(missing), 4)] if missing else []
        return [f"  {heading}"] + [self.fit(f"    - {item}", 6) for item in unknown] if unknown else []

    def warning_lines(self, warnings) -> List[str]:
        """Each warning as a tagged line (with the review's grade of the adverse event), and its
        action under it. A finding of later evidence (no rule of the review's gives it) is as loud
        as its severity, but marked '(later evidence)' and followed by its source and link."""
        lines = []
        for w in warnings:
            tag = self.style(f"{w['severity'].upper():8}", fg=SEVERITY_COLOURS[w["severity"]], bold=True)
            entry_id = w.get("later_evidence")
            mark = " (later evidence)" if entry_id else f" {grade_tag(w.get('grade'))}" if w.get("grade") else ""
            # a warning's words are a rule file's, or the later-evidence file's: text from a file
            lines.append(self.fit(f"    {tag} {w['code']}{mark}: {for_terminal(w['message'])}", 13))
            if w.get("action"):
                lines.append(self.fit(f"             -> {for_terminal(w['action'])}", 16))
            if entry_id:
                source = for_terminal(f"{w['citation']}, {w['link']}")
                lines.append(self.fit(f"             {self.style('Source:', dim=True)} {source}", 13))
        return lines

    def since_lines(self, result) -> List[str]:
        """The later evidence that speaks to this case ('Since 2004'), beside the review's advice and
        never in it: quiet, one line an entry (its year, kind and relation to the review, what it
        found, its source and where to read it); none when no entry speaks to the case."""
        if not result.later_evidence:
            return []
        s = self.style
        heading = s(since(self.rulebase.review_year) + ":", bold=True)
        heading = f"  {heading} later evidence beside the review's advice, not part of it"
        lines = [self.fit(heading, 4)]
        for note in result.later_evidence:
            what = f"{kind_words(note['kind'])}, {RELATION_WORDS[note['relation']]}"
            found = for_terminal(f"    {note['year']}  {what}: {note['title']}. ")
            source = s(for_terminal(f"{short_citation(note['citation'])}, {note['link']}"), dim=True)
            # its finding is among the warnings above, in full: here it is named, not said again
            above = f" {s('(warning ' + note['harm'] + ' above)', dim=True)}" if note["harm"] else ""
            lines.append(self.fit(found + source + above, 10))
        return lines

    def precaution_lines(self, warnings) -> List[str]:
        """What applies to every infusion, said once and quietly: one line, each with its grade."""
        return [
            self.fit("  " + self.style(f"{w['summary']}:", dim=True) + " " + w["message"], 4)
            for w in warnings
            if w["code"] == GENERAL
        ]

    def chain_lines(self, result, prefix: str = "") -> List[str]:
        """The chain behind the stance, the dose and the non-info warnings, as a tree
        from each conclusion back to the input findings; each line starts with `prefix`."""
        first_by_rule = {}
        for entry in result.trace:
            first_by_rule.setdefault(entry["rule"], entry)
        outputs = [result.ivig["rule"]]
        if result.dose:
            outputs.append(result.dose["rule"])
        # a finding of later evidence has no rule (`rule`: None): the tree is the review's reasoning
        outputs += [w["rule"] for w in result.warnings if w["severity"] != "info" and w["rule"] is not None]
        lines, shown = [], set()
        for rule_id in dict.fromkeys(outputs):
            entry = first_by_rule.get(rule_id)
            if entry is None:
                continue
            asserted = ", ".join(f"{a['name']} = {self.value(a['name'], a['value'])}" for a in entry["asserted"])
            lines.append(
                self.fit(
                    f"{prefix}{asserted}  ← {self._rule_tag(entry['rule'])}",
                    prefix + ("│  " if entry["matched"] else "   ") + "   ",
                )
            )
            shown.add(rule_id)
            self._children(entry, first_by_rule, lines, prefix, shown)
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
            expands = parent is not None and parent["rule"] not in shown
            # a wrapped line keeps the tree: its own branch continues, and so does a subtree under it
            hang = indent + deeper + ("│  " if expands and parent["matched"] else "   ") + "   "
            if parent is None:  # an input: from the case file, or from the FHIR resources that set it
                origin = "input" if not fact.get("origin") else "from " + for_terminal("; ".join(fact["origin"]))
                lines.append(self.fit(indent + branch + text + self.style(f"  ({origin})", dim=True), hang))
            elif not expands:
                lines.append(
                    self.fit(
                        indent
                        + branch
                        + text
                        + f"  ← {self._rule_tag(parent['rule'])}"
                        + self.style(" (as above)", dim=True),
                        hang,
                    )
                )
            else:
                shown.add(parent["rule"])
                lines.append(self.fit(indent + branch + text + f"  ← {self._rule_tag(parent['rule'])}", hang))
                self._children(parent, first_by_rule, lines, indent + deeper, shown)


class Summary:
    """Counts of a batch as it streams by: constant memory, whatever the batch size."""

    def __init__(self, output: Optional[str] = None):
        """`output`: the file the results went to (-o), named at the end of the line."""
        self.statuses, self.stances = Counter(), Counter()
        self.critical = 0  # cases with a critical warning: the count a reader must not miss
        self.output = output

    def add(self, result):
        self.statuses[result.status] += 1
        self.critical += bool(result.critical)
        if result.ok:
            self.stances[result.ivig["stance"]] += 1

    @property
    def failed(self) -> bool:
        return self.statuses["error"] > 0

    def __str__(self) -> str:
        """'12 cases: 11 ok, 1 error, 2 with a CRITICAL warning; first-line 5, ...; results in out.csv'."""
        total, errors = sum(self.statuses.values()), self.statuses["error"]
        text = (
            f"{total} case{'s' if total != 1 else ''}: {self.statuses['ok']} ok, "
            f"{errors} error{'s' if errors != 1 else ''}, {self.critical} with a CRITICAL warning"
        )
        if self.stances:
            text += "; " + ", ".join(f"{k} {v}" for k, v in sorted(self.stances.items()))
        if self.output:
            text += f"; results in {for_terminal(self.output)}"
        return text


UNMAPPED_SHOWN = 20  # text output: the first codes not read; JSON and CSV hold them all


def normalised_text(normalised: List[dict]) -> str:
    """'diagnosis: mg -> myasthenia_gravis; weight_kg: 70 kg -> 70', escaped: the written side is input."""
    return "; ".join(f"{n['field']}: {for_terminal(str(n['written']))} -> {_as_written(n['read'])}" for n in normalised)


def _as_written(value) -> str:
    """A value as a case file writes it: true/false, a list in brackets."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_as_written(v) for v in value) + "]"
    return str(value)


_ET_AL = re.compile(r"^([^,.]+), [^.]*\bet al\.\s*")  # 'Hughes RAC, Donofrio P, ..., et al. ' up to the journal


def short_citation(citation: str) -> str:
    """A citation with its list of authors cut to the first ('Hughes RAC et al. Lancet Neurol 2008;...');
    one that lists every author, or none, as it is."""
    return _ET_AL.sub(r"\1 et al. ", citation, count=1)


def csv_row(result) -> list:
    """One case as a CSV row: warnings are codes, and missing fields names, joined by ';'; so are
    the ids of the later-evidence entries that speak to it (`later_evidence`).

    The highest severity and the critical codes sit beside the stance, so a
    spreadsheet filtered on the stance still shows them. `unmapped` lists, for a case read
    from FHIR, the resources and codes the mapping did not read; `later_evidence` comes last,
    so that the columns before it are where they were before it was added. Every text
    cell is made safe for spreadsheets (no cell from input can start a formula).
    """
    dose = result.dose or {}
    error = result.error or {}
    row = [
        result.id,
        result.status,
        (result.ivig or {}).get("stance", ""),
        result.max_severity or "",
        ";".join(result.critical),
        (result.ivig or {}).get("rule", ""),
        *("" if dose.get(k) is None else dose[k] for k in RESULT_DOSE_KEYS),
        ";".join(w["code"] + (f" ({w['grade']})" if w.get("grade") else "") for w in result.warnings),
        ";".join(result.missing),
        error.get("message", "") + (f" [{error['field']}]" if error.get("field") else ""),
        result.source or "",
        "" if result.line is None else result.line,
        normalised_text(result.source_notes.normalised),
        (result.rules or {}).get("version", ""),
        (result.rules or {}).get("hash", ""),
        "; ".join(
            u["resource"] + (f" {', '.join(u['codes'])}" if u["codes"] else "")
            for u in result.source_notes.unmapped or ()
        ),
        ";".join(note["id"] for note in result.later_evidence),
    ]
    return [for_spreadsheet(cell) for cell in row]


@dataclass
class Formatted:
    """A result already rendered, with what the summary and progress need of it."""

    id: str
    status: str
    ivig: Optional[dict]
    text: str
    critical: tuple = ()  # the codes of its critical warnings

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class Formatter:
    """Renders one result as one item of an output format; picklable, so that
    worker processes can render what they evaluate."""

    def __init__(self, fmt: str, chain: bool = True, style: Callable = plain_style, width: Optional[int] = None):
        """`width`: the columns text is wrapped to (terminal_width() for a terminal; None: no wrapping)."""
        if fmt not in FORMATS:
            raise ValueError(f"no output format '{fmt}' (formats: {', '.join(FORMATS)})")
        self.fmt, self.chain, self.style, self.width = fmt, chain, style, width
        self._renderers = {}

    def __getstate__(self):
        return {"fmt": self.fmt, "chain": self.chain, "style": self.style, "width": self.width, "_renderers": {}}

    def __call__(self, result, rulebase: RuleBase) -> Formatted:
        if self.fmt == "text":
            renderer = self._renderers.get(id(rulebase))
            if renderer is None:
                renderer = self._renderers[id(rulebase)] = TextRenderer(rulebase, self.style, self.chain, self.width)
            text = renderer.render(result)
        elif self.fmt == "csv":
            # with an empty line terminator the csv module would not quote a
            # cell holding a newline: write a whole row, then drop its end
            line = io.StringIO()
            csv.writer(line, lineterminator="\n").writerow(csv_row(result))
            text = line.getvalue()[:-1]
        else:
            text = to_json(result)
        return Formatted(
            result.id, result.status, result.ivig and {"stance": result.ivig["stance"]}, text, tuple(result.critical)
        )


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
