"""Loading the rule language: the shipped base is clean; broken bases fail with file:line."""

import copy
import functools
import re
import shutil

import pytest
import yaml
from helpers import ROOT, mutate
from hypothesis import given, settings
from hypothesis import strategies as st

from ivig_advisor.engine import RuleBase, RuleBaseInvalid
from ivig_advisor.engine.base.yamlsrc import load_one
from ivig_advisor.engine.core import conditions
from ivig_advisor.engine.core.words import plain


def load_errors(directory):
    with pytest.raises(RuleBaseInvalid) as info:
        RuleBase.load(directory)
    return info.value.errors


def test_shipped_rule_base_loads(rulebase):
    assert len(rulebase.rules) > 50
    assert len({r.salience for r in rulebase.rules}) == len(rulebase.rules), "salience must be a total order"


def test_every_rule_cites_the_review_or_says_why_it_is_an_assumption(rulebase):
    for rule in rulebase.rules:
        if rule.basis == "review":
            assert rule.source.get("refs") or rule.source.get("quote"), rule.id
        else:
            assert rule.rationale, rule.id
        assert rule.claims, rule.id


def test_dose_rules_only_for_stances_that_give_ivig(rulebase):
    for rule in rulebase.rules:
        if "dose" in rule.then:
            stance_tests = [t for t in conditions.tests(rule.when) if t.name == "stance"]
            assert stance_tests, rule.id
            for t in stance_tests:
                assert set(t.operands) <= rulebase.ivig_given, rule.id


@pytest.mark.parametrize(
    "file, old, new, words",
    [
        ("mmn.yaml", "id: mmn-general", "id: mmn-maintenance", "duplicate rule id 'mmn-maintenance'"),
        (
            "mmn.yaml",
            "when: {diagnosis: mmn}",
            "when: {diagnosis: mnn}",
            "'mnn' is not a value of 'diagnosis'; did you mean 'mmn'?",
        ),
        ("mmn.yaml", "when: {diagnosis: mmn}", "when: {diagnoses: mmn}", "did you mean 'diagnosis'?"),
        (
            "gbs.yaml",
            "    when: {diagnosis: miller_fisher}",
            "    when: {diagnosis: miller_fisher, age: {ge: old}}",
            "'ge' takes a number",
        ),
        (
            "regimens.yaml",
            '  total_g_per_kg: 2.0, g_per_kg_per_day: null, days: null,\n  repeat: "monthly for 3 months",\n  note: "The regimen of the controlled trial (ref 71)',
            '  total_g_per_kg: 2.0, g_per_kg_per_day: 0.4, days: 4,\n  repeat: "monthly for 3 months",\n  note: "The regimen of the controlled trial (ref 71)',
            "is not the total 2.0 g/kg",
        ),
        (
            "regimens.yaml",
            '  repeat: "one course",\n',
            '  repeat: "one course", per_week: 1,\n',
            "unknown dose key 'per_week'",
        ),
        (
            "regimens.yaml",
            "gbs: {diagnosis: gbs,",
            "gbs: {diagnosis: gbss,",
            "'gbss' is not a diagnosis; did you mean 'gbs'?",
        ),
        (
            "gbs.yaml",
            "      dose: gbs\n",
            "      dose: gbss\n",
            "no regimen 'gbss' in regimens.yaml; did you mean 'gbs'?",
        ),
        ("gbs.yaml", "      dose: gbs\n", "      dose: [gbs]\n", "'dose' must be a mapping, or the id of a regimen"),
        (
            "mmn.yaml",
            "      cite: mmn-study-regimen\n",
            "      cite: mmn-study-regimn\n",
            "no passage 'mmn-study-regimn' in passages.yaml; did you mean 'mmn-study-regimen'?",
        ),
        (
            "mmn.yaml",
            "      cite: mmn-steroids-worsen\n",
            "      cite: mmn-steroids-worsen\n      quote: x\n",
            "brings its quote from passages.yaml",
        ),
        (
            "passages.yaml",
            '  quote_en: "Unlike CIDP, MMN does not respond to steroids; rather, steroids may worsen it."\n',
            "",
            "a passage needs quote and quote_en",
        ),
        (
            "passages.yaml",
            '  quote_en: "Unlike CIDP',
            '  quote_english: x\n  quote_en: "Unlike CIDP',
            "unknown key 'quote_english'",
        ),
        (
            "junction.yaml",
            "    layer: general\n    when: {diagnosis: lems}",
            "    layer: generall\n    when: {diagnosis: lems}",
            "did you mean 'general'?",
        ),
        (
            "scope.yaml",
            "    basis: review\n    claims: [S01]",
            "    basis: assumption\n    claims: [S01]",
            "must give its rationale",
        ),
        (
            "cidp.yaml",
            "        stance: first-line\n        summary: >-\n          IVIG is a first-line treatment of CIDP",
            "        stance: first line\n        summary: >-\n          IVIG is a first-line treatment of CIDP",
            "needs a stance",
        ),
        ("safety.yaml", "    claims: [C49]", "    claims: [C99]", "unknown claim 'C99'"),
        (
            "gbs.yaml",
            "    layer: classify\n    when:\n      all:\n        - diagnosis: gbs",
            "    layer: plan\n    when:\n      all:\n        - diagnosis: gbs",
            "derives in layer 'plan', after this rule's layer",
        ),
    ],
)
def test_broken_rule_base_fails_with_file_line_and_field(rules_copy, file, old, new, words):
    mutate(rules_copy / file, old, new)
    errors = load_errors(rules_copy)
    match = [e for e in errors if words in e.message]
    assert match, [str(e) for e in errors]
    assert match[0].source.endswith(file) and match[0].line


