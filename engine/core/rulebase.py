"""The rule language: loading rule files from rules/, and checking them on load.

A rule base is a directory with a manifest (``rulebase.yaml``: name,
version, the ordered layers, the rule files) and the rule files it names.
Every problem is reported as ``file:line`` with the field, and loading stops
only after the whole base has been read, so one run shows every error.
"""

import hashlib
import os
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Tuple

from ..base.errors import InvalidSource
from ..base.yamlsrc import Located, SourceError, load_one
from . import conditions
from .schema import CaseSchema
from .words import suggest

SEVERITIES = ("critical", "warning", "info")
BASES = ("review", "assumption")
STATUSES = ("draft", "retired")  # written in a rule; approval is a sign-off in the review log (signoff.py)
STANCE = "stance"  # the derived fact a `recommend` action sets

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
SOURCE_KEYS = ("section", "refs", "lines", "quote", "quote_en", "cite")
PASSAGE_KEYS = ("quote", "quote_en")  # a passage of the review that several rules cite (passages.yaml)
ACTION_KEYS = ("derive", "recommend", "dose", "warn")
# A regimen is a course (`per: course`: total_g_per_kg, split as g_per_kg_per_day x days where the
# review splits it) or a dose per infusion at an interval (`per: infusion`: infusion_g_per_kg every
# `interval`), never one dressed as the other: a weekly infusion read as a one-day course gives a
# program the wrong grams.
DOSE_KEYS = ("per", "total_g_per_kg", "g_per_kg_per_day", "days", "infusion_g_per_kg", "interval", "repeat", "note")
DOSE_PER = ("course", "infusion")
REGIMEN_KEYS = ("diagnosis", "situation") + DOSE_KEYS  # a row of the regimen table (regimens.yaml)
WARN_KEYS = ("code", "severity", "applies", "grade", "summary", "message", "action")
# Whom a warning is about: this patient, because of something about them (a risk factor, a planned
# co-therapy), or every infusion alike. Only the first may be critical or a warning: what holds for
# every infusion is said once, quietly, among the general precautions.
APPLIES = ("patient", "every-infusion")
# How serious the adverse event is in the review's own grading (TR L159-163), kept apart from how
# loudly it is shown; `not-graded`: an adverse event the review names without a grade (thrombosis).
GRADES = ("mild", "moderate", "severe", "not-graded")
SUMMARY_MAX = 139  # characters: a CDS Hooks card's summary ("<140 characters", the spec says), and one line of text
ID_PATTERN = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
YAML_SUFFIXES = (".yaml", ".yml")  # in any case: .YML is YAML to a person and to an editor


@dataclass
class Layer:
    name: str
    sets_stance: bool
    help: str
    index: int


@dataclass
class RuleSpec:
    """One rule as written, checked, with where it was written."""

    id: str
    title: str
    layer: str
    when: conditions.Condition
    then: dict
    basis: str
    file: str
    line: int
    topic: str
    position: int = 0
    salience: int = 0
    rationale: str = ""
    claims: Tuple[str, ...] = ()
    assumptions: Tuple[str, ...] = ()
    source: dict = field(default_factory=dict)
    evidence: Tuple[str, ...] = ()
    flags: Tuple[str, ...] = ()
    status: str = "draft"
    explanation: str = ""
    changes: Tuple[str, ...] = ()  # what changed in the rule, when and why (newest last)
    # False: the rule takes note of what a case says and never makes a question of its own (its
    # fields are not asked for, nor listed as missing, on its account): "IVIG is not planned" is
    # worth saying when a case says it, not worth asking every patient.
    ask: bool = True
    raw: dict = field(default_factory=dict)

    @property
    def derives(self) -> Dict[str, object]:
        """The derived facts this rule asserts, name -> value (stance included)."""
        out = dict(self.then.get("derive") or {})
        if "recommend" in self.then:
            out[STANCE] = self.then["recommend"]["stance"]
        return out

    @property
    def warnings(self) -> List[dict]:
        return list(self.then.get("warn") or [])


class RuleBaseInvalid(InvalidSource):
    """A rule base with errors; `errors` lists every SourceError found."""


