"""Loading a rule base: the manifest, the rule files and data files it lists, each rule checked
and built into a RuleSpec (rulespec.py); `RuleBase.load` (rulebase.py) calls `read_rulebase`.

A rule base is a directory with a manifest (``rulebase.yaml``: name, version, the ordered
layers, the stances, the rule files and data files) and the files it names. Every problem is
reported as ``file:line`` with the field, and loading stops only after the whole base has been
read, so one run shows every error.
"""

import hashlib
import re
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple, TypedDict, Union

from ..base.errors import RuleBaseInvalid, SourceError
from ..base.yamlsrc import Located, LocatedList, load_one
from . import conditions
from .later import LaterEvidence
from .laterfile import read_later_evidence
from .rulespec import BASES, DOSE_KEYS, DOSE_PER, STANCE, STATUSES, Layer, RuleSpec
from .schema import CaseSchema, spelled
from .valuecheck import (
    ID_PATTERN,
    LATER_PREFIX,
    derived_test_problem,
    field_test_problem,
    nested_operand_problem,
    warning_problem,
)
from .words import suggest

if TYPE_CHECKING:
    from importlib.abc import Traversable

MANIFEST = "rulebase.yaml"
MANIFEST_KEYS = ("name", "version", "layers", "stances", "rule_files", "data_files", "later_evidence", "review_year")
RULE_KEYS = (
    "id",
    "title",
    "layer",
    "when",
    "then",
    "basis",
    "rationale",
    "claims",
    "assumptions",
    "source",
    "evidence",
    "flags",
    "status",
    "explanation",
    "changes",
    "ask",
)
FILE_KEYS = ("topic", "title", "maintenance", "defaults", "rules")
# The parts of a manifest or rule file that hold other values: key -> the kind, and what it
# holds in words, for the error when one is written as something else (a text, a number)
PARTS = {
    "rule_files": (list, "a list of file names"),
    "data_files": (dict, "a mapping of name: file name (claims, evidence, passages, regimens, glossary)"),
    "defaults": (dict, "a mapping (status: draft or retired)"),
    "maintenance": (dict, "a mapping (author, specialist, version)"),
    "claims": (dict, "a mapping of id: the claim in words"),
    "not_encoded": (dict, "a mapping of id: why no rule encodes the claim"),
    "assumptions": (dict, "a mapping of id: the decision taken"),
}
# What the data files hold, by their key in the manifest's data_files, for the error when one
# holds something else (an empty file holds nothing, and is read so)
DATA_FILES = {
    "claims": "a mapping (claims, not_encoded, assumptions)",
    "evidence": "a mapping of id: record",
    "passages": "a mapping of id: record",
    "regimens": "a mapping of id: record",
    "glossary": "a mapping of term: what it means, in plain words",
}
SOURCE_KEYS = ("section", "refs", "lines", "quote", "quote_en", "cite")
PASSAGE_KEYS = ("quote", "quote_en")  # a passage of the review that several rules cite (passages.yaml)
ACTION_KEYS = ("derive", "recommend", "dose", "warn")
REGIMEN_KEYS = ("diagnosis", "situation") + DOSE_KEYS  # a row of the regimen table (regimens.yaml)
WARN_KEYS = ("code", "severity", "applies", "grade", "summary", "message", "action")

# How a check reports a problem of a rule: err(message, key, at line, kind)
Err = Callable[..., None]


class RuleBaseParts(TypedDict):
    """What `read_rulebase` read and checked: the keyword arguments of RuleBase."""

    root: Union[Path, "Traversable"]
    label: str
    packaged: bool
    manifest: Any
    layers: List[Layer]
    stances: Dict[str, bool]
    rules: List[RuleSpec]
    schema: CaseSchema
    extras: Dict[str, object]
    topics: Dict[str, str]
    maintenance: Dict[str, dict]
    later: LaterEvidence
    digest: str


