"""Text and Markdown renderings of the audit views (engine.audit) for a terminal or a review."""

import html
import re
from itertools import groupby
from typing import Callable, List, Optional

from ..base.escape import for_terminal
from ..core.later import RELATION_WORDS, kind_words
from ..core.rulebase import STANCE, RuleBase, RuleSpec
from ..core.words import dose_line, provenance, sentence, value_label
from ..output.render import TextRenderer, plain_style
from . import views as audit
from .signoff import ReviewLog, unsigned


def rule_lines(
    rulebase: RuleBase, rule: RuleSpec, log: Optional[ReviewLog], style: Callable = plain_style, full: bool = False
) -> List[str]:
    """One rule for a reviewer: plain sentence, provenance, basis, where it is in its lifecycle."""
    s = style
    tag = s(f"[{rule.basis}]", fg="green" if rule.basis == "review" else "yellow")
    # Text from the rules and the log is shown with its control characters
    # made visible (\\e, \\n): an escape sequence in a title must not clear the
    # reviewer's screen or forge a line.
    lines = [
        f"{s(rule.id, bold=True)}  {tag} {for_terminal(lifecycle(rule, log))}",
        f"  {rule.title}",
        f"  {sentence(rulebase, rule)}",
        f"  Source: {provenance(rule)}",
    ]
    lines[1:] = [for_terminal(line) for line in lines[1:]]
    more = []
    if rule.source.get("quote"):
        more.append(f"  Quote: {rule.source['quote']}")
    if rule.source.get("quote_en"):  # the review is in Japanese: every view gives the English too
        more.append(f"  In English: {rule.source['quote_en']}")
    if rule.basis == "assumption" or (full and rule.rationale):
        more.append(f"  Rationale: {rule.rationale}")
    for flag in rule.flags:
        more.append(f"  Flag: {flag}")
    for change in rule.changes:  # what a reviewer who signed before must look at again
        more.append(f"  Changed: {change}")
    if full:
        if rule.explanation:
            more.append(f"  Explanation: {rule.explanation}")
        if "recommend" in rule.then:
            more.append(f"  Says: {rule.then['recommend']['summary']}")
        if rule.then.get("dose", {}).get("note"):
            more.append(f"  Dose note: {rule.then['dose']['note']}")
        for w in rule.warnings:
            more.append(
                f"  Warns ({w['severity']}) {w['code']}: {w['message']}"
                + (f" -> {w['action']}" if w.get("action") else "")
            )
    lines += [for_terminal(line) for line in more]
    lines.append(s(for_terminal(f"  {rule.file}:{rule.line}"), dim=True))
    return lines


def lifecycle(rule: RuleSpec, log: Optional[ReviewLog]) -> str:
    """'approved by A on 2026-11-02', 'draft: not signed yet', 'stale: ...': one line, the same everywhere."""
    if log is None:
        stage = unsigned(rule).stage
        return stage if stage == "retired" else f"{stage}: no review log read"
    return log.state(rule).describe()


def lifecycle_counts(counts: dict, label: str = "Lifecycle") -> str:
    """'Lifecycle: 82 draft, 2 approved, 0 needs-change, 1 stale' (ReviewLog.counts)."""
    return f"{label}: " + ", ".join(f"{n} {k}" for k, n in counts.items())


EVIDENCE_LIFECYCLE = "Later evidence"  # the label of the entries' lifecycle counts


def rules_text(
    rulebase: RuleBase, rules: List[RuleSpec], log: Optional[ReviewLog], style: Callable = plain_style
) -> str:
    out = []
    for topic, members in groupby(rules, key=lambda r: r.topic):
        title = rulebase.topics.get(topic) or topic
        out.append(style(for_terminal(f"== {title} ({topic}) =="), bold=True))
        for rule in members:
            out.extend(rule_lines(rulebase, rule, log, style))
            out.append("")
    if log is not None:
        out.append(lifecycle_counts(log.counts()))
    out.append(
        f"{len(rules)} rule{'s' if len(rules) != 1 else ''} "
        f"({sum(r.basis == 'assumption' for r in rules)} resting on assumptions)"
    )
    return "\n".join(out)


