"""A Result as CDS Hooks 2.0 cards: another renderer of the same Result.

What is about this patient comes first and alone is loud: a card for each
patient-specific finding (a warning code) at critical or warning level,
critical ones first and with override reasons, so that no critical warning
hides in another card's details; then, when a draft order's dose differs
from the regimen's for this weight (a day's dose for a course, an infusion's
for a dose per infusion), a card whose suggestion updates the order to that
dose; the stance card last (`info`, or `warning`
when IVIG is ordered where the review finds it not effective). What applies
to every infusion gets no card: the stance card's detail lists these general
precautions, each with the review's grade and its action. A card's summary is
the warning's own summary (or, while a rule has none that fits, the rule's
title), never a sentence cut short. Every card names the review and the rule
that decided it. Text from the record (ids, codes, displays) is escaped for
Markdown (escape.for_markdown): an EHR renders `detail`.

Later evidence (issue 28) stands beside the review, never in it: the stance
card's detail ends its advice with a quiet "Since 2004" part, one line per
later source that speaks to the case, linked to the source (and the links in
the card's `links`); its summary, indicator and source stay the review's. A
harm finding of later evidence (a warning with `later_evidence`, no rule) is
a card like the review's findings, as loud as its severity, but its source is
the later source (its label says "Later evidence, not the review", its url
the source, its topic the entry) and its detail cites it.
"""

import json
import math
import urllib.parse
import uuid
from typing import List, Optional

from ..base.escape import for_markdown, for_terminal
from ..core.advisor import GENERAL
from ..core.later import RELATION_WORDS, kind_words, since
from ..core.rulebase import SEVERITIES
from ..core.words import GENERAL_PRECAUTIONS, GRADE_WORDS, dose_line, grade_tag, stance_label
from ..output.render import TextRenderer, plain_style

SUMMARY_MAX = 139  # the spec: "<140-character summary"
LOUD = ("critical", "warning")  # the severities that are a card of their own
LATER_MARK = "Later evidence, not the review"
# the code system of a harm card's topic: the entries of the rule base's later-evidence file, beside its rules
LATER_TOPIC = "later-evidence"
# a URL's characters that may stand in a Markdown link's destination as they are: the others
# (parentheses, brackets, angle brackets, spaces, backslashes...) are percent-encoded
_URL_SAFE = ":/?#@!$&'*+,;=%~-._"


def short(text: str, limit: int = SUMMARY_MAX) -> str:
    """One line of at most `limit` characters, cut at a word with an ellipsis."""
    text = " ".join(str(text).split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0]
    return cut + "…"


def fitting(*candidates: Optional[str]) -> str:
    """The first candidate that fits a card's summary whole (the last must): a summary is
    written as one, never a sentence cut short."""
    # plain text an EHR shows as it is: a control or invisible character in it is shown escaped
    texts = [for_terminal(" ".join(str(c).split())) for c in candidates if c]
    return next(t for t in texts if len(t) <= SUMMARY_MAX)


def own_findings(warnings: List[dict], severities=LOUD) -> List[List[dict]]:
    """The warnings about this patient at `severities`, grouped by finding (their code: two rules
    may say one thing), in the Result's order (most severe first)."""
    found = {}
    for w in warnings:
        if w["applies"] == "patient" and w["severity"] in severities:
            found.setdefault(w["code"], []).append(w)
    return list(found.values())