class RuleDirectory:
    """The directory a rule base is read from, how errors name it, and a hash of every file
    read from it, in order (what a result is tied to: RuleBase.stamp)."""

    def __init__(self, directory: Optional[Path], schema: CaseSchema):
        self.root: Union[Path, Traversable]
        if directory is None:
            self.root, self.label = resources.files("ivig_advisor").joinpath("rules"), "rules"
        else:
            self.root, self.label = Path(directory), str(directory)
        self.content = hashlib.sha256(schema.digest.encode())

    def source(self, name: str) -> str:
        """How errors name the file `name` of this directory."""
        return f"{self.label}/{name}"

    def read(self, name: str) -> Any:
        """The YAML file `name`, read with its lines (yamlsrc.load_one), and added to the hash."""
        try:
            text = self.root.joinpath(name).read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as exc:  # a rule file saved as UTF-16 is an error that names it, and where
            line = exc.object[: exc.start].count(b"\n") + 1
            message = f"not UTF-8 text (byte {exc.start}): save it as UTF-8"
            raise SourceError(message, self.source(name), line) from None
        self.content.update(f"\0{name}\0{text}".encode())
        return load_one(text, self.source(name))

    def outside(self, name: Any) -> Optional[str]:
        """Why a file the manifest names is not a file of this rule directory, or None.

        A manifest is data: it must not make the loader read /etc/passwd or
        ../x.yaml, nor follow a symbolic link out of the directory.
        """
        if not isinstance(name, str) or not name.strip():
            return f"a file name must be text, not {name!r}"
        if Path(name).is_absolute() or re.match(r"[A-Za-z]:|[\\/]", name) or ".." in re.split(r"[\\/]", name):
            return f"'{name}' is outside the rule directory: name files relative to it, without '..'"
        if isinstance(self.root, Path):
            base, target = self.root.resolve(), (self.root / name).resolve()
            if base not in target.parents:
                return f"'{name}' leads outside the rule directory (a symbolic link to {target})"
        return None


def read_rulebase(directory: Optional[Path], schema: CaseSchema) -> RuleBaseParts:
    """Read and check the rule base in `directory` (None: the packaged rules/) against `schema`;
    raise RuleBaseInvalid with every error found."""
    files = RuleDirectory(directory, schema)
    manifest = _manifest(files)
    errors: List[SourceError] = []
    layers = _layers(manifest, files.source(MANIFEST), errors)
    stances = _stances(manifest, files.source(MANIFEST), errors)
    rules, topics, maintenance = _rule_files(files, manifest, layers, stances, errors)
    extras, sources = _data_files(files, manifest, errors)
    _check_whole(rules, layers, extras, sources, schema, errors)
    later = _later_evidence(files, manifest, rules, schema, topics, errors)
    if errors:
        raise RuleBaseInvalid(errors)
    return RuleBaseParts(
        root=files.root,
        label=files.label,
        packaged=directory is None,
        manifest=manifest,
        layers=layers,
        stances=stances,
        rules=rules,
        schema=schema,
        extras=extras,
        topics=topics,
        maintenance=maintenance,
        later=later,
        digest=files.content.hexdigest(),
    )


def _manifest(files: RuleDirectory) -> Located:
    """The manifest, read; one that cannot be read, or is no mapping, stops the loading (nothing
    else can be)."""
    try:
        manifest = files.read(MANIFEST)
    except (OSError, SourceError) as exc:
        error = (
            exc
            if isinstance(exc, SourceError)
            else SourceError(f"cannot read the manifest: {exc}", files.source(MANIFEST))
        )
        raise RuleBaseInvalid([error]) from None
    if not isinstance(manifest, Located):
        written = "an empty file" if manifest is None else spelled(manifest)
        message = f"the manifest must be a mapping ({', '.join(MANIFEST_KEYS)}), not {written}"
        raise RuleBaseInvalid([SourceError(message, files.source(MANIFEST), getattr(manifest, "line", 1))])
    return manifest


def _listed_file(
    files: RuleDirectory, name: Any, line: Optional[int], kind: str, errors: List[SourceError]
) -> Tuple[bool, Any]:
    """(True, the data) of a file the manifest lists at `line` as a `kind` file (rule, data),
    or (False, None) with the reason in `errors`: outside the directory, unreadable, bad YAML."""
    problem = files.outside(name)
    if problem:
        errors.append(SourceError(problem, files.source(MANIFEST), line))
        return False, None
    try:
        return True, files.read(name)
    except OSError as exc:
        errors.append(SourceError(f"cannot read {kind} file '{name}': {exc.strerror}", files.source(MANIFEST), line))
    except SourceError as exc:
        errors.append(exc)
    return False, None


def _rule_files(
    files: RuleDirectory, manifest: Any, layers: List[Layer], stances: Dict[str, bool], errors: List[SourceError]
) -> Tuple[List[RuleSpec], Dict[str, str], Dict[str, dict]]:
    """The rules of every rule file the manifest lists, in order; and for each file's topic,
    its title and its maintenance (author, specialist, version)."""
    rules: List[RuleSpec] = []
    topics: Dict[str, str] = {}
    maintenance: Dict[str, dict] = {}
    listed = _part(manifest, "rule_files", files.source(MANIFEST), errors) or LocatedList()
    for index, name in enumerate(listed):
        read, data = _listed_file(files, name, listed.line_of(index), "rule", errors)
        if not read:
            continue
        if isinstance(data, Located):
            topic = str(data.get("topic", Path(name).stem))
            topics[topic] = " ".join(str(data.get("title", "")).split())
            maintenance[topic] = dict(_part(data, "maintenance", files.source(name), errors) or {})
        rules.extend(_rule_file(data, files.source(name), layers, stances, errors))
    return rules, topics, maintenance


