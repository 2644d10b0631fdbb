"""A Result as CDS Hooks 2.0 cards: another renderer of the same Result.

The stance is one card (`info`, or `warning` when IVIG is ordered where the
review finds it not effective); each critical or warning-level safety
warning is a card of its own, critical ones with override reasons, so that
no critical warning hides in another card's details; a draft order whose
daily dose differs from the review's regimen for this weight gets a card
whose suggestion updates the order to that dose. Every card names the review
and the rule that decided it. Text from the record (ids, codes, displays) is
escaped for Markdown (escape.for_markdown): an EHR renders `detail`.
"""

import json
import math
import uuid
from typing import List, Optional

from .escape import for_markdown
from .render import TextRenderer, plain_style
from .words import dose_line, stance_label

SUMMARY_MAX = 139  # the spec: "<140-character summary"


def short(text: str, limit: int = SUMMARY_MAX) -> str:
    """One line of at most `limit` characters, cut at a word with an ellipsis."""
    text = " ".join(str(text).split())
    if len(text) <= limit:
        return text
    cut = text[:limit - 1].rsplit(" ", 1)[0]
    return cut + "…"


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
            out["topic"] = {"system": src["topic_system"], "code": rule_id,
                            "display": short(rule.title if rule is not None and rule.title else rule_id, 200)}
        return out

    def cards(self, result, ordered: List[dict], weight: Optional[float], notes: List[str],
              stance: bool = True) -> List[dict]:
        """The cards of one Result. `ordered`: the IVIG draft orders (MedicationRequests);
        `notes`: what the service could not get (prefetch keys), said in the stance card;
        `stance`: False leaves the stance card out (a chart with no disease the review covers)."""
        cards = [self.stance_card(result, bool(ordered), notes)] if stance else []
        for w in result.warnings:
            if w["severity"] in ("critical", "warning"):
                cards.append(self.warning_card(w))
        for order in ordered:
            card = self.dose_card(result, order, weight)
            if card:
                cards.append(card)
        return cards

    def stance_card(self, result, ordered: bool, notes: List[str]) -> dict:
        stance = result.ivig["stance"]
        diagnosis = self.rulebase.schema.fields["diagnosis"].values.get(
            _diagnosis(result), {}).get("label", _diagnosis(result) or "this disease")
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
        if result.missing:
            lines += ["", "**Not in the record, and would let more rules decide:** "
                      + ", ".join(for_markdown(m) for m in result.missing)]
        if result.origins:
            lines += ["", "**From the record:**"]
            lines += [f"- {for_markdown(k)}: {for_markdown('; '.join(v))}" for k, v in result.origins.items()]
        if result.unmapped:
            lines += ["", f"**Not read** ({len(result.unmapped)} codes the mapping does not know): "
                      + "; ".join(for_markdown(u["resource"] + (" " + ", ".join(u["codes"]) if u["codes"] else ""))
                                  for u in result.unmapped[:10]) + (" …" if len(result.unmapped) > 10 else "")]
        if notes:
            lines += ["", "**Not provided by the EHR:** " + "; ".join(for_markdown(n) for n in notes)]
        chain = self.text.chain_lines(result) if result.trace else []
        if chain:
            lines += ["", "**How the rules decided:**", "", "```"] + [c.replace("`", "'") for c in chain] + ["```"]
        return self.card(short(summary), indicator, "\n".join(lines), result.ivig["rule"])

    def warning_card(self, w: dict) -> dict:
        detail = for_markdown(w["message"]) + (f"\n\n**Action:** {for_markdown(w['action'])}" if w.get("action") else "")
        card = self.card(short(w["message"]), w["severity"], detail, w.get("rule"))
        if w["severity"] == "critical":
            reasons = self.services.override_reasons
            card["overrideReasons"] = [{"system": reasons["system"], "code": r["code"], "display": r["display"]}
                                       for r in reasons["reasons"]]
        return card

    def dose_card(self, result, order: dict, weight: Optional[float]) -> Optional[dict]:
        """A card whose suggestion sets the order's daily dose to the review's, when they differ."""
        dose = result.dose
        if not dose or dose.get("g_per_kg_per_day") is None or weight is None:
            return None
        ordered = ordered_grams_a_day(order, weight)
        daily = round(dose["g_per_kg_per_day"] * weight, 1)
        if ordered is None or not math.isfinite(ordered) or abs(ordered - daily) <= self.services.dose_tolerance * daily:
            return None
        corrected = json.loads(json.dumps(order))  # the whole order, the dose changed: a copy of plain JSON
        instruction = (corrected.get("dosageInstruction") or [{}])[0]
        corrected["dosageInstruction"] = [instruction] + list(corrected.get("dosageInstruction") or [])[1:]
        rate = dict(_first_rate(instruction) or {})
        rate["doseQuantity"] = {"value": daily, "unit": "g", "system": "http://unitsofmeasure.org", "code": "g"}
        instruction["doseAndRate"] = [rate]
        regimen = dose_line(dose)
        label = short(f"Set the dose to {daily:g} g a day for {dose['days']:g} days ({regimen}, {weight:g} kg)")
        card = self.card(short(f"IVIG dose {ordered:g} g a day differs from the review's {daily:g} g a day"),
                         "warning",
                         f"The order gives {ordered:g} g a day. The review's regimen is {for_markdown(regimen)}: "
                         f"{daily:g} g a day for a patient of {weight:g} kg.", dose.get("rule"))
        card["suggestions"] = [{"label": label, "uuid": str(uuid.uuid4()), "isRecommended": True,
                                "actions": [{"type": "update", "description": label, "resource": corrected}]}]
        card["selectionBehavior"] = "at-most-one"
        return card

    def card(self, summary: str, indicator: str, detail: str, rule_id: Optional[str]) -> dict:
        card = {"uuid": str(uuid.uuid4()), "summary": summary, "indicator": indicator,
                "source": self.source(rule_id)}
        if detail:
            card["detail"] = detail
        return card


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


def ordered_grams_a_day(order: dict, weight: float) -> Optional[float]:
    """The daily grams an order's first dose gives (IVIG is given once a day), or None
    when it writes no dose in a unit this reads (g, mg, g/kg, mg/kg)."""
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