def test_a_cited_passage_and_a_named_regimen_read_as_if_written_in_the_rule(rulebase):
    """`cite:` and `dose: <id>` are resolved on load: every rule citing a passage
    carries its quote and English rendering, every rule naming a regimen its row."""
    passages, regimens = rulebase.extras["passages"], rulebase.extras["regimens"]
    citing = [r for r in rulebase.rules if "cite" in r.source]
    assert len(citing) >= 2 * len(passages), "a passage is for text several rules share"
    for rule in citing:
        assert rule.source["quote"] == passages[rule.source["cite"]]["quote"], rule.id
        assert rule.source["quote_en"] == passages[rule.source["cite"]]["quote_en"], rule.id
    named = {r.raw["then"]["dose"]: r for r in rulebase.rules if isinstance(r.raw["then"].get("dose"), str)}
    assert set(named) == set(regimens), "every regimen is used, and every dose comes from the table"
    for name, rule in named.items():
        for key in ("per", "total_g_per_kg", "infusion_g_per_kg", "interval", "repeat"):
            assert rule.then["dose"][key] == (regimens[name].get(key) or ("course" if key == "per" else None)), (
                name,
                key,
            )


def test_a_review_rule_without_citation_fails(rules_copy):
    path = rules_copy / "junction.yaml"
    data = path.read_text(encoding="utf-8")
    start = data.index("  - id: lems-general")
    block_end = data.index("  - id: lems-dose")
    block = data[start:block_end]
    cut = block[: block.index("    source:")]
    path.write_text(data[:start] + cut + data[block_end:], encoding="utf-8")
    errors = load_errors(rules_copy)
    assert any("must cite the review" in e.message and e.field == "lems-general.source" for e in errors)


def test_a_contradictory_stance_in_one_layer_shows_as_a_conflict(rules_copy):
    mutate(
        rules_copy / "myopathy.yaml",
        "        stance: second-line\n        summary: IVIG is effective in aggressive",
        "        stance: not-effective\n        summary: IVIG is effective in aggressive",
    )
    from ivig_advisor.engine import Advisor

    result = Advisor(RuleBase.load(rules_copy)).evaluate_mapping(
        {"diagnosis": "dermatomyositis", "refractory": True, "aggressive": True}
    )
    codes = [w["code"] for w in result.warnings]
    assert "rule-conflict" in codes


def test_rule_files_are_valid_yaml_without_the_loader(rulebase):
    for name in rulebase.manifest["rule_files"]:
        assert isinstance(yaml.safe_load((ROOT / "rules" / name).read_text(encoding="utf-8")), dict)