class CardMaker:
    """Cards for Results, after the services file (facts/cds-services.yaml) and the rule base."""

    def __init__(self, services, rulebase):
        self.services, self.rulebase = services, rulebase
        self.text = TextRenderer(rulebase, plain_style, chain=True, width=None)

    def source(self, rule_id: Optional[str]) -> dict:
        """The review, and the rule as the card's topic."""
        src = self.services.source
        out = {"label": src["label"] + (f" (rule {rule_id})" if rule_id else ""), "url": src["url"]}
        if rule_id:
            rule = self.rulebase.by_id.get(rule_id)
            out["topic"] = {
                "system": src["topic_system"],
                "code": rule_id,
                "display": short(rule.title if rule is not None and rule.title else rule_id, 200),
            }
        return out

    def later_source(self, entry_id: str) -> dict:
        """A later source, as the source of the card of its harm finding: marked as later evidence,
        never the review, with its link, and the entry as the card's topic (what feedback counts)."""
        entry = self.rulebase.later.by_id[entry_id]
        return {
            "label": for_terminal(f"{LATER_MARK}: {entry.citation}"),  # plain text, as the EHR shows it
            "url": entry.link,
            "topic": {
                "system": f"{self.services.source['topic_system']}/{LATER_TOPIC}",
                "code": entry.id,
                "display": short(for_terminal(entry.title), 200),
            },
        }

    def cards(
        self, result, ordered: List[dict], weight: Optional[float], notes: List[str], stance: bool = True
    ) -> List[dict]:
        """The cards of one Result: critical, then warnings (the dose card among them), then the
        stance. `ordered`: the IVIG draft orders (MedicationRequests); `notes`: what the service
        could not get (prefetch keys), said in the stance card; `stance`: False leaves the stance
        card out (a chart with no disease the review covers), and a card of the general
        precautions, when there are any, stands in its place."""
        cards = [self.warning_card(finding) for finding in own_findings(result.warnings)]
        cards += filter(None, (self.dose_card(result, order, weight) for order in ordered))
        cards.sort(key=lambda c: SEVERITIES.index(c["indicator"]))  # stable: the Result's order within each
        if stance:
            cards.append(self.stance_card(result, bool(ordered), notes))
        elif any(w["code"] == GENERAL for w in result.warnings):
            # safety before efficacy: said even where the review has no stance to give
            lines = self.precaution_lines(result)[1:] + self.since_lines(result)
            cards.append(self.with_links(self.card(GENERAL_PRECAUTIONS, "info", "\n".join(lines), None), result))
        return cards

    def stance_card(self, result, ordered: bool, notes: List[str]) -> dict:
        stance = result.ivig["stance"]
        diagnosis = (
            self.rulebase.schema.fields["diagnosis"]
            .values.get(_diagnosis(result), {})
            .get("label", _diagnosis(result) or "this disease")
        )
        if stance == "out-of-scope":
            summary = "IVIG: the record gives no disease the review covers (Dalakas 2004)"
        else:
            summary = f"{stance_label(stance)} for {diagnosis} (Dalakas 2004)"
        indicator = "warning" if ordered and stance == "not-effective" else "info"
        if indicator == "warning":
            summary = f"IVIG ordered, but not effective for {diagnosis} in the review"
        lines = [for_markdown(result.ivig["summary"])]
        if result.dose:
            lines += ["", f"**Dose:** {for_markdown(dose_line(result.dose, patient=True))}"]
            if result.dose.get("note"):
                lines.append(f"_{for_markdown(result.dose['note'])}_")
        lines += self.precaution_lines(result)
        lines += self.since_lines(result)
        if result.missing:
            lines += [
                "",
                "**Not in the record, and would let more rules decide:** "
                + ", ".join(for_markdown(m) for m in result.missing),
            ]
        origins, unmapped = result.source_notes.origins, result.source_notes.unmapped
        if origins:
            lines += ["", "**From the record:**"]
            lines += [f"- {for_markdown(k)}: {for_markdown('; '.join(v))}" for k, v in origins.items()]
        if unmapped:
            lines += [
                "",
                f"**Not read** ({len(unmapped)}: codes the mapping does not know, and what it "
                "cannot use): "
                + "; ".join(
                    for_markdown(u["resource"] + (" " + ", ".join(u["codes"]) if u["codes"] else ""))
                    for u in unmapped[:10]
                )
                + (" …" if len(unmapped) > 10 else ""),
            ]
        if notes:
            lines += ["", "**Not provided by the EHR:** " + "; ".join(for_markdown(n) for n in notes)]
        chain = self.text.chain_lines(result) if result.trace else []
        if chain:
            lines += ["", "**How the rules decided:**", "", "```"] + [c.replace("`", "'") for c in chain] + ["```"]
        card = self.card(
            fitting(summary, f"{stance_label(stance)} (Dalakas 2004)"), indicator, "\n".join(lines), result.ivig["rule"]
        )
        return self.with_links(card, result)

    def since_lines(self, result) -> List[str]:
        """Markdown lines, starting with a blank one: the later evidence that speaks to this case,
        a part of its own after the review's advice, one quiet line per source (its year, kind,
        how it bears on the review, its title linked to the source); nothing when none does."""
        notes = result.later_evidence
        if not notes:
            return []
        heading = since(self.rulebase.review_year)
        head = f"**{heading}** (later evidence, beside the review's advice and not part of it):"
        return ["", head] + [
            f"- {n['year']}, {for_markdown(kind_words(n['kind']))}, "
            f"{for_markdown(RELATION_WORDS.get(n['relation'], n['relation']))}: {markdown_link(n['title'], n['link'])}"
            for n in notes
        ]

    def with_links(self, card: dict, result) -> dict:
        """`card` with a link to each later source that speaks to this case (CDS Hooks `links`: an
        EHR that shows no link in the Markdown of `detail` shows these)."""
        heading = since(self.rulebase.review_year)
        links = [
            {
                "label": for_terminal(f"{heading} ({n['year']}): {' '.join(n['title'].split())}"),
                "url": n["link"],
                "type": "absolute",
            }
            for n in result.later_evidence
        ]
        if links:
            card["links"] = links
        return card

    def precaution_lines(self, result) -> List[str]:
        """Markdown lines, each starting with a blank one: what applies to every infusion (the
        general precautions) and the advice about this patient too quiet for a card of its own
        (info), each with the review's grade and its action; nothing when there is neither."""
        lines = []
        for w in result.warnings:
            if w["code"] == GENERAL:
                lines += ["", f"**{for_markdown(w['summary'])}:**"] + [self.precaution(i) for i in w["items"]]
        advice = [w for finding in own_findings(result.warnings, ("info",)) for w in finding]
        if advice:
            lines += ["", "**Also for this patient:**"] + [self.precaution(w) for w in advice]
        return lines

    @staticmethod
    def precaution(w: dict) -> str:
        """One precaution as a Markdown list item: its summary with the review's grade, the message
        when it says more, the action, and the rule."""
        grade = f" {for_markdown(grade_tag(w['grade']))}" if w.get("grade") else ""
        head = f"**{for_markdown(w['summary'])}**{grade}"
        text = "" if w["message"] == w["summary"] else f" {for_markdown(w['message'])}"
        action = f" **Action:** {for_markdown(w['action'])}" if w.get("action") else ""
        rule = f" (rule `{w['rule']}`)" if w.get("rule") else ""  # an id: [a-z0-9-], safe in a code span
        return f"- {head}{text}{action}{rule}"

    def warning_card(self, finding: List[dict]) -> dict:
        """One card for one finding about this patient: the most severe of its warnings decides the
        indicator, summary and topic; the detail says each, with the review's grade and the action."""
        w = finding[0]
        detail = "\n\n---\n\n".join(self.warning_detail(each) for each in finding)
        # a finding of later evidence is no rule's: its source is the later source (one code, one entry)
        source = self.later_source(w["later_evidence"]) if w.get("later_evidence") else None
        card = self.card(self.summary(w), w["severity"], detail, w.get("rule"), source)
        if w["severity"] == "critical":
            reasons = self.services.override_reasons
            card["overrideReasons"] = [
                {"system": reasons["system"], "code": r["code"], "display": r["display"]} for r in reasons["reasons"]
            ]
        return card

    def summary(self, w: dict) -> str:
        """The warning's summary (the rules' are held to the limit on load); else the rule's title,
        for a warning the engine itself gives (a rule-base conflict)."""
        rule = self.rulebase.by_id.get(w.get("rule") or "")
        return fitting(
            w.get("summary"), rule.title if rule is not None else None, f"IVIG {w['severity']}: see the details"
        )

    def warning_detail(self, w: dict) -> str:
        """A warning in a card's detail: its message, the review's grade, the action and, for a
        finding of later evidence, its citation linked to the source."""
        lines = [for_markdown(w["message"])]
        if w.get("grade"):
            lines.append(f"**Grade:** {for_markdown(GRADE_WORDS.get(w['grade'], w['grade']))}")
        if w.get("action"):
            lines.append(f"**Action:** {for_markdown(w['action'])}")
        if w.get("later_evidence"):
            lines.append(f"**Source** ({LATER_MARK.lower()}): {markdown_link(w['citation'], w['link'])}")
        return "\n\n".join(lines)

    def dose_card(self, result, order: dict, weight: Optional[float]) -> Optional[dict]:
        """A card whose suggestion sets the order's dose to the regimen's, when they differ by more
        than the tolerance: a day's dose for a course, an infusion's for a dose per infusion (the
        order's dose is one administration's either way: IVIG is given once a day)."""
        dose = result.dose
        per_kg = (dose or {}).get("infusion_g_per_kg" if _per_infusion(dose) else "g_per_kg_per_day")
        if per_kg is None or weight is None:
            return None
        ordered = ordered_grams(order, weight)
        wanted = round(per_kg * weight, 1)
        if (
            ordered is None
            or not math.isfinite(ordered)
            or abs(ordered - wanted) <= self.services.dose_tolerance * wanted
        ):
            return None
        regimen = dose_line(dose)
        if _per_infusion(dose):
            label = short(f"Set the dose to {wanted:g} g per infusion ({per_kg:g} g/kg, {weight:g} kg)")
            summary = short(
                f"IVIG dose {ordered:g} g per infusion differs from the regimen's {wanted:g} g per infusion"
            )
            detail = (
                f"The order gives {ordered:g} g per infusion. The regimen is {for_markdown(regimen)}: "
                f"{wanted:g} g per infusion for a patient of {weight:g} kg."
            )
        else:
            label = short(f"Set the dose to {wanted:g} g a day for {dose['days']:g} days ({regimen}, {weight:g} kg)")
            summary = short(f"IVIG dose {ordered:g} g a day differs from the review's {wanted:g} g a day")
            detail = (
                f"The order gives {ordered:g} g a day. The review's regimen is {for_markdown(regimen)}: "
                f"{wanted:g} g a day for a patient of {weight:g} kg."
            )
        card = self.card(summary, "warning", detail, dose.get("rule"))
        card["suggestions"] = [
            {
                "label": label,
                "uuid": str(uuid.uuid4()),
                "isRecommended": True,
                "actions": [{"type": "update", "description": label, "resource": _with_dose(order, wanted)}],
            }
        ]
        card["selectionBehavior"] = "at-most-one"
        return card

    def card(
        self, summary: str, indicator: str, detail: str, rule_id: Optional[str], source: Optional[dict] = None
    ) -> dict:
        """A card; its source is `source`, else the review with the rule `rule_id` as its topic."""
        card = {
            "uuid": str(uuid.uuid4()),
            "summary": summary,
            "indicator": indicator,
            "source": source or self.source(rule_id),
        }
        if detail:
            card["detail"] = detail
        return card


