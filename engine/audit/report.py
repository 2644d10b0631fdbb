"""The reviewers' HTML report: one self-contained file (no script, no network)
that a reviewer can open and mail. It holds the rules by disease with their
provenance and lifecycle (draft, approved, stale...), and beside each disease's
rules what changed since 2004 (the later evidence, each entry linked to the rules
it speaks to), the assumptions, the static check, coverage over a case corpus,
and the rule dependency graph as inline SVG.
"""

import datetime
import html
import textwrap
from dataclasses import dataclass
from typing import Callable, List, Optional, Union

from ..base.atomic import write_text_atomic
from ..base.escape import for_terminal
from ..core import words
from ..core.advisor import Advisor
from ..core.analysis import live_rules
from ..core.later import RELATION_WORDS, LaterEntry, kind_words
from ..core.rulebase import RuleBase, RuleSpec
from . import views as audit
from .evidence import spoken_of
from .signoff import ReviewLog, SignOff
from .table import decision_tables, table_html
from .text import EVIDENCE_LIFECYCLE, impact_summary, lifecycle_counts, witness_text

CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans CJK JP","Noto Sans JP","Source Han Sans JP","Hiragino Sans","Hiragino Kaku Gothic ProN","Yu Gothic","Meiryo","MS PGothic","IPAexGothic","IPAPGothic","TakaoPGothic","VL PGothic","Droid Sans Fallback","WenQuanYi Micro Hei",sans-serif;margin:0;color:#1d232a;background:#fafafa}
header,main{max-width:1100px;margin:0 auto;padding:0 24px}
header{padding-top:24px}
h1{font-size:1.6em;margin:.2em 0}h2{border-bottom:2px solid #ccd;padding-bottom:4px;margin-top:2em}
nav ul{columns:3;list-style:none;padding:0}nav a,a{color:#1a55a8}
article.rule{background:#fff;border:1px solid #dde;border-radius:6px;padding:10px 14px;margin:10px 0}
article.rule:target{outline:3px solid #f0b400}
.if{font-weight:600}.meta{color:#556;font-size:.9em}.quote{color:#334;font-size:.92em;margin:.3em 0}
.badge{display:inline-block;border-radius:10px;padding:0 8px;font-size:.8em;margin-left:4px;border:1px solid}
.review{color:#176d2c;border-color:#176d2c}.assumption{color:#8a5a00;border-color:#8a5a00}
.approved{color:#176d2c;border-color:#176d2c}.needs-change,.stale,.unknown,.finding{color:#a11;border-color:#a11}
.draft,.retired{color:#667;border-color:#99a}.flag{color:#8a5a00}.change{color:#2a4d8f}
table{border-collapse:collapse;width:100%;background:#fff}td,th{border:1px solid #dde;padding:4px 8px;text-align:left;vertical-align:top}
.ok{color:#176d2c;font-weight:600}.bad{color:#a11;font-weight:600}
svg text{font-size:11px;font-family:inherit}svg a:hover rect{fill:#ffe9a8}
details.graph{margin:6px 0}details.graph>summary{cursor:pointer}.graph-frame{overflow-x:auto;margin:6px 0}
.beside{display:grid;grid-template-columns:minmax(0,3fr) minmax(0,2fr);gap:16px;align-items:start}
@media (max-width:800px){.beside{grid-template-columns:minmax(0,1fr)}}
aside.since h4{margin:10px 0 4px}.since>.meta{margin:0 0 6px}
article.evidence{background:#fffdf4;border:1px solid #e4dab6;border-radius:6px;padding:8px 12px;margin:10px 0;font-size:.93em}
article.evidence:target{outline:3px solid #f0b400}.harm{color:#a11;border-color:#a11}
.relation{color:#2a4d8f;border-color:#2a4d8f}.link{overflow-wrap:anywhere;font-family:ui-monospace,monospace;font-size:.9em}
"""


def _e(text) -> str:
    """Text from a rule or data file, safe in the page: HTML escaped, and its control and invisible
    characters (an escape, a bidi override) shown as visible escapes, as in the terminal."""
    return html.escape(for_terminal("" if text is None else text))


def _rule_link(rule_id: str) -> str:
    return f'<a href="#rule-{_e(rule_id)}">{_e(rule_id)}</a>'


def _evidence_link(entry_id: str) -> str:
    return f'<a href="#evidence-{_e(entry_id)}">{_e(entry_id)}</a>'


@dataclass
class Additions:
    """What `ivig audit review` (audit/review.py) adds to the report it serves; the static report has
    none. With them, each card's lifecycle badge and text carry ids (`stage-ID`, `lifecycle-ID`) that
    the page updates as verdicts are given."""

    card: Callable[[Union[RuleSpec, LaterEntry], SignOff], str]  # HTML at the end of a rule's or entry's card
    head: str = ""  # HTML at the end of <head>
    top: str = ""  # HTML at the start of <main>, above the summary
    tail: str = ""  # HTML at the end of <body>


def _stage_badge(item_id: str, signoff: SignOff, additions: Optional[Additions]) -> str:
    """The card's lifecycle badge (approved, draft...); with an id the review page updates it by."""
    live = f' id="stage-{_e(item_id)}"' if additions else ""
    return f'<span class="badge {signoff.stage}"{live}>{_e(signoff.stage)}</span>'


def _lifecycle_text(item_id: str, signoff: SignOff, additions: Optional[Additions]) -> str:
    """The card's lifecycle in words; in an element the review page updates by its id."""
    text = _e(signoff.describe())
    return f'<span id="lifecycle-{_e(item_id)}">{text}</span>' if additions else text


@dataclass
class _Neighbours:
    """What each rule's card links to, by rule id: the rules it feeds and is fed by, those it
    pre-empts and is pre-empted by, and the later-evidence entries that speak to it."""

    feeds: dict
    fed_by: dict
    preempts: dict
    preempted_by: dict
    evidence: dict

    @classmethod
    def of(cls, rulebase: RuleBase) -> "_Neighbours":
        feeds, preempts = audit.feeds(rulebase), audit.preempts(rulebase)
        return cls(feeds, audit.fed_by(feeds), preempts, audit.preempted_by(preempts), spoken_of(rulebase))

    def links(self, rule_id: str) -> List[str]:
        """The card's links to its neighbours, each kind on its own part of the line."""
        kinds = (
            ("fed by", self.fed_by, _rule_link),
            ("feeds", self.feeds, _rule_link),
            ("pre-empts", self.preempts, _rule_link),
            ("pre-empted by", self.preempted_by, _rule_link),
            ("later evidence", self.evidence, _evidence_link),
        )
        return [f"{label} " + ", ".join(map(link, near[rule_id])) for label, near, link in kinds if near.get(rule_id)]


def _rule_card(
    rulebase: RuleBase,
    rule: RuleSpec,
    log: ReviewLog,
    near: _Neighbours,
    fired: Optional[int],
    additions: Optional[Additions] = None,
) -> str:
    signoff = log.state(rule)
    c = words.citation(rule)
    parts = [
        f'<article class="rule" id="rule-{_e(rule.id)}">',
        f"<div><strong>{_e(rule.id)}</strong> — {_e(rule.title)}"
        f'<span class="badge {rule.basis}">{rule.basis}</span>'
        f"{_stage_badge(rule.id, signoff, additions)}</div>",
        f'<p class="if">{_e(words.sentence(rulebase, rule))}</p>',
    ]
    # assumptions are listed next, as links to the assumptions table
    parts.append(
        f'<div class="meta">Source: {_e(words.provenance(rule, with_assumptions=False, with_claims=False))}</div>'
    )
    if c["assumptions"]:
        parts.append(
            '<div class="meta">Assumptions: '
            + ", ".join(f'<a href="#assumption-{_e(a)}">{_e(a)}</a>' for a in c["assumptions"])
            + "</div>"
        )
    if c["quote"]:
        parts.append(f'<div class="quote">「{_e(c["quote"])}」</div>')
    if c["quote_en"]:
        parts.append(f'<div class="quote"><em>{_e(c["quote_en"])}</em></div>')
    if rule.rationale:
        parts.append(f'<div class="meta">Rationale: {_e(rule.rationale)}</div>')
    parts += [f'<div class="flag">Flag: {_e(flag)}</div>' for flag in rule.flags]
    parts += [f'<div class="change">Changed: {_e(change)}</div>' for change in rule.changes]
    parts.append(f'<div class="meta">Lifecycle: {_lifecycle_text(rule.id, signoff, additions)}</div>')
    links = near.links(rule.id)
    if c["claims"]:  # after the rules it feeds: in reading order, what it is, then where it comes from
        links.append("claims " + ", ".join(f'<a href="#claim-{_e(x)}">{_e(x)}</a>' for x in c["claims"]))
    if fired is not None:
        links.append(f"fired in {fired} corpus case{'s' if fired != 1 else ''}")
    links.append(f"written at {_e(rule.file)}:{rule.line}")
    parts.append('<div class="meta">' + " · ".join(links) + "</div>")
    if additions:
        parts.append(additions.card(rule, signoff))
    parts[-1] += "</article>"
    return "\n".join(parts)


def _beside_since_2004(
    rulebase: RuleBase, topic: str, cards: List[str], log: ReviewLog, additions: Optional[Additions] = None
) -> List[str]:
    """A topic's rule cards, and beside them what changed since 2004 for that topic (none: the cards)."""
    entries = [e for e in rulebase.later.entries if e.topic == topic]
    if not entries:
        return cards
    return [
        '<div class="beside"><div class="rules-of-topic">',
        *cards,
        f'</div><aside class="since" aria-label="What changed since 2004: {_e(rulebase.topics.get(topic) or topic)}">',
        "<h4>What changed since 2004</h4>",
        '<p class="meta">Later trials, guidelines and regulators, beside the review\'s rules and never in them: '
        "the stance, dose and warnings stay the review's; harm is shown among the patient's warnings, "
        "marked as later evidence.</p>",
        *(_evidence_card(rulebase, entry, log, additions) for entry in entries),
        "</aside></div>",
    ]


def _evidence_card(rulebase: RuleBase, entry: LaterEntry, log: ReviewLog, additions: Optional[Additions] = None) -> str:
    """One later-evidence entry: what it is, what it found, the rules it speaks to (links),
    its source (the address as text: the report opens nothing), its harm finding, its sign-off."""
    signoff = log.state(entry)
    relation = "harm" if entry.harm else "relation"
    parts = [
        f'<article class="evidence" id="evidence-{_e(entry.id)}">',
        f"<div><strong>{_e(entry.id)}</strong> — {_e(entry.title)}"
        f'<span class="badge {relation}">{_e(RELATION_WORDS[entry.relation])}</span>'
        f"{_stage_badge(entry.id, signoff, additions)}</div>",
        f'<div class="meta">{entry.year} · {_e(kind_words(entry.kind))} · {_e(RELATION_WORDS[entry.relation])} · '
        f"speaks to {', '.join(_rule_link(r) for r in entry.speaks_to)}</div>",
        f"<p>{_e(entry.finding)}</p>",
        f'<div class="meta">Situation: {_e(words.condition_text(rulebase, entry.when))}</div>',
        f'<div class="quote">“{_e(entry.quote)}”</div>',
        f'<div class="meta">Source: {_e(entry.cited)}<br><span class="link">{_e(entry.link)}</span><br>'
        f'read at <span class="link">{_e(entry.read_at)}</span>, checked {_e(entry.checked)}</div>',
    ]
    if entry.harm:
        harm = entry.harm
        parts.append(f'<div class="harm">Harm ({_e(harm["severity"])}) {_e(harm["code"])}: {_e(harm["summary"])}</div>')
    parts += [f'<div class="change">Changed: {_e(change)}</div>' for change in entry.changes]
    parts.append(
        f'<div class="meta">Lifecycle: {_lifecycle_text(entry.id, signoff, additions)} · '
        f"written at {_e(entry.file)}:{entry.line}</div>"
    )
    if additions:
        parts.append(additions.card(entry, signoff))
    return "\n".join(parts + ["</article>"])


def _since_2004(rulebase: RuleBase, log: ReviewLog) -> List[str]:
    """The later evidence as a whole: where it is kept, its lifecycle, and the leads not confirmed."""
    later = rulebase.later
    if not later.entries and not later.gaps:
        return []
    out = [
        '<h2 id="since-2004">Since 2004</h2>',
        f'<p class="meta">{_e(later.title)} ({_e(later.file)}): each entry is shown beside the rules of its '
        "disease above. " + _e(lifecycle_counts(log.counts(later.entries), EVIDENCE_LIFECYCLE)) + ".</p>",
        '<h3>Gaps</h3><p class="meta">Leads that could not be confirmed against their source: '
        "listed, never used.</p><table><tr><th>lead</th><th>citation</th><th>why</th></tr>",
    ]
    out += [f"<tr><td>{_e(g.lead)}</td><td>{_e(g.citation)}</td><td>{_e(g.why)}</td></tr>" for g in later.gaps]
    out.append("</table>")
    return out


# The graph's geometry, in px: seven layer columns fit the page's 1052 px column; a rule id wraps
# at hyphens onto lines of 17 characters, which fit its box in 11 px DejaVu Sans (a wide sans: up
# to 7.4 px a character); the whole id and the rule's title are in the box's tooltip.
GRAPH_COLUMN, GRAPH_BOX, GRAPH_TOP, GRAPH_LINE, GRAPH_CHARS = 148, 136, 30, 13, 17


@dataclass
class _Box:
    """A rule's box in a graph: where it is and its label's lines."""

    rule: RuleSpec
    x: int
    y: int
    lines: List[str]

    @property
    def height(self) -> int:
        return GRAPH_LINE * len(self.lines) + 5

    @property
    def middle(self) -> float:
        return self.y + self.height / 2


def _graph_section(rulebase: RuleBase, feeds) -> List[str]:
    """One graph per diagnosis, each folded in a <details> (no script needed to choose one): the
    rules that can fire for it (analysis.live_rules), then, if any, the rules no diagnosis reaches,
    so that every rule is a box in some graph."""
    live = {value: live_rules(rulebase, value) for value in rulebase.schema.fields["diagnosis"].values}
    everywhere = set.intersection(*({r.id for r in rules} for rules in live.values()))
    out = [
        '<h2 id="graph">Dependency graph</h2>',
        '<p class="meta">One graph per diagnosis: the rules that can fire for a patient with it. '
        "Columns are the layers in firing order (a layer where none of them sits is left out); a line "
        "joins a rule to a rule that tests a fact it derives. Each box links to its rule; grey boxes are "
        "the rules that can fire whatever the diagnosis.</p>",
    ]
    for value, rules in live.items():
        label = words.value_label(rulebase, "diagnosis", value)
        shared = sum(r.id in everywhere for r in rules)
        summary = f"{label}: {len(rules)} rules can fire, {shared} of them shared by every diagnosis"
        out.append(_disease_graph(rulebase, value, summary, rules, feeds, everywhere))
    reached = {r.id for rules in live.values() for r in rules}
    unreached = [r for r in rulebase.rules if r.id not in reached]
    if unreached:
        summary = f"No diagnosis: {len(unreached)} rules that can fire for none"
        out.append(_disease_graph(rulebase, "no-diagnosis", summary, unreached, feeds, everywhere))
    return out


def _disease_graph(rulebase: RuleBase, key: str, summary: str, rules: List[RuleSpec], feeds, everywhere) -> str:
    """One folded graph (none drawn for no rules); its SVG scrolls inside its own frame when the
    window is narrower than it."""
    graph = _graph(rulebase, summary, rules, feeds, everywhere) if rules else ""
    return (
        f'<details class="graph" id="graph-{_e(key)}"><summary>{_e(summary)}</summary>'
        f'<div class="graph-frame">{graph}</div></details>'
    )


def _graph(rulebase: RuleBase, name: str, rules: List[RuleSpec], feeds, everywhere) -> str:
    """`rules` in columns by layer (only the layers they sit in); an edge where a rule tests a fact
    another derives. A rule in `everywhere` (it fires whatever the diagnosis) is drawn grey."""
    layers = [layer.name for layer in rulebase.layers if any(r.layer == layer.name for r in rules)]
    boxes = {box.rule.id: box for box in _layout(layers, rules)}
    width = GRAPH_COLUMN * (len(layers) - 1) + GRAPH_BOX + 10
    height = max(box.y + box.height for box in boxes.values()) + 10
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="rule dependency graph: {_e(name)}">'
    ]
    out += [
        f'<text class="layer" x="{i * GRAPH_COLUMN + 5}" y="16" font-weight="bold">{_e(layer)}</text>'
        for i, layer in enumerate(layers)
    ]
    out += [
        _edge(boxes[source], boxes[target]) for source in boxes for target in feeds.get(source, ()) if target in boxes
    ]
    out += [_box(box, box.rule.id in everywhere) for box in boxes.values()]
    out.append("</svg>")
    return "\n".join(out)


def _layout(layers: List[str], rules: List[RuleSpec]) -> List[_Box]:
    """Each rule's box: in its layer's column, below the one before it."""
    boxes = []
    for i, layer in enumerate(layers):
        y = GRAPH_TOP
        for rule in (r for r in rules if r.layer == layer):
            box = _Box(rule, i * GRAPH_COLUMN + 5, y, textwrap.wrap(rule.id, GRAPH_CHARS) or [""])
            boxes.append(box)
            y += box.height + 4
    return boxes


def _edge(source: _Box, target: _Box) -> str:
    """A curve from the right of the deriving rule's box to the left of the testing rule's; to a
    rule in the same column (or one before), a loop in the gap on the right of the two boxes."""
    sx, sy, ty = source.x + GRAPH_BOX, source.middle, target.middle
    if target.x > source.x:
        tx = target.x
        bend = max(30, (tx - sx) / 2)
        curve = f"C{sx + bend},{sy} {tx - bend},{ty} {tx},{ty}"
    else:
        tx, bulge = target.x + GRAPH_BOX, (GRAPH_COLUMN - GRAPH_BOX) + 2  # stays in the gap
        curve = f"C{sx + bulge},{sy} {tx + bulge},{ty} {tx},{ty}"
    return (
        f'<path d="M{sx},{sy} {curve}" fill="none" '
        f'stroke="#8896b0" stroke-width="0.8"><title>{_e(source.rule.id)} → {_e(target.rule.id)}</title></path>'
    )


def _box(box: _Box, shared: bool) -> str:
    """A rule's box, a link to its card; its id (wrapped) in the box, id and title in its tooltip."""
    fill, stroke = ("#f0f0f2", "#a4a8b0") if shared else ("#eef2fa", "#8896b0")
    lines = "".join(
        f'<tspan x="{box.x + 5}" dy="{GRAPH_LINE if n else 0}">{_e(line)}</tspan>' for n, line in enumerate(box.lines)
    )
    return (
        f'<a href="#rule-{_e(box.rule.id)}"><title>{_e(box.rule.id)}: {_e(box.rule.title)}</title>'
        f'<rect x="{box.x}" y="{box.y}" width="{GRAPH_BOX}" height="{box.height}" rx="3" fill="{fill}" '
        f'stroke="{stroke}"/><text y="{box.y + GRAPH_LINE}">{lines}</text></a>'
    )


def build_report(
    rulebase: RuleBase,
    case_paths: Optional[List[str]] = None,
    additions: Optional[Additions] = None,
    against: Optional[str] = None,
) -> str:
    """The report as one HTML string (see the module doc); with `additions`, the page `ivig audit
    review` serves (a form on each card, its lifecycle live); with `against` (a rule base's
    directory or a git revision), the safety regressions of the edit from it, first."""
    log = ReviewLog.load(rulebase)
    near = _Neighbours.of(rulebase)
    checked = audit.check_rulebase(rulebase)
    if against is not None:
        audit.regressions_against(checked, rulebase, against)
    paths = case_paths if case_paths is not None else audit.default_corpus(rulebase)
    cover = audit.coverage(Advisor(rulebase), paths) if paths else None
    topics = list(dict.fromkeys(r.topic for r in rulebase.rules))
    body = _header(rulebase, topics) + _regressions(rulebase, checked) + ([additions.top] if additions else [])
    body += _summary(rulebase, log, checked, cover) + _glossary(rulebase)
    body += _rules_by_disease(rulebase, topics, log, near, cover, additions)
    body += _decision_tables(rulebase, checked.verification)
    body += _since_2004(rulebase, log)
    body += _regimens(rulebase)
    body += _assumptions(rulebase)
    body += _claims(rulebase)
    body += _fhir_mapping()
    body += _check_section(rulebase, checked)
    body += _coverage_section(rulebase, cover)
    body += _graph_section(rulebase, near.feeds) + ["</main>"]
    head, tail = (additions.head, additions.tail) if additions else ("", "")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Rule audit: {_e(rulebase.name)}</title><style>{CSS}</style>{head}</head><body>\n"
        + "\n".join(body)
        + f"\n{tail}</body></html>\n"
    )


def _header(rulebase: RuleBase, topics: List[str]) -> List[str]:
    """The title, the rule base's version and source, the date, and the table of contents."""
    now = datetime.date.today().isoformat()
    return [
        f"<header><h1>Rule audit: {_e(rulebase.name)}</h1>",
        f'<div class="meta">Rule base version {_e(rulebase.version)}; report of {now}. '
        f"{_e(rulebase.manifest.get('source', ''))}</div>",
        "<nav><ul>"
        '<li><a href="#summary">Summary</a></li><li><a href="#rules">Rules by disease</a></li>'
        '<li><a href="#tables">Decision tables</a></li>'
        '<li><a href="#since-2004">Since 2004</a></li><li><a href="#regimens">Regimens</a></li>'
        '<li><a href="#assumptions">Assumptions</a></li><li><a href="#claims">Claims</a></li>'
        '<li><a href="#glossary">Glossary</a></li><li><a href="#fhir">FHIR mapping</a></li>'
        '<li><a href="#check">Static check</a></li>'
        '<li><a href="#coverage">Coverage</a></li><li><a href="#graph">Dependency graph</a></li>'
        + "".join(f'<li><a href="#topic-{_e(t)}">{_e(rulebase.topics.get(t) or t)}</a></li>' for t in topics)
        + "</ul></nav></header><main>",
    ]


def _summary(rulebase: RuleBase, log: ReviewLog, checked, cover) -> List[str]:
    """The rules by basis and lifecycle, the check's verdict, the later evidence, the coverage."""
    v = checked.verification
    basis = sum(r.basis == "assumption" for r in rulebase.rules)
    verdict = (
        '<span class="ok">passes</span>' if checked.ok else f'<span class="bad">{len(checked.findings)} findings</span>'
    )
    out = [
        '<h2 id="summary">Summary</h2><ul>',
        f"<li>{len(rulebase.rules)} rules: {len(rulebase.rules) - basis} from the review, "
        f'{basis} resting on assumptions (<a href="#assumptions">list</a>).</li>',
        f"<li>{_e(lifecycle_counts(log.counts()))}.</li>",
        f"<li>Static check: {verdict}"
        + (f"; {v.combinations:,} combinations checked exhaustively." if v else ".")
        + "</li>",
    ]
    entries = rulebase.later.entries
    if entries:
        harm = sum(bool(e.harm) for e in rulebase.later.live())
        out.append(
            f"<li>Since 2004: {len(entries)} later-evidence entries beside the rules ({harm} reporting harm), "
            f"{len(rulebase.later.gaps)} leads not confirmed "
            f'(<a href="#since-2004">list</a>); {_e(lifecycle_counts(log.counts(entries), EVIDENCE_LIFECYCLE))}.</li>'
        )
    if cover:
        out.append(f"<li>Coverage: {cover.cases} cases; {len(cover.never(rulebase))} rules never fired.</li>")
    out.append("</ul>")
    return out


def _decision_tables(rulebase: RuleBase, verification) -> List[str]:
    """Each disease's rules as a decision table (audit/table.py), then those every disease shares."""
    out = [
        '<h2 id="tables">Decision tables</h2>',
        '<p class="meta">Each disease\'s rules as a grid: rows in firing order, a column per field '
        "tested, what each row concludes; the rules every disease shares are the last table.</p>",
    ]
    for table in decision_tables(rulebase, None, verification):
        out += [f'<h3 id="table-{_e(table.diagnosis)}">{_e(table.label)}</h3>', table_html(table)]
    return out


def _rules_by_disease(
    rulebase: RuleBase,
    topics: List[str],
    log: ReviewLog,
    near: _Neighbours,
    cover,
    additions: Optional[Additions] = None,
) -> List[str]:
    """Each topic's rule cards, with beside them what changed since 2004 for it."""
    out = ['<h2 id="rules">Rules by disease</h2>']
    for topic in topics:
        out.append(f'<h3 id="topic-{_e(topic)}">{_e(rulebase.topics.get(topic) or topic)}</h3>')
        upkeep = rulebase.maintenance.get(topic)
        if upkeep:
            out.append('<p class="meta">Maintenance: ' + _e("; ".join(f"{k} {v}" for k, v in upkeep.items())) + "</p>")
        cards = [
            _rule_card(rulebase, rule, log, near, cover.fired[rule.id] if cover else None, additions)
            for rule in rulebase.rules
            if rule.topic == topic
        ]
        out += _beside_since_2004(rulebase, topic, cards, log, additions)
    return out


def _regimens(rulebase: RuleBase) -> List[str]:
    out = [
        '<h2 id="regimens">Regimens</h2>',
        '<p class="meta">The review\'s doses at a glance (rules/regimens.yaml), with the rules that give '
        "each.</p><table><tr><th>regimen</th><th>diagnosis</th><th>situation</th><th>dose</th><th>repeat</th>"
        "<th>rules</th></tr>",
    ]
    for row in audit.regimens(rulebase):
        out.append(
            f"<tr><td>{_e(row['regimen'] or '(in a rule)')}</td><td>{_e(row['diagnosis_label'] or '—')}</td>"
            f"<td>{_e(row['situation'] or '—')}</td><td>{_e(row['dose'])}</td><td>{_e(row['repeat'] or '—')}</td>"
            f"<td>{', '.join(_rule_link(r) for r in row['rules']) or '—'}</td></tr>"
        )
    out.append("</table>")
    return out


def _glossary(rulebase: RuleBase) -> List[str]:
    """The tool's own words, each in plain words (the rule base's glossary data file)."""
    terms = rulebase.extras.get("glossary") or {}
    if not terms:
        return []
    items = "".join(
        f"<dt>{_e(term)}</dt><dd>{_e(' '.join(str(meaning).split()))}</dd>" for term, meaning in terms.items()
    )
    return ['<h2 id="glossary">Glossary</h2>', f'<dl class="glossary">{items}</dl>']


def _claims(rulebase: RuleBase) -> List[str]:
    """The review's claims (rules/claims.yaml), each with the rules that encode it, or why none does."""
    data = rulebase.extras.get("claims") or {}
    listed, not_encoded = data.get("claims") or {}, data.get("not_encoded") or {}
    users: dict = {}
    for rule in rulebase.rules:
        for name in rule.claims:
            users.setdefault(name, []).append(rule.id)
    out = [
        '<h2 id="claims">Claims</h2>',
        '<p class="meta">The review\'s statements the rules encode (shared/source/claims.md), each with '
        "the rules that encode it, or why none does.</p><table><tr><th>id</th><th>claim</th><th>rules</th></tr>",
    ]
    for name, claim in listed.items():
        encoded = ", ".join(_rule_link(r) for r in users.get(name, [])) or _e(not_encoded.get(name, "—"))
        out.append(f'<tr id="claim-{_e(name)}"><td>{_e(name)}</td><td>{_e(claim)}</td><td>{encoded}</td></tr>')
    out.append("</table>")
    return out


def _assumptions(rulebase: RuleBase) -> List[str]:
    listed = (rulebase.extras.get("claims") or {}).get("assumptions") or {}
    users = {}
    for rule in rulebase.rules:
        for name in rule.assumptions:
            users.setdefault(name, []).append(rule.id)
        if rule.basis == "assumption" and not rule.assumptions:
            users.setdefault("(unnumbered)", []).append(rule.id)
    out = [
        '<h2 id="assumptions">Assumptions</h2>',
        '<p class="meta">Where the review is vague, the rules decide; each decision is listed here '
        "with the rules that rest on it.</p><table><tr><th>id</th><th>decision</th><th>rules</th></tr>",
    ]
    for name in list(listed) + [n for n in users if n not in listed]:
        out.append(
            f'<tr id="assumption-{_e(name)}"><td>{_e(name)}</td><td>{_e(listed.get(name, ""))}</td>'
            f"<td>{', '.join(_rule_link(r) for r in users.get(name, [])) or '—'}</td></tr>"
        )
    out.append("</table>")
    return out


def _fhir_mapping() -> List[str]:
    """facts/fhir-map.yaml for the reviewer: what each code sets, where it was checked, its assumptions and gaps."""
    from ..io.fhir.mapping import default_map
    from ..io.fhir.text import entry_sets, gap_field

    fmap = default_map()
    out = [
        '<h2 id="fhir">FHIR mapping</h2>',
        f'<p class="meta">How FHIR R4 records become cases ({_e(fmap.source)}, {_e(fmap.digest)}): the codes '
        "that set each field, and where each code was checked. A code not listed is reported under "
        "<code>unmapped</code> in the result, never guessed.</p>",
        "<table><tr><th>entry</th><th>resources</th><th>sets</th><th>codes (checked in)</th></tr>",
    ]
    for entry in fmap.entries:
        sets = entry_sets(entry) + (" (" + ", ".join(entry.assumptions) + ")" if entry.assumptions else "")
        codes = "<br>".join(
            f'{_e(c.label(fmap.names))} {_e(c.display)} <span class="meta">({_e(c.checked)})</span>'
            for c in entry.codes
        )
        out.append(
            f"<tr><td>{_e(entry.name)}</td><td>{_e(', '.join(entry.resources))}</td><td>{_e(sets)}</td>"
            f"<td>{codes}</td></tr>"
        )
    out.append("</table><h3>Mapping assumptions</h3><table><tr><th>id</th><th>decision</th></tr>")
    out += [f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in fmap.assumptions.items()]
    out.append("</table><h3>Gaps</h3><table><tr><th>field</th><th>why a record cannot set it</th></tr>")
    out += [f"<tr><td>{_e(gap_field(g))}</td><td>{_e(g['why'])}</td></tr>" for g in fmap.gaps]
    out.append("</table>")
    return out


def _check_section(rulebase: RuleBase, checked: audit.CheckReport) -> List[str]:
    out = ['<h2 id="check">Static check</h2>']
    v = checked.verification
    if v is not None:
        out.append(
            f"<p>{v.combinations:,} combinations of the fields the rules test, over "
            f"{len(v.coverage)} diagnoses, checked exhaustively ({v.excluded:,} excluded by the "
            f"schema's constraints; {v.states:,} distinct states evaluated).</p>"
        )
    if checked.ok:
        out.append('<p class="ok">No findings: no unreachable, conflicting, redundant or subsumed rule, no gap.</p>')
    else:
        out.append("<table><tr><th>kind</th><th>where</th><th>finding</th></tr>")
        for f in checked.findings:
            what = _e(f.message) + (
                f'<br><span class="meta">{_e(witness_text(rulebase, f.witness))}</span>' if f.witness else ""
            )
            rule = f" ({_rule_link(f.rule)})" if f.rule in rulebase.by_id else ""
            out.append(
                f'<tr><td class="bad">{_e(f.kind)}</td><td>{_e(f.file)}:{_e(f.line)}{rule}</td><td>{what}</td></tr>'
            )
        out.append("</table>")
    if v is not None:
        out.append("<table><tr><th>diagnosis</th><th>fields tested</th><th>combinations</th></tr>")
        out += [
            f"<tr><td>{_e(c.diagnosis)}</td><td>{len(c.fields)}</td><td>{c.combinations:,}</td></tr>"
            for c in v.coverage
        ]
        out.append("</table>")
    return out


def _coverage_section(rulebase: RuleBase, cover) -> List[str]:
    out = ['<h2 id="coverage">Coverage</h2>']
    if cover is None:
        return out + ["<p>No case corpus was given.</p>"]
    never = cover.never(rulebase)
    out.append(
        f"<p>{cover.cases} cases ({cover.errors} with errors). Never fired: "
        + (", ".join(_rule_link(r) for r in never) or "none")
        + ".</p>"
    )
    out.append("<table><tr><th>rule</th><th>cases fired</th><th>e.g.</th></tr>")
    out += [
        f"<tr><td>{_rule_link(r.id)}</td><td>{cover.fired[r.id]}</td>"
        f"<td>{_e(', '.join(cover.examples.get(r.id, [])[:3]))}</td></tr>"
        for r in rulebase.rules
    ]
    out.append("</table>")
    return out


def _regressions(rulebase: RuleBase, checked) -> List[str]:
    """With --against: the safety regressions of the edit, before anything else, those not yet
    acknowledged loudest; then those a reviewer accepted, with who and why."""
    if checked.impact is None:
        return []
    out = [f'<h2 id="regressions">Safety regressions against {_e(checked.against)}</h2>']
    out.append(f'<p class="meta">{_e(impact_summary(checked.impact, checked.against))}</p>')
    open_ = [f for f in checked.findings if f.kind == "regression"]
    for finding in open_:
        where = f"{finding.file}:{finding.line}: " if finding.file else ""
        out.append(f'<div class="finding critical"><strong>{_e(where)}</strong>{_e(finding.message)}')
        if finding.witness:
            out.append(f"<br><em>{_e(witness_text(rulebase, finding.witness))}</em>")
        out.append("</div>")
    out += [f'<div class="finding">{_e(str(f))}</div>' for f in checked.acknowledged]
    if not open_ and not checked.acknowledged:
        out.append("<p>None: no patient's advice is made less safe by the edit.</p>")
    return out


def write_report(
    rulebase: RuleBase, out_path, case_paths: Optional[List[str]] = None, against: Optional[str] = None
) -> str:
    """Write the report atomically; return a one-line summary."""
    text = build_report(rulebase, case_paths, against=against)
    write_text_atomic(out_path, text)
    return f"{len(rulebase.rules)} rules, {len(text) // 1024} KiB"