# Markdown's inline syntax, and what starts a block: escaped wherever rule text
# goes, so that a title can neither run HTML (<script>) nor forge a link, a
# heading or a table cell in the review document.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]#|~])")


def md(text) -> str:
    """Text from the rules (or the log) as Markdown that shows exactly that text, on one line."""
    text = html.escape(for_terminal(" ".join(str(text).split())), quote=False)
    return _MD_SPECIAL.sub(r"\\\1", text)


def md_code(text) -> str:
    """A code span, unless the text could close it; then escaped plain text."""
    text = " ".join(str(text).split())
    return f"`{text}`" if "`" not in text else md(text)


def rules_markdown(rulebase: RuleBase, rules: List[RuleSpec], log: Optional[ReviewLog]) -> str:
    out = [f"# Rules of {md(rulebase.name)} (version {md(rulebase.version)})", ""]
    for topic, members in groupby(rules, key=lambda r: r.topic):
        out += [f"## {md(rulebase.topics.get(topic) or topic)}", ""]
        for rule in members:
            out += [
                f"### {md_code(rule.id)} — {md(rule.title)}",
                "",
                f"**{md(sentence(rulebase, rule))}**",
                "",
                f"- basis: {md(rule.basis)}; {md(lifecycle(rule, log))}",
                f"- source: {md(provenance(rule))}",
            ]
            if rule.source.get("quote"):
                out.append(f"- quote: {md(rule.source['quote'])}")
            if rule.source.get("quote_en"):
                out.append(f"- in English: {md(rule.source['quote_en'])}")
            if rule.rationale:
                out.append(f"- rationale: {md(rule.rationale)}")
            out += [f"- flag: {md(flag)}" for flag in rule.flags]
            out += [f"- changed: {md(change)}" for change in rule.changes]
            out += [f"- written at {md_code(f'{rule.file}:{rule.line}')}", ""]
    return "\n".join(out)


def regimens_text(rows: List[dict], style: Callable = plain_style) -> str:
    """The regimen table for a terminal: a line per regimen, its repeat and rules under it."""
    if not rows:
        return "No rule gives a dose."
    width = max(len(r["regimen"] or "(in a rule)") for r in rows)
    out = []
    for r in rows:
        who = r["diagnosis_label"] or "-"
        out.append(f"{r['regimen'] or '(in a rule)':{width}}  {r['dose']}")
        out.append(f"{'':{width}}  {who}: {r['situation'] or '-'}")
        if r["repeat"]:
            out.append(f"{'':{width}}  repeat: {r['repeat']}")
        out.append(f"{'':{width}}  rules: {', '.join(r['rules']) or 'none (an unused row)'}")
    # what the rules say is escaped for the terminal; the heading is styled after
    return "\n".join([style(f"{'regimen':{width}}  dose", bold=True)] + [for_terminal(line) for line in out])


def regimens_markdown(rows: List[dict]) -> str:
    """The regimen table as one Markdown table."""
    out = ["| regimen | diagnosis | situation | dose | repeat | rules |", "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        cells = [
            md_code(r["regimen"]) if r["regimen"] else "(in a rule)",
            md(r["diagnosis_label"] or "-"),
            md(r["situation"] or "-"),
            md(r["dose"]),
            md(r["repeat"] or "-"),
            ", ".join(md_code(i) for i in r["rules"]) or "none",
        ]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def show_text(view: audit.RuleView, style: Callable = plain_style) -> str:
    rulebase, rule = view.rulebase, view.rule
    head = rule_lines(rulebase, rule, view.log, style, full=True)
    lines = [f"  Layer: {rule.layer} — {rulebase.layer(rule.layer).help}"]
    upkeep = rulebase.maintenance.get(rule.topic)
    if upkeep:
        lines.append("  Maintenance: " + "; ".join(f"{k} {v}" for k, v in upkeep.items()))
    evidence = rulebase.extras.get("evidence") or {}
    for name in rule.evidence:
        record = evidence.get(name) or {}
        lines.append(
            f"  Evidence {name}: {record.get('trial', '?')}; {record.get('design', '')}"
            + (f", n={record['n']}" if record.get("n") else "")
            + (f"; {record['result']}" if record.get("result") else "")
        )
    assumptions = (rulebase.extras.get("claims") or {}).get("assumptions") or {}
    for name in rule.assumptions:
        lines.append(f"  Assumption {name}: {assumptions.get(name, '?')}")
    for name, flag in view.review_flags.items():
        lines.append(f"  Review flag ({name}): {flag}")
    lines.append("  Fed by: " + (", ".join(view.fed_by) or "the case's fields only"))
    lines.append("  Feeds: " + (", ".join(view.feeds) or "no other rule (a conclusion of the result)"))
    lines += precedence_lines(rulebase, view)
    if view.cases is None:
        lines.append("  Cases: no case corpus found (pass --cases)")
    else:
        lines.append(f"  Cases that fire it ({len(view.cases)}): " + (", ".join(view.cases) or "none"))
    return "\n".join(head + [for_terminal(line) for line in lines])  # case ids and data files are input too