def markdown_link(text: str, url: str) -> str:
    """A Markdown link to `url` whose text is `text`, escaped (it cannot become markup or another
    link); the URL percent-encoded where Markdown would read it otherwise (a DOI's parentheses)."""
    return f"[{for_markdown(text)}]({urllib.parse.quote(url, safe=_URL_SAFE)})"


def _per_infusion(dose: Optional[dict]) -> bool:
    """Whether a Result's dose is a dose per infusion (at an interval), not a course."""
    return bool(dose) and dose.get("per") == "infusion"


def _with_dose(order: dict, grams: float) -> dict:
    """A copy of the order (plain JSON) whose first dose is `grams` g: what the suggestion updates."""
    corrected = json.loads(json.dumps(order))
    instruction = (corrected.get("dosageInstruction") or [{}])[0]
    corrected["dosageInstruction"] = [instruction] + list(corrected.get("dosageInstruction") or [])[1:]
    rate = dict(_first_rate(instruction) or {})
    rate["doseQuantity"] = {"value": grams, "unit": "g", "system": "http://unitsofmeasure.org", "code": "g"}
    instruction["doseAndRate"] = [rate]
    return corrected


def _diagnosis(result) -> Optional[str]:
    for entry in result.trace:
        for fact in entry["matched"]:
            if fact["name"] == "diagnosis" and fact["fact"] == "Finding":
                return fact["value"]
    return None