class RuleBase:
    """The rules, their layers and the case schema they are written against."""

    def __init__(
        self,
        *,
        root,
        label: str,
        packaged: bool,
        manifest: dict,
        layers: List[Layer],
        stances: Dict[str, bool],
        rules: List[RuleSpec],
        schema: CaseSchema,
        extras: Dict[str, object],
        topics: Dict[str, str],
        maintenance: Dict[str, dict],
        digest: str = "",
    ):
        """Built whole by `load`; the arguments are what it read."""
        self.root = root  # where the files are: a Path, or a Traversable for the packaged rules
        self.label = label  # how errors name that place
        self.packaged = packaged  # the rules shipped with ivig, not a directory a user named
        self.manifest = manifest
        self.layers = layers
        self.stances = stances  # stance -> whether it gives IVIG (the manifest's `stances`)
        self.rules = rules
        self.schema = schema
        self.extras = extras  # data files named by the manifest (evidence, claims, ...)
        self.topics = topics  # topic -> the title of its rule file
        self.maintenance = maintenance  # topic -> author, specialist, version (Arden's slots)
        self.by_id = {r.id: r for r in rules}
        self.digest = digest  # sha256 of the schema and every file read, in order

    @property
    def stamp(self) -> dict:
        """What each result carries to tie it to these rules: name, version and a
        content hash (16 hex digits of `digest`; any edit to a rule, data or
        schema file changes it), so that an old result can be re-run on them."""
        return {"name": self.name, "version": self.version, "hash": f"sha256:{self.digest[:16]}"}

    @property
    def ivig_given(self) -> frozenset:
        """The stances under which the review supports giving IVIG: a regimen follows."""
        return frozenset(name for name, gives in self.stances.items() if gives)

    @property
    def name(self) -> str:
        return str(self.manifest.get("name", "rules"))

    @property
    def version(self) -> str:
        return str(self.manifest.get("version", "0"))

    def layer(self, name: str) -> Layer:
        return next(l for l in self.layers if l.name == name)

    def producers(self, name: str) -> List[RuleSpec]:
        """The rules that assert the derived fact `name`."""
        return [r for r in self.rules if name in r.derives]

    @classmethod
    def load(cls, directory: Optional[Path] = None, schema: Optional[CaseSchema] = None) -> "RuleBase":
        """Read and check a rule base (default: the packaged rules/); raise RuleBaseInvalid."""
        schema = schema or CaseSchema.load()
        if directory is None:
            root = resources.files("ivig_advisor").joinpath("rules")
            label = "rules"
        else:
            root, label = Path(directory), str(directory)

        content = hashlib.sha256(schema.digest.encode())  # what a result is tied to: every file read

        def read(name):
            try:
                text = root.joinpath(name).read_text(encoding="utf-8-sig")
            except UnicodeDecodeError as exc:  # a rule file saved as UTF-16 is an error that names it
                raise SourceError(f"not UTF-8 text (byte {exc.start}): save it as UTF-8", f"{label}/{name}") from None
            content.update(f"\0{name}\0{text}".encode())
            return load_one(text, f"{label}/{name}")

        def outside(name) -> Optional[str]:
            """Why a file the manifest names is not a file of this rule directory, or None.

            A manifest is data: it must not make the loader read /etc/passwd or
            ../x.yaml, nor follow a symbolic link out of the directory.
            """
            if not isinstance(name, str) or not name.strip():
                return f"a file name must be text, not {name!r}"
            if Path(name).is_absolute() or re.match(r"[A-Za-z]:|[\\/]", name) or ".." in re.split(r"[\\/]", name):
                return f"'{name}' is outside the rule directory: name files relative to it, without '..'"
            if isinstance(root, Path):
                base, target = root.resolve(), (root / name).resolve()
                if base not in target.parents:
                    return f"'{name}' leads outside the rule directory (a symbolic link to {target})"
            return None

        errors: List[SourceError] = []
        try:
            manifest = read("rulebase.yaml")
        except (OSError, SourceError) as exc:
            raise RuleBaseInvalid(
                [
                    exc
                    if isinstance(exc, SourceError)
                    else SourceError(f"cannot read the manifest: {exc}", f"{label}/rulebase.yaml")
                ]
            ) from None
        msource = f"{label}/rulebase.yaml"
        layers = _layers(manifest, msource, errors)
        stances = _stances(manifest, msource, errors)
        rules: List[RuleSpec] = []
        topics: Dict[str, str] = {}
        maintenance: Dict[str, dict] = {}
        for index, name in enumerate(manifest.get("rule_files") or []):
            problem = outside(name)
            if problem:
                errors.append(SourceError(problem, msource, manifest["rule_files"].line_of(index)))
                continue
            try:
                data = read(name)
            except OSError as exc:
                errors.append(
                    SourceError(
                        f"cannot read rule file '{name}': {exc.strerror}",
                        msource,
                        manifest["rule_files"].line_of(index),
                    )
                )
                continue
            except SourceError as exc:
                errors.append(exc)
                continue
            rules.extend(_rule_file(data, f"{label}/{name}", layers, stances, errors))
            if isinstance(data, dict):
                topic = str(data.get("topic", Path(name).stem))
                topics[topic] = " ".join(str(data.get("title", "")).split())
                maintenance[topic] = dict(data.get("maintenance") or {})
        extras, sources = {}, {}
        for key, name in (manifest.get("data_files") or {}).items():
            line = manifest["data_files"].line_of(key)
            problem = outside(name)
            if problem:
                errors.append(SourceError(problem, msource, line))
                continue
            try:
                extras[key], sources[key] = read(name), f"{label}/{name}"
            except (OSError, SourceError) as exc:
                errors.append(
                    exc
                    if isinstance(exc, SourceError)
                    else SourceError(f"cannot read data file '{name}': {exc.strerror}", msource, line)
                )
        if not errors:
            _resolve(rules, extras, sources, schema, errors)
        if not errors:
            _order(rules, layers)
            _check_names(rules, layers, schema, errors)
            _check_references(rules, extras, errors)
        if errors:
            raise RuleBaseInvalid(errors)
        return cls(
            root=root,
            label=label,
            packaged=directory is None,
            manifest=manifest,
            layers=layers,
            stances=stances,
            rules=rules,
            schema=schema,
            extras=extras,
            topics=topics,
            maintenance=maintenance,
            digest=content.hexdigest(),
        )