def _data_files(
    files: RuleDirectory, manifest: Any, errors: List[SourceError]
) -> Tuple[Dict[str, object], Dict[str, str]]:
    """The data files the manifest lists (evidence, claims, passages, regimens, ...), by key,
    and how errors name each."""
    extras: Dict[str, object] = {}
    sources: Dict[str, str] = {}
    listed = _part(manifest, "data_files", files.source(MANIFEST), errors) or Located()
    for key, name in listed.items():
        read, data = _listed_file(files, name, listed.line_of(key), "data", errors)
        if read and _data_file_holds(key, data, files.source(name), errors):
            extras[key], sources[key] = data, files.source(name)
    return extras, sources


def _later_evidence(
    files: RuleDirectory, manifest: Any, rules: List[RuleSpec], schema: CaseSchema, topics, errors
) -> LaterEvidence:
    """The later-evidence file the manifest names (`later_evidence`), read and checked (later.py);
    none when the manifest names none."""
    if "later_evidence" not in manifest:  # a rule base without later evidence; a key left empty is an error
        return LaterEvidence()
    name = manifest["later_evidence"]
    read, data = _listed_file(files, name, manifest.line_of("later_evidence"), "later-evidence", errors)
    if not read:
        return LaterEvidence(file=files.source(str(name)))
    return read_later_evidence(
        data, files.source(name), schema, rules, topics, errors, _review_year(files, manifest, errors)
    )


def _review_year(files: RuleDirectory, manifest: Any, errors: List[SourceError]) -> Optional[int]:
    """The review's year (`review_year`), a year as written, or None when the manifest gives none."""
    year = manifest.get("review_year")
    if year is None or (isinstance(year, int) and not isinstance(year, bool) and 1900 <= year <= 2200):
        return year
    message = f"review_year is the year the review was published, not {spelled(year)}"
    errors.append(SourceError(message, files.source(MANIFEST), manifest.line_of("review_year"), "review_year"))
    return None


def _data_file_holds(key: str, data: Any, source: str, errors: List[SourceError]) -> bool:
    """Whether the data file `key` holds what DATA_FILES says, its parts (claims) and records
    (evidence) too; each error at its line. A file of the wrong kind is not read further."""
    if key not in DATA_FILES or data is None:
        return True
    if not isinstance(data, Located):
        message = f"{key} must be {DATA_FILES[key]}, not {spelled(data)}"
        errors.append(SourceError(message, source, getattr(data, "line", None) or 1, key))
        return False
    if key == "claims":
        for part in ("claims", "not_encoded", "assumptions"):
            _part(data, part, source, errors)
    if key == "glossary":  # shown to reviewers as it is written: each meaning is text
        for term, meaning in data.items():
            if not isinstance(meaning, str) or not meaning.strip():
                message = f"a glossary entry is its meaning in words, not {spelled(meaning)}"
                errors.append(SourceError(message, source, data.line_of(term), f"glossary.{term}"))
    if key == "evidence":  # a record is read by its fields (trial, design, n, ...) in the audit
        for name, record in data.items():
            if record is not None and not isinstance(record, dict):  # null: a record not written yet
                message = f"an evidence record must be a mapping (trial, design, n, result, ...), not {spelled(record)}"
                errors.append(SourceError(message, source, data.line_of(name), f"evidence.{name}"))
    return True


def _check_whole(
    rules: List[RuleSpec],
    layers: List[Layer],
    extras: Dict[str, object],
    sources: Dict[str, str],
    schema: CaseSchema,
    errors: List[SourceError],
) -> None:
    """What needs the whole base read without error: the passages the rules cite and the
    regimens they name put in them, then the rules ordered and every name they use checked."""
    if not errors:
        _resolve(rules, extras, sources, schema, errors)
    if not errors:
        _order(rules, layers)
        _check_names(rules, layers, schema, errors)
        _check_references(rules, extras, errors)


def _layers(manifest, source, errors) -> List[Layer]:
    layers: List[Layer] = []
    items = manifest.get("layers")
    if not isinstance(items, LocatedList) or not items:
        errors.append(SourceError("the manifest needs a list of 'layers'", source, 1))
        return layers
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            errors.append(SourceError("a layer needs a 'name'", source, items.line_of(i)))
            continue
        layers.append(
            Layer(
                item["name"],
                bool(item.get("sets_stance", False)),
                " ".join(str(item.get("help", "")).split()),
                len(layers),
            )
        )
    return layers