def precedence_lines(rulebase: RuleBase, view: audit.RuleView) -> List[str]:
    """Which rules this rule keeps from firing, and which keep it from firing (a stance
    set by an earlier layer is final)."""
    if not rulebase.layer(view.rule.layer).sets_stance:
        return [
            f"  Precedence: none (the layer '{view.rule.layer}' sets no stance; its rules do not pre-empt "
            "or get pre-empted)"
        ]
    sets = STANCE in view.rule.derives
    return [
        "  Pre-empts: " + (", ".join(view.preempts) or ("no rule" if sets else "no rule (it sets no stance)")),
        "  Pre-empted by: " + (", ".join(view.preempted_by) or "no rule (no earlier layer sets a stance for it)"),
    ]


def witness_text(rulebase: RuleBase, witness: Optional[dict]) -> str:
    """One case showing a finding: its known fields; every other field unknown."""
    if not witness:
        return ""
    known = [f"{n.replace('_', ' ')} = {value_label(rulebase, n, v)}" for n, v in witness.items() if v is not None]
    return "e.g. " + ", ".join(known) + " (every other field unknown)"


def check_text(report: audit.CheckReport, style: Callable = plain_style) -> str:
    rulebase = report.rulebase
    out = []
    for finding in report.findings:  # a file name in the rule directory is input too (esc\e[2J.yaml)
        out.append(style(for_terminal(finding), fg="red"))
        if rulebase is not None and finding.witness:
            out.append(
                f"    {witness_text(rulebase, finding.witness)}"
                + (f"; {finding.combinations:,} combinations" if finding.combinations else "")
            )
    out += [style(for_terminal(f"{note} (a note: --strict fails on it)"), fg="yellow") for note in report.notes]
    out += [style(for_terminal(str(f)), fg="yellow") for f in report.acknowledged]
    v = report.verification
    if v is not None:
        out.append(
            f"Checked exhaustively: {v.combinations:,} combinations of the fields the rules test, "
            f"over {len(v.coverage)} diagnoses ({v.excluded:,} excluded by the schema's constraints; "
            f"{v.states:,} distinct states evaluated)."
        )
        for c in v.coverage:
            out.append(f"  {c.diagnosis:28} {len(c.fields):2d} fields  {c.combinations:>13,} combinations")
        out.append(
            "Checks: duplicate ids, schema, provenance, later evidence's sources and harm (on load); "
            "a rule's words against the numbers its condition compares; "
            "unreachable, conflicting stances, doses and warning severities, redundant and subsumed rules, "
            "gaps (exhaustive); later evidence: situations that can never hold, retired rules spoken to, "
            "sources not checked within the file's recheck_after_years (a note)."
        )
    if report.impact is not None:
        out.append(for_terminal(impact_summary(report.impact, report.against)))
    if report.signoff:
        out.append(lifecycle_counts(report.signoff))
    if report.evidence_signoff:
        out.append(lifecycle_counts(report.evidence_signoff, EVIDENCE_LIFECYCLE))
    n = len(report.findings)
    out.append(
        style(
            "OK: no findings" if report.ok else f"{n} finding{'s' if n != 1 else ''}",
            fg="green" if report.ok else "red",
            bold=True,
        )
    )
    return "\n".join(out)