def test_a_quote_without_its_english_rendering_is_refused_at_its_line(rules_copy):
    path = rules_copy / "safety.yaml"
    text = path.read_text(encoding="utf-8")
    line = next(i for i, l in enumerate(text.splitlines(), start=1) if "quote_en:" in l)
    mutate(path, text.splitlines()[line - 1] + "\n", "")
    errors = load_errors(rules_copy)
    assert len(errors) == 1
    assert errors[0].line == line - 1 and "quote_en" in errors[0].message and errors[0].kind == "provenance"


def test_every_rule_quoting_the_translation_renders_it_in_english(rulebase):
    for rule in rulebase.rules:
        if rule.source.get("quote"):
            assert rule.source.get("quote_en"), rule.id


def test_what_changed_in_a_rule_reaches_the_reviewer(run_cli):
    shown = run_cli("audit", "show", "skin-reactions").output
    assert "Changed: 2026-11-25: severity info -> warning" in shown
    import json

    records = {r["id"]: r for r in json.loads(run_cli("audit", "rules", "--format", "json").output)}
    assert records["mmn-maintenance-dose"]["basis"] == "assumption"
    assert any("1-7" in c for c in records["mmn-maintenance-dose"]["changes"])


def test_a_rule_file_not_in_utf8_is_an_error_that_names_it(rules_copy):
    path = rules_copy / "mmn.yaml"
    path.write_bytes(path.read_text(encoding="utf-8").encode("utf-16"))
    errors = load_errors(rules_copy)
    assert any(e.source.endswith("mmn.yaml") and "UTF-8" in e.message for e in errors), errors


# -- files in the rule directory that the manifest does not list (issue 25) --------------


def _manifest(rules_dir):
    return yaml.safe_load((rules_dir / "rulebase.yaml").read_text(encoding="utf-8"))


def test_the_shipped_rule_directory_has_no_unlisted_file():
    from ivig_advisor.engine.core.rulebase import unlisted_files

    assert unlisted_files(ROOT / "rules", _manifest(ROOT / "rules"), ("rulebase.yaml", "review-log.yaml")) == []


def test_an_unlisted_file_is_found_at_any_depth_without_recursion(rules_copy):
    from ivig_advisor.engine.core.rulebase import unlisted_files

    folders = [rules_copy / "d"]
    for _ in range(1_199):  # deeper than Python's recursion limit (and than Path.mkdir's parents=True)
        folders.append(folders[-1] / "d")
    try:
        for folder in folders:
            folder.mkdir()
        (folders[-1] / "x.YAML").write_text("topic: x\n", encoding="utf-8")
        assert unlisted_files(rules_copy, _manifest(rules_copy), ("rulebase.yaml",)) == ["d/" * 1_200 + "x.YAML"]
    finally:  # bottom up: pytest's own clean-up of old temporary folders recurses, and could not
        (folders[-1] / "x.YAML").unlink(missing_ok=True)
        for folder in reversed(folders):
            if folder.is_dir():
                folder.rmdir()


def test_a_file_listed_through_a_link_inside_the_directory_is_listed(rules_copy):
    """The manifest may name a file through a link to a folder of the directory; the file is
    found where it is, and counts as listed. A link to a listed file is that file too."""
    from ivig_advisor.engine.core.rulebase import unlisted_files

    (rules_copy / "v2").mkdir()
    (rules_copy / "mmn.yaml").rename(rules_copy / "v2" / "mmn.yaml")
    (rules_copy / "current").symlink_to(rules_copy / "v2", target_is_directory=True)
    (rules_copy / "same.yaml").symlink_to(rules_copy / "v2" / "mmn.yaml")
    mutate(rules_copy / "rulebase.yaml", "  - mmn.yaml\n", "  - current/mmn.yaml\n")
    RuleBase.load(rules_copy)  # the loader reads it so
    assert unlisted_files(rules_copy, _manifest(rules_copy), ("rulebase.yaml",)) == []


# -- a value of the wrong type is an error at its file and line, never a crash ------------