def _stances(manifest, source, errors) -> Dict[str, bool]:
    """The manifest's stances: name -> whether the stance gives IVIG (a regimen follows)."""
    items = manifest.get("stances")
    if not isinstance(items, LocatedList) or not items:
        errors.append(SourceError("the manifest needs a list of 'stances' (name, gives_ivig)", source, 1))
        return {}
    out: Dict[str, bool] = {}
    for i, item in enumerate(items):
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("name"), str)
            or not ID_PATTERN.fullmatch(item["name"])
            or not isinstance(item.get("gives_ivig"), bool)
        ):
            errors.append(
                SourceError(
                    "a stance needs a 'name' (lower-case words joined by '-') and 'gives_ivig: true' or 'false'",
                    source,
                    items.line_of(i),
                )
            )
            continue
        out[item["name"]] = item["gives_ivig"]
    return out


def _rule_file(data, source, layers, stances, errors) -> List[RuleSpec]:
    if not isinstance(data, Located) or not isinstance(data.get("rules"), LocatedList):
        errors.append(SourceError("a rule file needs a 'rules' list", source, getattr(data, "line", 1)))
        return []
    for key in data:
        if key not in FILE_KEYS:
            errors.append(
                SourceError(f"unknown rule-file key '{key}'{suggest(key, FILE_KEYS)}", source, data.line_of(key))
            )
    topic = str(data.get("topic", Path(source).stem))
    defaults = _part(data, "defaults", source, errors) or {}
    out = []
    for i, raw in enumerate(data["rules"]):
        line = data["rules"].line_of(i)
        if not isinstance(raw, Located):
            errors.append(SourceError("a rule must be a mapping", source, line))
            continue
        rule = _rule(raw, source, line, topic, defaults, layers, stances, errors)
        if rule is not None:
            out.append(rule)
    return out


def _part(data: Any, key: str, source: str, errors: List[SourceError]) -> Any:
    """The part `key` (PARTS) of a manifest or rule file, None when it is not written, is null
    or `data` is no mapping; a value of another kind is an error at its line, and reads as None."""
    value = data.get(key) if isinstance(data, Located) else None
    kind, holds = PARTS[key]
    if value is None or isinstance(value, kind):
        return value
    errors.append(SourceError(f"'{key}' must be {holds}, not {spelled(value)}", source, data.line_of(key), key))
    return None


def _rule(raw: Located, source, line, topic, defaults, layers, stances, errors) -> Optional[RuleSpec]:
    """One rule of a rule file, checked and built; None when it has errors (each put in `errors`)."""
    err = _rule_err(raw, source, line, errors)
    before = len(errors)
    _check_rule_keys(raw, err)
    _check_notes_are_text(raw, err)
    if len(errors) > before:
        return None
    status = _check_rule_header(raw, defaults, layers, err)
    src = _rule_source(raw, err)
    _check_provenance(raw, src, err)
    when = _when(raw, source, errors)
    then = _then(raw["then"], source, raw.line_of("then"), stances, err)
    if len(errors) > before or when is None:
        return None
    layer = next(l for l in layers if l.name == raw["layer"])
    if "recommend" in then and not layer.sets_stance:
        err(
            f"layer '{layer.name}' does not set the stance; a 'recommend' belongs in "
            f"{', '.join(l.name for l in layers if l.sets_stance)}",
            "then",
        )
        return None
    ask = raw.get("ask", True)
    if not isinstance(ask, bool):
        err("'ask' is true (the default) or false (the rule never makes a question of its own)", "ask")
        return None
    return _rule_spec(raw, source, line, topic, when, then, status, src, ask)


def _rule_err(raw: Located, source: str, line: int, errors: List[SourceError]) -> Err:
    """How the checks of one rule report a problem: at the line of its `key` (or `at`, or the
    rule's), naming the rule's id and the key."""

    def err(message, key=None, at=None, kind="schema"):
        errors.append(
            SourceError(
                message,
                source,
                at or (raw.line_of(key) if key else line),
                f"{raw.get('id', '?')}.{key}" if key else raw.get("id"),
                kind,
            )
        )

    return err


def _check_rule_keys(raw: Located, err: Err) -> None:
    """Every key of the rule known, and those it needs there."""
    for key in raw:
        if key not in RULE_KEYS:
            err(f"unknown rule key '{key}'{suggest(key, RULE_KEYS)}", key)
    for key in ("id", "title", "layer", "when", "then", "basis"):
        if key not in raw:
            err(f"the rule has no '{key}'")


NOTE_KEYS = ("claims", "assumptions", "evidence", "flags", "changes")  # a rule's lists of texts


def _check_notes_are_text(raw: Located, err: Err) -> None:
    """Every item of a rule's lists of texts is text. An item `2026-11-25, new: what changed` is a
    mapping to YAML (its ': '), and would reach a reviewer as a Python dict: quote it, or fold it."""
    for key in NOTE_KEYS:
        items = raw.get(key)
        if not isinstance(items, LocatedList):
            continue
        for i, item in enumerate(items):
            if not isinstance(item, str):
                at = items.line_of(i)
                err(f"{key}: each item is text, not {spelled(item)}: put it in quotes, or write it with >-", key, at)