def unlisted_files(root, manifest, also_listed: Iterable[str] = ()) -> List[str]:
    """The YAML files below a rule directory that its manifest does not list (`rule_files`,
    `data_files`, and `also_listed`), as paths relative to it, sorted.

    The loader reads only what the manifest lists: a reviewer who drops a rule file in,
    at any depth and with any case of extension (`sub/x.yaml`, `Stray2.YML`), must not
    think its rules are live. A file counts as listed when a listed name inside the
    directory leads to it, through links or not; a link in the directory to a file out
    of it is named like any file. Links to directories are never entered (a file below
    one inside the directory is found where it is), so a link out or a loop is never
    followed. Hidden directories (`.git`) are tools' own and are not entered; a hidden YAML
    file (`.old.yaml`, or one named `.YAML`) is named like any other, since a reviewer who
    lists the directory with `ls -a` sees a YAML file there.
    """
    if not isinstance(root, Path) or not root.is_dir() or not isinstance(manifest, dict):
        return []
    base = os.path.realpath(root)
    inside = (os.path.realpath(root / name) for name in _manifest_files(manifest) + list(also_listed))
    listed = {path for path in inside if path.startswith(base + os.sep)}
    return sorted(
        path.relative_to(root).as_posix() for path in _yaml_files_below(root) if os.path.realpath(path) not in listed
    )


def _manifest_files(manifest: dict) -> List[str]:
    """The file names a manifest lists (rule_files, data_files), those that can name a file."""
    rule_files, data_files = manifest.get("rule_files"), manifest.get("data_files")
    names = (list(rule_files) if isinstance(rule_files, list) else []) + (
        list(data_files.values()) if isinstance(data_files, dict) else []
    )
    return [name for name in names if isinstance(name, str) and name.strip() and "\0" not in name]


def _yaml_files_below(root: Path) -> Iterator[Path]:
    """Every entry below `root` with a YAML name that is not a directory, at any depth,
    with a stack rather than recursion (a deep tree is no crash); hidden directories and
    links to directories not entered, folders that cannot be read passed over."""
    folders = [root]
    while folders:
        try:
            with os.scandir(folders.pop()) as listing:
                entries = list(listing)
        except OSError:
            continue
        for entry in entries:
            try:
                folder = entry.is_dir(follow_symlinks=False)
            except OSError:  # gone, or not ours to look at
                continue
            if folder:
                if not entry.name.startswith("."):
                    folders.append(Path(entry.path))
            elif entry.name.lower().endswith(YAML_SUFFIXES):  # '.YAML' too: a YAML file with no stem
                yield Path(entry.path)