def _line_starting(path, start):
    """The 1-based number of the first line of `path` that begins with `start`."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return next(number for number, line in enumerate(lines, start=1) if line.startswith(start))


def _rule_at(path, line):
    """The id of the rule of a rule file that `line` is in."""
    lines = path.read_text(encoding="utf-8").splitlines()[:line]
    return next(l.split("id:")[1].strip() for l in reversed(lines) if l.startswith("  - id:"))


def assert_refused_at(run_cli, rules_dir, where, field):
    """A broken rule base as a reviewer meets it: `ivig evaluate --rules` exits 2 with the
    error `where: [field] ...` (`where` is file:line; `field` None: an error of the whole file),
    and `ivig audit check --rules` exits 1 with it as a finding (a load error is a finding
    there); never an internal error."""
    case = rules_dir.parent / "case.json"
    case.write_text('{"diagnosis": "gbs"}', encoding="utf-8")
    evaluated = run_cli("evaluate", "--rules", str(rules_dir), str(case))
    checked = run_cli("audit", "check", "--rules", str(rules_dir))
    for result in (evaluated, checked):
        assert "internal error" not in result.output and "Traceback" not in result.output, result.output
    assert evaluated.exit_code == 2, evaluated.output
    assert f"error: {rules_dir}/{where}: {f'[{field}] ' if field else ''}" in evaluated.output, evaluated.output
    assert checked.exit_code == 1, checked.output
    assert any(
        line.startswith(f"{rules_dir}/{where}: schema: ")
        and (line.endswith(f"[{field}]") if field else "[" not in line)
        for line in checked.output.splitlines()
    ), checked.output


@pytest.mark.parametrize("key", ["defaults", "maintenance"])
@pytest.mark.parametrize("value", ["draft", "1", "[status, draft]"])
def test_a_rule_files_defaults_or_maintenance_that_is_no_mapping_is_refused_at_its_line(
    run_cli, rules_copy, key, value
):
    path = rules_copy / "cidp.yaml"
    line = _line_starting(path, f"{key}:")
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[line - 1] = f"{key}: {value}\n"
    path.write_text("".join(lines), encoding="utf-8")
    assert_refused_at(run_cli, rules_copy, f"cidp.yaml:{line}", key)


@pytest.mark.parametrize("value", ["scope.yaml", "9"])
def test_a_manifests_rule_files_that_is_no_list_is_refused_at_its_line(run_cli, rules_copy, value):
    path = rules_copy / "rulebase.yaml"
    line = _line_starting(path, "rule_files:")
    path.write_text(
        re.sub(r"rule_files:\n(  - .*\n)+", f"rule_files: {value}\n", path.read_text(encoding="utf-8")),
        encoding="utf-8",
    )
    assert_refused_at(run_cli, rules_copy, f"rulebase.yaml:{line}", "rule_files")


@pytest.mark.parametrize("value", ["[not-established]", "{name: not-established}"])
def test_a_recommended_stance_that_is_no_text_is_refused_at_its_line(run_cli, rules_copy, value):
    path = rules_copy / "cidp.yaml"
    mutate(path, "        stance: not-established\n", f"        stance: {value}\n")
    line = _line_starting(path, f"        stance: {value}")
    assert_refused_at(run_cli, rules_copy, f"cidp.yaml:{line}", "cidp-maintenance.then")


@pytest.mark.parametrize("text", ["", "rules\n", "- layers\n"])
def test_a_manifest_that_is_no_mapping_is_refused_at_its_first_line(run_cli, rules_copy, text):
    (rules_copy / "rulebase.yaml").write_text(text, encoding="utf-8")
    assert_refused_at(run_cli, rules_copy, "rulebase.yaml:1", None)


@pytest.mark.parametrize("value", ["claims.yaml", "[claims.yaml, evidence.yaml]"])
def test_a_manifests_data_files_that_is_no_mapping_is_refused_at_its_line(run_cli, rules_copy, value):
    path = rules_copy / "rulebase.yaml"
    line = _line_starting(path, "data_files:")
    path.write_text(
        re.sub(r"data_files:\n(  .*\n)+", f"data_files: {value}\n", path.read_text(encoding="utf-8")), encoding="utf-8"
    )
    assert_refused_at(run_cli, rules_copy, f"rulebase.yaml:{line}", "data_files")


@pytest.mark.parametrize("value", ["[mmn-study-regimen]", "{id: mmn-study-regimen}"])
def test_a_cited_passage_that_is_no_text_is_refused_at_its_line(run_cli, rules_copy, value):
    path = rules_copy / "mmn.yaml"
    mutate(path, "      cite: mmn-study-regimen\n", f"      cite: {value}\n")
    line = _line_starting(path, f"      cite: {value}")
    assert_refused_at(run_cli, rules_copy, f"mmn.yaml:{line}", f"{_rule_at(path, line)}.source")


@pytest.mark.parametrize("value", ["[true]", "{yes: true}"])
def test_a_derived_value_that_is_no_single_value_is_refused_at_its_line(run_cli, rules_copy, value):
    path = rules_copy / "cidp.yaml"
    mutate(path, "      derive: {treated_as_cidp: true}\n", f"      derive: {{treated_as_cidp: {value}}}\n")
    line = _line_starting(path, "      derive: {treated_as_cidp:")
    assert_refused_at(run_cli, rules_copy, f"cidp.yaml:{line}", "cidp-is-cidp.then")


@pytest.mark.parametrize(
    "old, new",
    [
        ("        - paraprotein_class: {in: [igg, iga]}", "        - paraprotein_class: {in: [igg, [iga]]}"),
        ("        - paraprotein_class: {in: [igg, iga]}", "        - paraprotein_class: {not_in: [{igg: iga}]}"),
        ("        - stance: {in: [first-line, trial-justified]}", "        - stance: {in: [[first-line]]}"),
    ],
)
def test_a_condition_with_a_list_or_mapping_among_its_values_is_refused_at_its_line(run_cli, rules_copy, old, new):
    name = "paraprotein.yaml" if "paraprotein" in old else "cidp.yaml"
    path = rules_copy / name
    mutate(path, old + "\n", new + "\n")
    line = _line_starting(path, new)
    fact = new.split(":")[0].strip(" -")
    assert_refused_at(run_cli, rules_copy, f"{name}:{line}", f"{_rule_at(path, line)}.when.{fact}")


@pytest.mark.parametrize(
    "file, old, new, line_of, field",
    [
        ("claims.yaml", None, "3.5\n", None, "claims"),
        ("claims.yaml", "assumptions:\n", "assumptions: 7\nassumptions_were:\n", "assumptions: 7", "assumptions"),
        ("claims.yaml", "claims:\n", "claims: [C01]\nclaims_were:\n", "claims: [C01]", "claims"),
        ("evidence.yaml", None, "- ref36\n", None, "evidence"),
        ("evidence.yaml", "ref36: {", "ref36: a trial\nref36_was: {", "ref36: a trial", "evidence.ref36"),
        ("regimens.yaml", None, "true\n", None, "regimens"),
        ("passages.yaml", None, "[a passage]\n", None, "passages"),
    ],
)
def test_a_data_file_of_the_wrong_shape_is_refused_at_its_line(run_cli, rules_copy, file, old, new, line_of, field):
    path = rules_copy / file
    if old is None:
        path.write_text(new, encoding="utf-8")
    else:
        mutate(path, old, new)
    line = _line_starting(path, line_of) if line_of else 1
    assert_refused_at(run_cli, rules_copy, f"{file}:{line}", field)


def test_an_evidence_record_left_null_loads_and_shows(run_cli, rules_copy):
    """A record named but not written yet (null) is no record of the wrong shape: the audit
    shows it as unknown, as before records were checked."""
    with (rules_copy / "evidence.yaml").open("a", encoding="utf-8") as evidence:
        evidence.write("ref99: null\n")
    mutate(rules_copy / "gbs.yaml", "    evidence: [ref36", "    evidence: [ref99, ref36")
    shown = run_cli("audit", "show", "--rules", str(rules_copy), "gbs-severe")
    assert shown.exit_code == 0, shown.output
    assert "Evidence ref99: ?" in shown.output


@pytest.mark.parametrize(
    "start, new, row",
    [
        ('  repeat: "one course",', "  repeat: {every: month},", "gbs"),
        ('  repeat: "one course",', "  repeat: [one course],", "gbs"),
        ('  interval: "once a week', "  interval: [once a week],", "mmn-maintenance"),
        ('  note: "A total of at least 2 g/kg', "  note: [a total of at least 2 g/kg]}", "gbs"),
    ],
)
def test_a_regimens_text_written_as_a_list_or_mapping_is_refused_at_its_line(run_cli, rules_copy, start, new, row):
    """repeat, interval and note are texts a clinician reads: a list or mapping there was
    shown as Python writes it, and made `ivig audit check` crash."""
    path = rules_copy / "regimens.yaml"
    line = _line_starting(path, start)
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[line - 1] = new + "\n"
    path.write_text("".join(lines), encoding="utf-8")
    assert_refused_at(run_cli, rules_copy, f"regimens.yaml:{line}", f"regimens.{row}")


# -- any one value of the shipped rules changed: loaded, or errors at a file and line ------


SHIPPED = sorted(path.name for path in (ROOT / "rules").glob("*.yaml"))  # the manifest, rule and data files
# Words the rules use, so that a changed value is often nearly right, and a mapping written in
# a value's place often has the keys the loader looks for
WORDS = (
    "x",
    "",
    "   ",
    "gbs",
    "mmn",
    "first-line",
    "not-established",
    "classify",
    "general",
    "review",
    "assumption",
    "critical",
    "info",
    "patient",
    "every-infusion",
    "draft",
    "approved",
    "course",
    "infusion",
    "scope.yaml",
    "../x.yaml",
    "/etc/passwd",
    "stance",
    "diagnosis",
    "weight_kg",
    "C01",
    "A01",
)
KEYS = st.sampled_from(
    (
        "name",
        "stance",
        "summary",
        "code",
        "severity",
        "applies",
        "message",
        "per",
        "total_g_per_kg",
        "days",
        "status",
        "all",
        "any",
        "not",
        "diagnosis",
        "eq",
        "in",
        "ge",
        "quote",
        "cite",
    )
) | st.one_of(st.text(max_size=8), st.integers(), st.booleans(), st.none())  # a key YAML reads as no text
SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.sampled_from(WORDS) | st.text(max_size=30)
VALUES = (
    SCALARS
    | st.lists(SCALARS, max_size=4)
    | st.dictionaries(KEYS, SCALARS, max_size=4)
    | st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3))
    | st.integers(min_value=1, max_value=60).map(lambda depth: functools.reduce(lambda v, _: [v], range(depth), "x"))
)


@functools.cache
def _shipped(name):
    """A shipped file as the loader reads it, in plain values; and the path to each of its values
    (the file itself included), as keys and indexes."""
    data = plain(load_one((ROOT / "rules" / name).read_text(encoding="utf-8"), name))
    paths = []

    def walk(value, path):
        paths.append(path)
        items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
        for key, item in items:
            walk(item, (*path, key))

    walk(data, ())
    return data, paths


@functools.cache
def _places():
    """Where one value can be changed, by what it is part of: kind -> [(file name, path)], so
    that the manifest's few values are changed as often as a rule's or a warning's."""
    rule_files = set(_shipped("rulebase.yaml")[0]["rule_files"])
    every = [(name, path) for name in SHIPPED for path in _shipped(name)[1]]

    def where(wanted):
        return [(name, path) for name, path in every if wanted(name, path)]

    return {
        "manifest": where(lambda name, path: name == "rulebase.yaml"),
        "rule file": where(lambda name, path: name in rule_files and len(path) <= 1),
        "rule": where(lambda name, path: name in rule_files and len(path) == 3),
        "action": where(lambda name, path: "then" in path),
        "warning": where(lambda name, path: "warn" in path),
        "dose": where(lambda name, path: name == "regimens.yaml"),
        "data file": where(lambda name, path: name not in rule_files and name != "rulebase.yaml"),
        "anywhere": every,
    }