def _check_rule_header(raw: Located, defaults, layers: List[Layer], err: Err) -> Any:
    """The rule's id, layer, basis and status checked; its status (the file's default if unwritten)."""
    if not isinstance(raw["id"], str) or not ID_PATTERN.fullmatch(raw["id"]):
        err("an id is lower-case words joined by '-'", "id")
    layer_names = [l.name for l in layers]
    if raw["layer"] not in layer_names:
        err(f"unknown layer '{raw['layer']}'{suggest(raw['layer'], layer_names)}", "layer")
    if raw["basis"] not in BASES:
        err(f"basis must be one of {', '.join(BASES)}", "basis")
    status = raw.get("status", defaults.get("status", "draft"))
    if status in ("reviewed", "approved", "needs-change"):
        err(
            f"status '{status}' is not written in a rule: a reviewer's sign-off gives it "
            "(`ivig audit sign`); a rule's status is draft or retired",
            "status",
        )
    elif status not in STATUSES:
        err(f"status must be one of {', '.join(STATUSES)}", "status")
    return status


def _rule_source(raw: Located, err: Err) -> dict:
    """The rule's `source` (where in the review it comes from), checked; {} if none."""
    src = raw.get("source")
    if not src:
        return {}
    if not isinstance(src, Located):
        err("source must be a mapping", "source")
        return {}
    for key in src:
        if key not in SOURCE_KEYS:
            err(f"unknown source key '{key}'{suggest(key, SOURCE_KEYS)}", "source", src.line_of(key))
    cite = src.get("cite")
    if cite is not None and not isinstance(cite, str):
        err(
            f"source.cite must be the id of a passage in passages.yaml, not {spelled(cite)}",
            "source",
            src.line_of("cite"),
        )
    if src.get("cite") and (src.get("quote") or src.get("quote_en")):
        err(
            f"source.cite '{src['cite']}' brings its quote from passages.yaml: drop quote and quote_en here",
            "source",
            src.line_of("cite"),
        )
    if src.get("quote") and not str(src.get("quote_en") or "").strip():
        err(
            "a quote from the translation needs its English rendering: source.quote_en",
            "source",
            src.line_of("quote"),
            kind="provenance",
        )
    return src


def _check_provenance(raw: Located, src: dict, err: Err) -> None:
    """A rule says where it comes from: the review (its `source`), or the rationale of an
    assumption; and the claims it encodes."""
    if raw["basis"] == "review" and not (src.get("refs") or src.get("quote") or src.get("cite")):
        err(
            "a rule with basis 'review' must cite the review: source.refs, source.quote or source.cite",
            "source",
            kind="provenance",
        )
    if raw["basis"] == "assumption" and not str(raw.get("rationale", "")).strip():
        err("a rule with basis 'assumption' must give its rationale", "rationale", kind="provenance")
    if not raw.get("claims"):
        err("a rule must name the claims (C..) it encodes", "claims", kind="provenance")


def _when(raw: Located, source: str, errors: List[SourceError]) -> Optional[conditions.Condition]:
    """The rule's condition, parsed (conditions.parse); None, with the error, if it cannot be."""
    try:
        return conditions.parse(raw["when"], source, raw.line_of("when"))
    except SourceError as exc:
        errors.append(exc)
        return None


def _rule_spec(raw: Located, source, line, topic, when, then, status, src, ask: bool) -> RuleSpec:
    """The RuleSpec of a rule that passed its checks: its texts on one line each."""
    return RuleSpec(
        id=raw["id"],
        title=" ".join(str(raw["title"]).split()),
        layer=raw["layer"],
        when=when,
        then=then,
        basis=raw["basis"],
        file=source,
        line=line,
        topic=topic,
        rationale=" ".join(str(raw.get("rationale", "")).split()),
        claims=_strings(raw, "claims"),
        assumptions=_strings(raw, "assumptions"),
        source=dict(src),
        evidence=_strings(raw, "evidence"),
        flags=_strings(raw, "flags"),
        status=status,
        explanation=" ".join(str(raw.get("explanation", "")).split()),
        changes=tuple(" ".join(c.split()) for c in _strings(raw, "changes")),
        ask=ask,
        raw=raw,
    )


def _strings(raw: Located, key: str) -> Tuple[str, ...]:
    """The rule's `key`, one text or a list of them, as a tuple of texts."""
    value = raw.get(key)
    if value is None:
        return ()
    return tuple(str(v) for v in (value if isinstance(value, list) else [value]))