def impact_lines(rulebase: RuleBase, impact, base_label: str, style: Callable = plain_style) -> List[str]:
    """`audit diff` over every patient: each change (safety regressions first, loud), where it
    holds, one patient showing it and the rules behind it; then what the walk covered."""
    out = ["Over every patient (the walk of `audit check`, over both rule bases):"]
    for change in impact.changes:
        head = f"SAFETY REGRESSION {change.id}" if change.regression else "change"
        out.append(
            style(
                for_terminal(f"  {head}: {change.describe()}"),
                fg="red" if change.regression else None,
                bold=change.regression,
            )
        )
        n = len(change.diagnoses)
        out.append(
            for_terminal(
                f"      in {n} diagnos{'es' if n != 1 else 'is'} ({change.combinations:,} combinations): "
                + ", ".join(change.diagnoses)
            )
        )
        out.append(for_terminal(f"      {witness_text(rulebase, change.witness)}"))
        out.append(
            for_terminal(
                f"      behind it: base {', '.join(change.base_rules) or '(none)'}; "
                f"this {', '.join(change.this_rules) or '(none)'}; edited: {', '.join(change.edited) or '(none)'}"
            )
        )
    return out + [for_terminal(impact_summary(impact, base_label)), ""]


def impact_summary(impact, against: str) -> str:
    """One line: what comparing with BASE over every patient covered and found."""
    if not impact.walked:
        return f"Compared with {against}: the rules that can fire are the same, word for word, for every diagnosis."
    n, r, d = len(impact.changes), len(impact.regressions), len(impact.walked)
    return (
        f"Compared with {against} over every patient of "
        + (
            f"{d} diagnos{'es' if d != 1 else 'is'} whose rules differ ({', '.join(impact.walked)}; "
            "the others' rules are the same, word for word): "
            if d < impact.diagnoses
            else "every diagnosis: "
        )
        + f"{impact.combinations:,} combinations in {impact.regions:,} regions; the advice differs in "
        f"{impact.differing:,} regions ({impact.changed_combinations:,} combinations): "
        f"{n} change{'s' if n != 1 else ''}, {r} of them safety regression{'s' if r != 1 else ''}."
    )


def failed_lines(rulebase: RuleBase, failed, what: str, style: Callable = plain_style) -> List[str]:
    """The cases of an audit that could not be read or evaluated, as `ivig evaluate` shows an
    error result (id, where, the errors), under a heading that says what they were not."""
    if not failed:
        return []
    renderer = TextRenderer(rulebase, style)
    out = [style(f"{len(failed)} case{'s' if len(failed) != 1 else ''} {what}:", fg="red", bold=True)]
    for result in failed:
        out += renderer.error_lines(result)
    return out


def coverage_text(rulebase: RuleBase, report: audit.CoverageReport, style: Callable = plain_style) -> str:
    counted = ", not counted below" if report.errors else ""
    out = [f"{report.cases} cases ({report.errors} with errors{counted}); rules fired:"]
    width = max(len(r.id) for r in rulebase.rules)
    for rule in rulebase.rules:
        n = report.fired[rule.id]
        share = f"{100 * n / report.cases:5.1f}%" if report.cases else "    -"
        out.append(f"  {rule.id:{width}}  {n:6d}  {share}")
    never = report.never(rulebase)
    out.append(f"Never fired ({len(never)} of {len(rulebase.rules)}): " + (", ".join(never) or "none"))
    out += failed_lines(rulebase, report.failed, "could not be read or evaluated, and fired nothing", style)
    return "\n".join(out)


def why_not_text(rulebase: RuleBase, w: audit.WhyNot, style: Callable = plain_style) -> str:
    rule = w.rule
    if w.fired:
        head = f"Rule {rule.id} fired for case {w.case_id}."
    else:
        head = f"Rule {rule.id} did not fire for case {w.case_id}."
    out = [style(head, bold=True), f"  {sentence(rulebase, rule)}"]
    for t in w.tests:
        mark = {True: style("✓", fg="green"), False: style("✗", fg="red"), None: style("?", fg="yellow")}[t.verdict]
        actual = f"   ({t.actual})" if t.actual else ""
        out.append(f"  {'  ' * t.depth}{mark} {t.text}{actual}")
    if w.blocked_by:
        b = w.blocked_by
        out.append(
            f"  Blocked: the earlier layer '{b['layer']}' already set the stance "
            f"({b['stance']}, rule {b['rule']}); a stance set earlier is final."
        )
    if not w.fired:
        if w.fixes:
            out.append("  It would fire if:")
            for change in w.fixes:
                out.append(
                    "    "
                    + " and ".join(
                        f"{n.replace('_', ' ')} were {value_label(rulebase, n, v) if v is not None else 'unknown'}"
                        for n, v in change.items()
                    )
                )
        else:
            out.append("  No change of one or two fields makes it fire.")
    return "\n".join(out)


