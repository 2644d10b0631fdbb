"""FHIR for a person checking the mapping: what a record became, and the mapping itself.

`case_file` writes what one Patient's record became as a case file that
`ivig evaluate` reads back (YAML), with `explain` adding which resource set
each field and what the mapping did not read, as comments. `mapping_text`
lists facts/fhir-map.yaml for a reviewer: every entry, code and assumption.
"""

from typing import List

import yaml

from ...base.escape import for_terminal
from ...core.words import plain
from .mapping import ordinal


def _scalar(value) -> str:
    """A value as YAML writes it alone on a line (quoted when a reader would read it otherwise)."""
    # plain(): a list read from a YAML case file is the reader's own list type, which safe_dump refuses
    return (
        yaml.safe_dump(plain(value), default_flow_style=True, allow_unicode=True, width=10_000)
        .strip()
        .removesuffix("...")
        .strip()
    )


def _comment(text: str) -> str:
    """Text from a record as a YAML comment: one line, nothing a terminal would act on."""
    return for_terminal(" ".join(str(text).split()))


def case_file(record, schema, explain: bool = False, as_of=None) -> str:
    """One record as a YAML document: its case fields in the schema's order, or its error as a comment."""
    head = (
        f"# {_comment(record.id or record.default_id)}: {_comment(record.source)}"
        + (f":{record.line}" if record.line else "")
        + (f", ages at {as_of}" if as_of and explain else "")
    )
    lines = ["---", head]
    if record.error is not None:
        for error in (record.error, *record.others):
            lines.append(f"# ERROR: {_comment(str(error))}")
        return "\n".join(lines)
    origins = record.provenance.origins if record.provenance else {}
    data = record.data
    order = ["id"] + [name for name in schema.fields if name != "id"]
    for name in sorted(data, key=lambda k: order.index(k) if k in order else len(order)):
        line = f"{name}: {_scalar(data[name])}"
        if explain and name in origins:
            line += f"  # {_comment('; '.join(origins[name]))}"
        lines.append(line)
    if explain and record.provenance and record.provenance.unmapped:
        lines.append(f"# Not read ({len(record.provenance.unmapped)}):")
        for u in record.provenance.unmapped:
            codes = f" {'; '.join(u['codes'])}" if u["codes"] else ""
            lines.append(f"#   {_comment(u['resource'] + codes)}: {_comment(u['reason'])} [{_comment(u['path'])}]")
    return "\n".join(lines)


def _value(value) -> str:
    """A value as the mapping file writes it: a list field's items joined, not a Python tuple."""
    return ", ".join(str(v) for v in value) if isinstance(value, (list, tuple)) else str(value)


def entry_sets(entry) -> str:
    """What an entry of the mapping sets, as the mapping file writes values: 'diagnosis = gbs;
    when past: previously_treated = True; refines ...' (its assumptions apart)."""
    text = ", ".join(f"{k} = {_value(v)}" for k, v in entry.current.items())
    if entry.past:
        text += "; when past: " + ", ".join(f"{k} = {_value(v)}" for k, v in entry.past.items())
    if entry.refines:
        text += "; refines " + ", ".join(f"{k} {_value(v)}" for k, v in entry.refines.items())
    return text


def gap_field(gap: dict) -> str:
    """A gap's field, and its value when the gap is about one: 'diagnosis = paraproteinemic_neuropathy'."""
    return gap["field"] + (f" = {gap['value']}" if gap["value"] is not None else "")


def form_line(name: str, form) -> str:
    """How a system writes its codes, for a reviewer: the form, and whether lower case is read."""
    line = (
        f"{name} codes are written as {form.says} (checked: {' '.join(form.checked.split())}); any other "
        "code matches nothing, not even below a prefix entry"
    )
    if form.upper_case:
        line += "; written in lower case, one is read upper-cased and listed as read so" + (
            f" ({', '.join(form.assumptions)})" if form.assumptions else ""
        )
    return line


def mapping_text(fmap) -> str:
    """The mapping for a reviewer: each entry with what it sets and its codes, then how codes
    are written (the dot, each system's form), the patient fields, the states that count, what a field is when the
    record does not set it, the assumptions and the gaps."""
    out: List[str] = [f"FHIR mapping {fmap.source} (version {fmap.version}, {fmap.digest})", ""]
    for entry in fmap.entries:
        out.append(
            f"{entry.name}  [{', '.join(entry.resources)}]  sets {entry_sets(entry)}"
            + (f"  (assumptions {', '.join(entry.assumptions)})" if entry.assumptions else "")
        )
        if entry.note:
            out.append(f"    note: {entry.note}")
        for c in entry.codes:
            out.append(f"    {c.label(fmap.names):24} {c.display}  (checked: {c.checked})")
    for q in fmap.quantities:
        out.append(
            f"{q.name}  [Observation]  sets {q.field} in {q.unit}, the latest"
            + (f"  (assumptions {', '.join(q.assumptions)})" if q.assumptions else "")
        )
        for c in q.codes:
            out.append(f"    {c.label(fmap.names):24} {c.display}  (checked: {c.checked})")
        out.append(
            "    units: "
            + ", ".join(
                f"{code} x {factor:.10g} (written {', '.join(q.spellings[(uri, code)])})"
                for (uri, code), factor in q.units.items()
            )
        )
        out.append(
            "    a unit text (valueQuantity.unit) that does not name its code's unit is an error, as a unit "
            "not listed is"
        )
    out += [""] + [
        f"{fmap.system_name(uri)} codes have one dot, after the {ordinal(after)} character: a code matches "
        "as published or with that dot left out; with a dot elsewhere it matches nothing"
        for uri, after in fmap.dots.items()
    ]
    out += [form_line(fmap.system_name(uri), form) for uri, form in fmap.forms.items()]
    out.append("A code with whitespace before or after it is no code, in every system (FHIR's code type allows none)")
    out += [
        "",
        "Patient: age from birthDate at the evaluation date (--as-of); sex from gender ("
        + ", ".join(f"{k} -> {v if v is not None else 'unknown'}" for k, v in fmap.sex_values.items())
        + ")",
        "",
        "Which resources count (their status elements):",
    ]
    for rtype, state in fmap.states.items():
        kinds = {}
        for code, kind in state.kinds.items():
            kinds.setdefault(kind, []).append(code)
        also = f"; and only {state.also} {', '.join(sorted(state.also_counts))} (or none)" if state.also else ""
        out.append(
            f"  {rtype}.{state.element}: "
            + "; ".join(f"{k} {', '.join(v)}" for k, v in kinds.items())
            + f"; absent counts as {state.absent}{also}"
        )
    out += ["", "When nothing in the record sets a field:"]
    out += [
        f"  {name} = {_value(o.value)}: {o.why}"
        + (f"  (assumptions {', '.join(o.assumptions)})" if o.assumptions else "")
        for name, o in fmap.otherwise.items()
    ]
    out += ["", "Assumptions (where the mapping decides more than a code says):"]
    out += [f"  {key}: {text}" for key, text in fmap.assumptions.items()]
    out += ["", "Gaps (fields a record cannot set, and why):"]
    out += [f"  {gap_field(g)}: {' '.join(g['why'].split())}" for g in fmap.gaps]
    return "\n".join(out)