def _then(data, source, line, stances, err) -> dict:
    if not isinstance(data, dict) or not data:
        err("'then' must be a mapping of actions: " + ", ".join(ACTION_KEYS), "then")
        return {}
    out: Dict[str, Any] = {}
    for key, value in data.items():
        at = data.line_of(key) if isinstance(data, Located) else line
        if key not in ACTION_KEYS:
            err(f"unknown action '{key}'{suggest(key, ACTION_KEYS)}", "then", at)
        elif key == "derive":
            derive = _derive(value, at, err)
            if derive:
                out["derive"] = derive
        elif key == "recommend":
            recommend = _recommend(value, at, stances, err)
            if recommend:
                out["recommend"] = recommend
        elif key == "dose":
            out["dose"] = _dose(value, at, err)
        else:
            items = value if isinstance(value, list) else [value]
            out["warn"] = [w for w in (_warning(item, at, err) for item in items) if w]
    return out


def _derive(value, at, err: Err) -> Optional[dict]:
    """A rule's `derive`, checked: facts by name, each a single value that a condition can
    test; None (the error given to `err`) when it is wrong."""
    if not isinstance(value, Located) or not value:
        err("'derive' takes a mapping of name: value", "then", at)
        return None
    if any(k == STANCE for k in value):
        err("the stance is set with 'recommend', not 'derive'", "then", at)
        return None
    for name, fact in value.items():
        if isinstance(fact, (list, dict)):
            message = f"derive.{name} must be a single value (a text, a number, true or false), not {spelled(fact)}"
            err(message, "then", value.line_of(name))
            return None
    return dict(value)


def _recommend(value, at, stances: Dict[str, bool], err: Err) -> Optional[dict]:
    """A rule's `recommend`, checked: one of the manifest's stances and a summary (on one line);
    None (the error given to `err`) when it is wrong."""
    stance = value.get("stance") if isinstance(value, Located) else None
    if stance is not None and not isinstance(stance, str):  # a list or mapping is no name of a stance
        err(
            f"recommend.stance must be one of {', '.join(stances)}, not {spelled(stance)}",
            "then",
            value.line_of("stance"),
        )
        return None
    if stance not in stances or not value.get("summary"):
        err(f"'recommend' needs a stance ({', '.join(stances)}) and a summary", "then", at)
        return None
    return {"stance": stance, "summary": " ".join(str(value["summary"]).split())}


def _dose(value, at, err, keys=DOSE_KEYS) -> dict:
    """A dose as written in a rule, or a row of the regimen table; a rule may
    instead name a row (`dose: gbs`), resolved once the table is read."""
    if isinstance(value, str) and ID_PATTERN.fullmatch(value):
        return {"regimen": value}
    if not isinstance(value, Located):
        err("'dose' must be a mapping, or the id of a regimen in regimens.yaml", "then", at)
        return {}
    for key in value:
        if key not in keys:
            err(f"unknown dose key '{key}'{suggest(key, keys)}", "then", value.line_of(key))
    dose = {k: value.get(k) for k in DOSE_KEYS}
    dose["per"] = dose["per"] or "course"
    if dose["per"] not in DOSE_PER:
        err(f"dose.per must be {' or '.join(DOSE_PER)}", "then", value.line_of("per"))
        return {}
    for key in ("total_g_per_kg", "g_per_kg_per_day", "days", "infusion_g_per_kg"):
        number = dose[key]
        if number is not None and (isinstance(number, bool) or not isinstance(number, (int, float)) or number <= 0):
            err(f"dose.{key} must be a positive number or null", "then", value.line_of(key))
            return {}
    for key in ("interval", "repeat", "note"):  # words a clinician reads with the dose
        if isinstance(dose[key], (list, dict)):
            err(f"dose.{key} must be a text or null, not {spelled(dose[key])}", "then", value.line_of(key))
            return {}
    if dose["per"] == "infusion":
        _infusion_dose(dose, at, err)
    else:
        _course_dose(dose, at, err)
    for key in ("interval", "note"):
        dose[key] = " ".join(str(dose[key]).split()) if dose[key] else None
    return dose


def _course_dose(dose: dict, at, err) -> None:
    total, per_day, days = dose["total_g_per_kg"], dose["g_per_kg_per_day"], dose["days"]
    if total is None:
        err("dose.total_g_per_kg is required: the review gives at least a total", "then", at)
    elif per_day is not None and days is not None and abs(per_day * days - total) > 1e-9:
        err(f"dose: {per_day} g/kg/day x {days} days is not the total {total} g/kg", "then", at)
    if (per_day is None) != (days is None):
        err("dose: give both g_per_kg_per_day and days, or neither", "then", at)
    if dose["infusion_g_per_kg"] is not None or dose["interval"] is not None:
        err("dose: infusion_g_per_kg and interval belong to a dose per infusion (per: infusion)", "then", at)