def _dose(d) -> str:
    if not d:
        return "—"
    return dose_line(d) + (f" ({d['total_g']:g} g)" if d.get("total_g") is not None else "")


def _warning_words(outcome: dict) -> set:
    return {f"{w['code']} ({w['severity']})" for w in outcome["warnings"]}


def _stance_words(outcome: dict) -> str:
    ivig = outcome["ivig"]
    return f"{ivig['stance']} ({ivig['rule']})" if ivig else "—"


def diff_text(
    rulebase: RuleBase, report: audit.DiffReport, base_label: str, this_label: str, style: Callable = plain_style
) -> str:
    out = impact_lines(rulebase, report.impact, base_label, style) if report.impact is not None else []
    if report.impact is not None:
        out.append("Over the cases:")
    for d in report.differences:
        where = f"{d.source}:{d.line}" if d.source and d.line else (d.source or "")
        out.append(for_terminal(f"{d.id}  {where}"))  # a case's id and file name are input
        rows = [("", base_label, this_label)]
        for key in d.changed:
            if key == "dose":
                rows.append(("dose", _dose(d.base.get("dose")), _dose(d.this.get("dose"))))
            elif key == "warnings":
                before, after = (_warning_words(o) for o in (d.base, d.this))
                rows.append(
                    ("warnings", ", ".join(sorted(before - after)) or "—", ", ".join(sorted(after - before)) or "—")
                )
            elif key == "later_evidence":
                before, after = (set(o.get("later_evidence", ())) for o in (d.base, d.this))
                rows.append((key, ", ".join(sorted(before - after)) or "—", ", ".join(sorted(after - before)) or "—"))
            elif key == "ivig":
                rows.append(("stance", *(_stance_words(o) for o in (d.base, d.this))))
            elif key == "error":
                rows.append(("error", *((o["error"] or {}).get("message", "—") for o in (d.base, d.this))))
            else:
                rows.append((key, str(d.base.get(key, "—")), str(d.this.get(key, "—"))))
        label, width = max(11, *(len(r[0]) for r in rows)), max(len(r[1]) for r in rows)
        out += [for_terminal(f"  {a:{label}} {b:{width}} | {c}") for a, b, c in rows]  # errors and labels: input
        out.append("")
    out += failed_lines(rulebase, report.failed, "could not be compared (the same error under both rule bases)", style)
    out += _rule_change_lines(report.rules)
    n = len(report.failed)
    out.append(
        f"{report.differ} of {report.compared} cases differ"
        + (f"; {n} case{'s' if n != 1 else ''} could not be compared (an error under both rule bases)" if n else "")
    )
    return "\n".join(out)


def _rule_change_lines(changes) -> List[str]:
    """What was edited in the rules' text: each rule changed, added or removed, its YAML diffed."""
    if not changes:
        return []
    out = [
        f"Rules changed ({len(changes)}): "
        + ", ".join(f"{c.id}" + ("" if c.change == "changed" else f" ({c.change})") for c in changes)
    ]
    for change in changes:
        out += [for_terminal(line) for line in change.diff]  # the files' words: escaped
    return out + [""]


# -- later evidence ----------------------------------------------------------


def _by_topic(entries: List[dict]) -> dict:
    """The entries of `evidence_listing` by topic, each topic where its first entry is."""
    topics: dict = {}
    for entry in entries:
        topics.setdefault(entry["topic"], []).append(entry)
    return topics


def _about(entry: dict) -> str:
    """'2021 · controlled trial · reports harm · speaks to gbs-second-course'."""
    return (
        f"{entry['year']} · {kind_words(entry['kind'])} · {RELATION_WORDS[entry['relation']]} · "
        f"speaks to {', '.join(entry['speaks_to'])}"
    )