@st.composite
def one_value_changed(draw):
    """(file name, the file's data with one value anywhere in it replaced, where) of the shipped rules."""
    places = _places()
    name, path = draw(st.sampled_from(places[draw(st.sampled_from(sorted(places)))]))
    value = draw(VALUES)
    if not path:
        return name, value, path
    data = copy.deepcopy(_shipped(name)[0])
    functools.reduce(lambda inner, key: inner[key], path[:-1], data)[path[-1]] = value
    return name, data, path


@pytest.fixture(scope="module")
def rules_to_change(tmp_path_factory):
    """A copy of the shipped rules/ that each example changes one file of, and puts back."""
    target = tmp_path_factory.mktemp("changed") / "rules"
    shutil.copytree(ROOT / "rules", target)
    return target


def _written(data) -> str:
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


def test_the_shipped_rules_written_back_from_their_values_load_as_they_are(rules_to_change, rulebase):
    """What the property test below changes is the shipped rules as values, written back as
    YAML: unchanged, they load to the very rules shipped (so each example starts from them)."""
    for name in SHIPPED:
        (rules_to_change / name).write_text(_written(_shipped(name)[0]), encoding="utf-8")
    try:
        again = RuleBase.load(rules_to_change)
    finally:
        for name in SHIPPED:
            shutil.copyfile(ROOT / "rules" / name, rules_to_change / name)

    def read(rules):  # what a rule is, but the lines it was written at
        return [(r.id, r.then, [(t.name, t.op, t.operand) for t in conditions.tests(r.when)], r.source) for r in rules]

    assert read(again.rules) == read(rulebase.rules)