def _infusion_dose(dose: dict, at, err) -> None:
    if dose["infusion_g_per_kg"] is None or not dose["interval"]:
        err(
            "dose per infusion: give infusion_g_per_kg and the interval (in words, as the review or study gives it)",
            "then",
            at,
        )
    if any(dose[k] is not None for k in ("total_g_per_kg", "g_per_kg_per_day", "days")):
        err("dose per infusion: total_g_per_kg, g_per_kg_per_day and days belong to a course (per: course)", "then", at)


def _resolve(rules: List[RuleSpec], extras: dict, sources: Dict[str, str], schema: CaseSchema, errors):
    """Put in each rule the passage it cites and the regimen it names.

    A passage several rules quote, and the review's regimens, are written
    once (passages.yaml, regimens.yaml); a rule names them by id, and from
    here on it carries their content as if written in it.
    """
    passages = _table(extras, sources, "passages", PASSAGE_KEYS, errors)
    regimens = _table(extras, sources, "regimens", REGIMEN_KEYS, errors)
    diagnosis = schema.fields.get("diagnosis")
    for name, row in (extras.get("regimens") or {}).items():
        if name in regimens and diagnosis and row.get("diagnosis") not in (None, *diagnosis.values):
            errors.append(
                SourceError(
                    f"'{row['diagnosis']}' is not a diagnosis{suggest(row['diagnosis'], diagnosis.values)}",
                    sources["regimens"],
                    row.line_of("diagnosis"),
                    f"regimens.{name}.diagnosis",
                )
            )
    for rule in rules:
        cite = rule.source.get("cite")
        if cite is not None:
            where = (rule.file, rule.raw["source"].line_of("cite"), f"{rule.id}.source.cite")
            if cite not in passages:
                errors.append(SourceError(f"no passage '{cite}' in passages.yaml{suggest(cite, passages)}", *where))
            else:
                rule.source.update(passages[cite])
        named = (rule.then.get("dose") or {}).get("regimen")
        if named is not None:
            where = (rule.file, rule.raw["then"].line_of("dose"), f"{rule.id}.then.dose")
            if named not in regimens:
                errors.append(SourceError(f"no regimen '{named}' in regimens.yaml{suggest(named, regimens)}", *where))
            else:
                rule.then["dose"] = {k: regimens[named][k] for k in DOSE_KEYS}


def _table(extras: dict, sources: Dict[str, str], key: str, keys, errors) -> Dict[str, dict]:
    """A data file of records by id (passages, regimens), each checked."""
    data = extras.get(key)
    if not isinstance(data, Located):  # none, or refused as it was read (_data_file_holds)
        return {}
    source = sources[key]
    out = {}
    for name, record in data.items():
        line = data.line_of(name)

        def err(message, _field=None, at=None, kind="schema", _name=name, line=line):
            errors.append(SourceError(message, source, at or line, f"{key}.{_name}", kind))

        if not isinstance(name, str) or not ID_PATTERN.fullmatch(name) or not isinstance(record, Located):
            err("a record needs an id of lower-case words joined by '-' and a mapping")
            continue
        if key == "regimens":
            dose = _dose(record, line, err, keys)
            if dose and "regimen" not in dose:
                out[name] = dose
            continue
        for k in record:
            if k not in keys:
                err(f"unknown key '{k}'{suggest(k, keys)}", at=record.line_of(k))
        if not all(str(record.get(k) or "").strip() for k in keys):
            err(
                f"a passage needs {' and '.join(keys)}: the translation's words and their English rendering",
                kind="provenance",
            )
            continue
        out[name] = {k: str(record[k]) for k in keys}
    return out


def _warning(item, at, err) -> Optional[dict]:
    """A warning of a rule's `then`, checked, its texts on one line each; None (the error given
    to `err`) when it is wrong."""
    if not isinstance(item, dict):
        err("a warning must be a mapping", "then", at)
        return None
    here = item.line_of("code") if isinstance(item, Located) else at
    for key in item:
        if key not in WARN_KEYS:
            err(f"unknown warning key '{key}'{suggest(key, WARN_KEYS)}", "then", here)
    problem = warning_problem(item)
    if problem is None and str(item["code"]).startswith(LATER_PREFIX):
        problem = (
            f"warning '{item['code']}': '{LATER_PREFIX}' is the mark of later evidence's findings; "
            "a rule's code is its own"
        )
    if problem:
        err(problem, "then", here)
        return None
    return {
        "code": item["code"],
        "severity": item["severity"],
        "applies": item["applies"],
        "grade": item.get("grade"),
        "summary": " ".join(str(item.get("summary") or "").split()),
        "message": " ".join(str(item["message"]).split()),
        "action": " ".join(str(item["action"]).split()) if item.get("action") else None,
    }