# UCUM units an IVIG order's dose may be written in: grams, or per kilogram.
_GRAMS = {"g": 1.0, "mg": 0.001, "kg": 1000.0}
_PER_KG = {"g/kg": 1.0, "mg/kg": 0.001}


def _first_rate(instruction: dict) -> Optional[dict]:
    """A dosage instruction's first doseAndRate: R4 writes a list, some clients (the spec's own
    order-select example) one object; None when there is no such object (STU3 puts the dose on
    the instruction itself)."""
    rates = instruction.get("doseAndRate")
    rate = rates[0] if isinstance(rates, list) and rates else rates
    return rate if isinstance(rate, dict) else None


def ordered_grams(order: dict, weight: float) -> Optional[float]:
    """The grams an order's first dose gives (one administration: a day's dose, as IVIG is given
    once a day, or one infusion's), or None when it writes no dose in a unit this reads (g, mg,
    g/kg, mg/kg)."""
    instructions = order.get("dosageInstruction")
    instruction = instructions[0] if isinstance(instructions, list) and instructions else None
    if not isinstance(instruction, dict):
        return None
    rate = _first_rate(instruction)
    quantity = rate.get("doseQuantity") if rate is not None else instruction.get("doseQuantity")
    if not isinstance(quantity, dict):
        return None
    value, unit = quantity.get("value"), quantity.get("code") or quantity.get("unit")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        return None
    if not isinstance(unit, str):  # a list or an object where a unit's code belongs: no unit this reads
        return None
    try:
        if unit in _GRAMS:
            return round(float(value) * _GRAMS[unit], 1)
        if unit in _PER_KG:
            return round(float(value) * _PER_KG[unit] * weight, 1)
    except OverflowError:  # 10**400 g: no dose a person writes; nothing to compare
        return None
    return None