def _read(entry: dict) -> str:
    """Where the quote was read, and when."""
    return f"read at {entry['source']['read_at']}, checked {entry['source']['checked']}"


def _harm_line(entry: dict) -> Optional[str]:
    harm = entry["harm_finding"]
    return f"Harm ({harm['severity']}) {harm['code']}: {harm['summary']}" if harm else None


def evidence_lines(entry: dict, style: Callable = plain_style) -> List[str]:
    """One later-evidence entry for a reviewer: what it is, the situation it speaks to, what it
    found, its source and quote, its harm finding, and where it stands with its reviewers."""
    tag = style(f"[{RELATION_WORDS[entry['relation']]}]", fg="red" if entry["harm"] else "cyan")
    # everything below is the file's text: shown with its control characters made visible
    lines = [
        f"  {entry['title']}",
        f"  {_about(entry)}",
        f"  Situation: {entry['situation']}",
        f"  Found: {entry['finding']}",
        f"  Source: {entry['cited']}",
        f"  Link: {entry['link']}",
        f'  Quote: "{entry["source"]["quote"]}" ({_read(entry)})',
    ]
    harm = _harm_line(entry)
    if harm:
        lines.append(f"  {harm}")
    lines += [f"  Changed: {change}" for change in entry["changes"]]
    return (
        [f"{style(for_terminal(entry['id']), bold=True)}  {tag} {for_terminal(entry['signoff_text'])}"]
        + [for_terminal(line) for line in lines]
        + [style(for_terminal(f"  {entry['file']}:{entry['line']}"), dim=True)]
    )


def evidence_text(listing: dict, style: Callable = plain_style) -> str:
    """`ivig audit evidence`: every entry by topic, then the gaps, the lifecycle and the counts."""
    out = [style(for_terminal(listing["title"] or "Later evidence"), bold=True), ""]
    for topic, entries in _by_topic(listing["entries"]).items():
        out.append(style(for_terminal(f"== {entries[0]['topic_title']} ({topic}) =="), bold=True))
        for entry in entries:
            out += evidence_lines(entry, style) + [""]
    gaps = listing["gaps"]
    if gaps:
        out.append(style("== Gaps: leads not confirmed against their source, never used ==", bold=True))
        for gap in gaps:
            out += [for_terminal(f"- {gap['lead']}"), for_terminal(f"  Citation: {gap['citation']}")]
            out += [for_terminal(f"  Why: {gap['why']}"), ""]
    entries = listing["entries"]
    retired = sum(e["status"] == "retired" for e in entries)
    out.append(lifecycle_counts(listing["lifecycle"], EVIDENCE_LIFECYCLE))
    out.append(f"{len(entries)} entries ({retired} retired), {len(gaps)} gap{'s' if len(gaps) != 1 else ''}")
    return "\n".join(out)


def evidence_markdown(listing: dict) -> str:
    """`ivig audit evidence --format markdown`: a review document of the entries and gaps."""
    out = [f"# {md(listing['title'] or 'Later evidence')}", ""]
    for entries in _by_topic(listing["entries"]).values():
        out += [f"## {md(entries[0]['topic_title'])}", ""]
        for entry in entries:
            source = entry["source"]
            out += [
                f"### {md_code(entry['id'])} — {md(entry['title'])}",
                "",
                f"- {md(_about(entry))}; {md(entry['signoff_text'])}",
                f"- situation: {md(entry['situation'])}",
                f"- finding: {md(entry['finding'])}",
                f"- source: {md(entry['cited'])} — {md(entry['link'])}",
                f"- quote: “{md(source['quote'])}” ({md(_read(entry))})",
            ]
            harm = entry["harm_finding"]
            if harm:
                out.append(f"- harm ({md(harm['severity'])}) {md_code(harm['code'])}: {md(harm['summary'])}")
            out += [f"- changed: {md(change)}" for change in entry["changes"]]
            where = f"{entry['file']}:{entry['line']}"
            out += [f"- written at {md_code(where)}", ""]
    if listing["gaps"]:
        out += ["## Gaps", "", "Leads not confirmed against their source, never used:", ""]
        out += [f"- **{md(g['lead'])}** ({md(g['citation'])}): {md(g['why'])}" for g in listing["gaps"]]
    return "\n".join(out)