def _order(rules: List[RuleSpec], layers: List[Layer]):
    """Give every rule its own salience: layers first, then the order written.

    experta orders equal-salience activations by hash-seeded sets, so a
    total order is what makes results and traces identical across runs.
    """
    step = len(rules) + 1
    for position, rule in enumerate(rules):
        rule.position = position
    by_layer = {l.name: l.index for l in layers}
    for rank, rule in enumerate(sorted(rules, key=lambda r: (by_layer[r.layer], r.position))):
        rule.salience = step * len(layers) - rank


def _check_names(rules: List[RuleSpec], layers: List[Layer], schema: CaseSchema, errors: List[SourceError]) -> None:
    """Every name and value a rule tests must exist; derived facts must exist before they are tested."""
    _check_unique_ids(rules, errors)
    produced = _derived_by(rules, schema, errors)
    index = {l.name: l.index for l in layers}
    for rule in rules:
        for test in conditions.tests(rule.when):
            where = (rule.file, test.line or rule.line, f"{rule.id}.when.{test.name}")
            nested = nested_operand_problem(test)
            if nested:
                problems = [nested]
            elif test.name in schema.fields:
                problem = field_test_problem(test, schema.fields[test.name])
                problems = [problem] if problem else []
            else:
                problems = _derived_test_problems(test, rule, produced, index, schema)
            errors.extend(SourceError(message, *where) for message in problems)


def _check_unique_ids(rules: List[RuleSpec], errors: List[SourceError]) -> None:
    """No two rules with one id: the second names where the first is."""
    seen: Dict[str, RuleSpec] = {}
    for rule in rules:
        if rule.id in seen:
            errors.append(
                SourceError(
                    f"duplicate rule id '{rule.id}' (first at {seen[rule.id].file}:{seen[rule.id].line})",
                    rule.file,
                    rule.line,
                    rule.id,
                    "duplicate-id",
                )
            )
        seen.setdefault(rule.id, rule)


def _derived_by(rules: List[RuleSpec], schema: CaseSchema, errors: List[SourceError]) -> Dict[str, List[RuleSpec]]:
    """Derived fact -> the rules that assert it; a rule deriving a case field is an error."""
    produced: Dict[str, List[RuleSpec]] = {}
    for rule in rules:
        for name in rule.derives:
            if name in schema.fields:
                errors.append(
                    SourceError(f"'{name}' is a case field; a rule cannot derive it", rule.file, rule.line, rule.id)
                )
            produced.setdefault(name, []).append(rule)
    return produced


def _derived_test_problems(
    test: conditions.Test,
    rule: RuleSpec,
    produced: Dict[str, List[RuleSpec]],
    index: Dict[str, int],
    schema: CaseSchema,
) -> List[str]:
    """What is wrong with `rule`'s test of a name that is no case field: no rule derives it, or
    not the value tested, or a rule derives it only in a later layer (or, for a test that it is
    not known, in the same one)."""
    makers = produced.get(test.name)
    values = {m.derives[test.name] for m in makers} if makers else None
    problem = derived_test_problem(test, values, list(schema.fields) + list(produced))
    if not makers:
        return [problem] if problem else []
    problems = [problem] if problem else []
    late = [m for m in makers if index[m.layer] > index[rule.layer]]
    negative = test.op == "known" and test.operand is False  # a NOT pattern
    same = [m for m in makers if index[m.layer] == index[rule.layer]]
    if late or (negative and same):
        other = (late or same)[0]
        problems.append(
            f"tests '{test.name}', which rule '{other.id}' derives in layer '{other.layer}', "
            f"{'after' if late else 'in the same layer as'} this rule's layer '{rule.layer}'"
        )
    return problems


def _check_references(rules: List[RuleSpec], extras: dict, errors):
    """Claims, assumptions and evidence a rule names must exist in the data files."""
    claims = extras.get("claims") or {}
    known = {
        "claims": set(claims.get("claims") or ()) | set(claims.get("not_encoded") or ()),
        "assumptions": set(claims.get("assumptions") or ()),
        "evidence": set(extras.get("evidence") or ()),
    }
    if not any(known.values()):
        return  # a rule base without data files: nothing to check against
    for rule in rules:
        for kind, names in (("claims", rule.claims), ("assumptions", rule.assumptions), ("evidence", rule.evidence)):
            for name in names:
                if name not in known[kind]:
                    errors.append(
                        SourceError(
                            f"unknown {kind[:-1] if kind != 'evidence' else kind} '{name}'{suggest(name, known[kind])}",
                            rule.file,
                            rule.raw.line_of(kind),
                            f"{rule.id}.{kind}",
                        )
                    )