def _layers(manifest, source, errors) -> List[Layer]:
    layers = []
    items = manifest.get("layers") if isinstance(manifest, dict) else None
    if not isinstance(items, list) or not items:
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
    items = manifest.get("stances") if isinstance(manifest, dict) else None
    if not isinstance(items, list) or not items:
        errors.append(SourceError("the manifest needs a list of 'stances' (name, gives_ivig)", source, 1))
        return {}
    out: Dict[str, bool] = {}
    for i, item in enumerate(items):
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("name"), str)
            or not ID_PATTERN.match(item["name"])
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
    if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
        errors.append(SourceError("a rule file needs a 'rules' list", source, getattr(data, "line", 1)))
        return []
    for key in data:
        if key not in FILE_KEYS:
            errors.append(
                SourceError(f"unknown rule-file key '{key}'{suggest(key, FILE_KEYS)}", source, data.line_of(key))
            )
    topic = str(data.get("topic", Path(source).stem))
    defaults = data.get("defaults") or {}
    out = []
    for i, raw in enumerate(data["rules"]):
        line = data["rules"].line_of(i)
        if not isinstance(raw, dict):
            errors.append(SourceError("a rule must be a mapping", source, line))
            continue
        rule = _rule(raw, source, line, topic, defaults, layers, stances, errors)
        if rule is not None:
            out.append(rule)
    return out


def _rule(raw: Located, source, line, topic, defaults, layers, stances, errors) -> Optional[RuleSpec]:
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

    before = len(errors)
    for key in raw:
        if key not in RULE_KEYS:
            err(f"unknown rule key '{key}'{suggest(key, RULE_KEYS)}", key)
    for key in ("id", "title", "layer", "when", "then", "basis"):
        if key not in raw:
            err(f"the rule has no '{key}'")
    if len(errors) > before:
        return None
    rule_id = raw["id"]
    if not isinstance(rule_id, str) or not ID_PATTERN.match(rule_id):
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
    src = raw.get("source") or {}
    if not isinstance(src, dict):
        err("source must be a mapping", "source")
        src = {}
    for key in src:
        if key not in SOURCE_KEYS:
            err(f"unknown source key '{key}'{suggest(key, SOURCE_KEYS)}", "source", src.line_of(key))
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
    try:
        when = conditions.parse(raw["when"], source, raw.line_of("when"))
    except SourceError as exc:
        errors.append(exc)
        when = None
    then = _then(raw["then"], source, raw.line_of("then"), stances, err)
    if len(errors) > before:
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

    def strings(key):
        value = raw.get(key)
        if value is None:
            return ()
        return tuple(str(v) for v in (value if isinstance(value, list) else [value]))

    return RuleSpec(
        id=rule_id,
        title=" ".join(str(raw["title"]).split()),
        layer=raw["layer"],
        when=when,
        then=then,
        basis=raw["basis"],
        file=source,
        line=line,
        topic=topic,
        rationale=" ".join(str(raw.get("rationale", "")).split()),
        claims=strings("claims"),
        assumptions=strings("assumptions"),
        source=dict(src),
        evidence=strings("evidence"),
        flags=strings("flags"),
        status=status,
        explanation=" ".join(str(raw.get("explanation", "")).split()),
        changes=tuple(" ".join(c.split()) for c in strings("changes")),
        ask=ask,
        raw=raw,
    )


def _then(data, source, line, stances, err) -> dict:
    if not isinstance(data, dict) or not data:
        err("'then' must be a mapping of actions: " + ", ".join(ACTION_KEYS), "then")
        return {}
    out = {}
    for key, value in data.items():
        at = data.line_of(key) if isinstance(data, Located) else line
        if key not in ACTION_KEYS:
            err(f"unknown action '{key}'{suggest(key, ACTION_KEYS)}", "then", at)
        elif key == "derive":
            if not isinstance(value, dict) or not value:
                err("'derive' takes a mapping of name: value", "then", at)
            elif any(k == STANCE for k in value):
                err("the stance is set with 'recommend', not 'derive'", "then", at)
            else:
                out["derive"] = dict(value)
        elif key == "recommend":
            if not isinstance(value, dict) or value.get("stance") not in stances or not value.get("summary"):
                err(f"'recommend' needs a stance ({', '.join(stances)}) and a summary", "then", at)
            else:
                out["recommend"] = {"stance": value["stance"], "summary": " ".join(str(value["summary"]).split())}
        elif key == "dose":
            out["dose"] = _dose(value, at, err)
        else:
            items = value if isinstance(value, list) else [value]
            out["warn"] = [w for w in (_warning(item, at, err) for item in items) if w]
    return out