# A modest number, as it runs in the fast set (whose profile lowers it further); each example
# loads a whole rule base
@settings(max_examples=50, deadline=None)
@given(change=one_value_changed())
def test_any_one_value_changed_loads_or_is_an_error_at_a_file_and_line(rules_to_change, rulebase, change):
    """Whatever one value of the manifest, a rule file, a rule, a warning, a dose or a data file
    is replaced by (a text, a number, a list, a mapping, null, a deep structure), the rule base
    loads, or every error names a file of the directory and a line: never another exception."""
    name, data, _ = change
    (rules_to_change / name).write_text(_written(data), encoding="utf-8")
    try:
        RuleBase.load(rules_to_change, rulebase.schema)
    except RuleBaseInvalid as exc:
        for error in exc.errors:
            assert error.source.startswith(f"{rules_to_change}/") and error.line, str(error)
    finally:
        shutil.copyfile(ROOT / "rules" / name, rules_to_change / name)


def test_a_note_of_a_rule_that_reads_as_a_mapping_is_an_error_at_its_line(rules_copy, run_cli):
    """`- 2026-11-25, new (issue 10): a case can ...` is a mapping to YAML (the ': '), and the
    reviewer read a Python dict ("Changed: {'2026-11-25, new (issue 10)': ...}"): every item of
    changes, flags, claims, assumptions and evidence is text, or the rule does not load."""
    mutate(
        rules_copy / "mmn.yaml", "    claims: [C25]", "    changes:\n      - 2026-12-06, new: a note\n    claims: [C25]"
    )
    text = (rules_copy / "mmn.yaml").read_text(encoding="utf-8")
    line = text[: text.index("      - 2026-12-06, new: a note")].count("\n") + 1
    result = run_cli("audit", "check", "--rules", str(rules_copy))
    assert result.exit_code == 1
    assert f"mmn.yaml:{line}" in result.output and "changes: each item is text" in result.output


def test_no_text_of_a_shipped_rule_shows_as_a_python_mapping(run_cli):
    shown = run_cli("audit", "rules").output + run_cli("audit", "show", "thrombosis-risk-thrombocytosis").output
    assert "Changed: {" not in shown and "{'" not in shown


def test_a_glossary_entry_is_words(rules_copy):
    mutate(rules_copy / "glossary.yaml", "stance: >-", "stance: [a, list]\nstance_old: >-")
    with pytest.raises(RuleBaseInvalid) as caught:
        RuleBase.load(rules_copy)
    assert any(
        "glossary.yaml:" in str(e) and "a glossary entry is its meaning in words" in str(e) for e in caught.value.errors
    )