def _dose(value, at, err, keys=DOSE_KEYS) -> dict:
    """A dose as written in a rule, or a row of the regimen table; a rule may
    instead name a row (`dose: gbs`), resolved once the table is read."""
    if isinstance(value, str) and ID_PATTERN.match(value):
        return {"regimen": value}
    if not isinstance(value, dict):
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
    if data is None:
        return {}
    source = sources[key]
    if not isinstance(data, dict):
        errors.append(SourceError(f"{key} must be a mapping of id: record", source, 1))
        return {}
    out = {}
    for name, record in data.items():
        line = data.line_of(name)

        def err(message, _field=None, at=None, kind="schema", _name=name, line=line):
            errors.append(SourceError(message, source, at or line, f"{key}.{_name}", kind))

        if not isinstance(name, str) or not ID_PATTERN.match(name) or not isinstance(record, dict):
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
    if not isinstance(item, dict):
        err("a warning must be a mapping", "then", at)
        return None
    here = item.line_of("code") if isinstance(item, Located) else at
    for key in item:
        if key not in WARN_KEYS:
            err(f"unknown warning key '{key}'{suggest(key, WARN_KEYS)}", "then", here)
    code, severity = item.get("code"), item.get("severity")
    if not isinstance(code, str) or not ID_PATTERN.match(code):
        err("a warning needs a code of lower-case words joined by '-'", "then", here)
        return None
    if severity not in SEVERITIES:
        err(f"warning '{code}' needs a severity: {', '.join(SEVERITIES)}", "then", here)
        return None
    if not item.get("message"):
        err(f"warning '{code}' needs a message", "then", here)
        return None
    applies, grade = item.get("applies"), item.get("grade")
    if applies not in APPLIES:
        err(
            f"warning '{code}' needs applies: {' or '.join(APPLIES)} (because of something about this patient, "
            "or for any infusion)",
            "then",
            here,
        )
        return None
    if applies == "every-infusion" and severity != "info":
        err(
            f"warning '{code}' applies to every infusion, so it is info (one of the general precautions): "
            "critical and warning are for what is specific to the patient",
            "then",
            here,
        )
        return None
    if grade is not None and grade not in GRADES:
        err(f"warning '{code}': grade must be one of {', '.join(GRADES)} (the review's grading)", "then", here)
        return None
    summary = " ".join(str(item.get("summary") or "").split())
    if not summary:
        err(
            f"warning '{code}' needs a summary: at most {SUMMARY_MAX} characters, written as a summary (a CDS "
            "Hooks card's, never a sentence cut short)",
            "then",
            here,
        )
        return None
    if len(summary) > SUMMARY_MAX:
        err(f"warning '{code}': the summary has {len(summary)} characters; at most {SUMMARY_MAX}", "then", here)
        return None
    message = " ".join(str(item["message"]).split())
    return {
        "code": code,
        "severity": severity,
        "applies": applies,
        "grade": grade,
        "summary": summary,
        "message": message,
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


def _check_names(rules: List[RuleSpec], layers: List[Layer], schema: CaseSchema, errors):
    """Every name and value a rule tests must exist; derived facts must exist before they are tested."""
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
    index = {l.name: l.index for l in layers}
    produced: Dict[str, List[RuleSpec]] = {}
    for rule in rules:
        for name in rule.derives:
            if name in schema.fields:
                errors.append(
                    SourceError(f"'{name}' is a case field; a rule cannot derive it", rule.file, rule.line, rule.id)
                )
            produced.setdefault(name, []).append(rule)
    for rule in rules:
        for test in conditions.tests(rule.when):
            where = (rule.file, test.line or rule.line, f"{rule.id}.when.{test.name}")
            if test.name in schema.fields:
                message = _check_field_test(test, schema.fields[test.name])
                if message:
                    errors.append(SourceError(message, *where))
                continue
            makers = produced.get(test.name)
            if not makers:
                known = list(schema.fields) + list(produced)
                errors.append(
                    SourceError(
                        f"'{test.name}' is neither a case field nor derived by any rule{suggest(test.name, known)}",
                        *where,
                    )
                )
                continue
            values = {m.derives[test.name] for m in makers}
            if test.op in ("eq", "ne") and test.operand not in values:
                errors.append(
                    SourceError(
                        f"no rule derives {test.name} = {test.operand!r} (derived values: {sorted(map(str, values))})",
                        *where,
                    )
                )
            late = [m for m in makers if index[m.layer] > index[rule.layer]]
            negative = test.op == "known" and test.operand is False  # a NOT pattern
            same = [m for m in makers if index[m.layer] == index[rule.layer]]
            if late or (negative and same):
                other = (late or same)[0]
                errors.append(
                    SourceError(
                        f"tests '{test.name}', which rule '{other.id}' derives in layer '{other.layer}', "
                        f"{'after' if late else 'in the same layer as'} this rule's layer '{rule.layer}'",
                        *where,
                    )
                )


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


def _check_field_test(test: conditions.Test, spec) -> Optional[str]:
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
