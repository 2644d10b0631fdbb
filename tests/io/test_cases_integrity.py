"""Issue 11, reading input: no value changed without a word, no case or file lost.

Every test goes through the real `ivig evaluate` (click's CliRunner, or a
subprocess where memory is measured); the fuzz tests also drive the reader
directly, to try many more inputs than the CLI could in the time.
"""

import json
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest
from helpers import jsonl, mutate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

GBS = "diagnosis: gbs\nwalks_unaided: false\n"


def results_of(run_cli, *paths, input=None):
    out = run_cli("evaluate", "--format", "jsonl", "--quiet", *map(str, paths), input=input)
    assert out.exit_code in (0, 1), out.output
    return jsonl(out.stdout)


def one(run_cli, tmp_path, text, name="case.yaml"):
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    results = results_of(run_cli, path)
    assert len(results) == 1, results
    return results[0]


def bomb(levels=9):
    """A 'billion laughs' in one flow value: 9**levels strings from ~300 bytes."""
    parts = ["&a0 [" + ", ".join(["lol"] * 9) + "]"]
    for n in range(1, levels):
        parts.append(f"&a{n} [" + ", ".join([f"*a{n - 1}"] * 9) + "]")
    return "[" + ", ".join(parts) + "]"


# -- 1. numbers as a person reads them ---------------------------------------


def test_leading_zero_is_decimal_not_octal(run_cli, tmp_path):
    result = one(run_cli, tmp_path, GBS + "weight_kg: 070\n")
    assert result["status"] == "ok" and result["dose"]["total_g"] == 140.0  # 70 kg, not 56


@pytest.mark.parametrize("written", ["0x41", "0o101", "0b1000001", "1:05", "6_5", ".inf", "2024-02-01"])
def test_other_number_forms_are_refused_with_field_line_and_text(run_cli, tmp_path, written):
    result = one(run_cli, tmp_path, f"{GBS}age: {written}\n")
    error = result["error"]
    assert result["status"] == "error"
    assert (error["field"], error["line"]) == ("age", 3)
    assert f"'{written}' is not a number as written" in error["message"]
    assert "decimal" in error["message"]


@pytest.mark.parametrize(
    "written, kept",
    [
        ("00123", "00123"),
        ("12:30", "12:30"),
        ("2024-02-30", "2024-02-30"),
        ("1.50", "1.50"),
        ("0x41", "0x41"),
        ("true", "true"),
    ],
)
def test_ids_keep_the_text_as_written(run_cli, tmp_path, written, kept):
    result = one(run_cli, tmp_path, f"id: {written}\ndiagnosis: als\n")
    assert (result["status"], result["id"]) == ("ok", kept)


def test_an_id_with_an_error_keeps_its_text_too(run_cli, tmp_path):
    result = one(run_cli, tmp_path, "id: 00123\ndiagnosis: als\nage: old\n")
    assert result["status"] == "error" and result["id"] == "00123"


@pytest.mark.parametrize(
    "written, value",
    [("no", False), ("No", False), ("NO", False), ("yes", True), ("Yes", True), ("false", False), ("True", True)],
)
def test_yes_and_no_still_mean_true_and_false(run_cli, tmp_path, written, value):
    as_bool = one(run_cli, tmp_path, f"diagnosis: gbs\nweight_kg: 70\nwalks_unaided: {str(value).lower()}\n", "b.yaml")
    written_out = one(run_cli, tmp_path, f"diagnosis: gbs\nweight_kg: 70\nwalks_unaided: {written}\n")
    assert written_out["status"] == "ok"
    assert (written_out["ivig"], written_out["dose"]) == (as_bool["ivig"], as_bool["dose"])


def test_on_and_off_are_not_guessed(run_cli, tmp_path):
    error = one(run_cli, tmp_path, "diagnosis: gbs\nwalks_unaided: off\n")["error"]
    assert error["field"] == "walks_unaided" and "'off'" in error["message"]


def test_diagnosis_no_says_what_was_read_and_why(run_cli, tmp_path):
    error = one(run_cli, tmp_path, "diagnosis: no\n")["error"]
    assert error["field"] == "diagnosis" and error["line"] == 1
    assert "'no'" in error["message"] and "not an allowed value" in error["message"]
    assert "als" not in error["message"].split("(")[0] and "did you mean" not in error["message"]


def test_json_false_as_diagnosis_suggests_nothing(run_cli, tmp_path):
    error = one(run_cli, tmp_path, '{"diagnosis": false}', "case.json")["error"]
    assert "'false'" in error["message"] and "did you mean" not in error["message"]


def test_a_five_thousand_digit_integer_is_an_error_not_a_crash(run_cli, tmp_path):
    huge = "1" * 5000
    for name, text in [
        ("a.yaml", f"diagnosis: als\nage: {huge}\n"),
        ("b.json", f'{{"diagnosis": "als", "age": {huge}}}'),
        ("c.jsonl", f'{{"diagnosis": "als", "age": {huge}}}\n{{"diagnosis": "mmn"}}\n'),
    ]:
        (tmp_path / name).write_text(text)
    results = results_of(run_cli, tmp_path / "a.yaml", tmp_path / "b.json", tmp_path / "c.jsonl")
    assert [r["status"] for r in results] == ["error", "error", "error", "ok"]
    assert all(r["error"]["field"] == "age" or "digits" in r["error"]["message"] for r in results[:3])
    assert all(len(r["error"]["message"]) < 300 for r in results[:3])


def test_nan_and_infinity_are_not_json_numbers(run_cli, tmp_path):
    result = one(run_cli, tmp_path, '{"diagnosis": "gbs", "weight_kg": NaN}\n', "c.jsonl")
    assert result["status"] == "error" and "NaN" in result["error"]["message"]


# -- 1b. aliases, labels and units: what the interview takes, a file takes -----

WRITTEN = {
    "diagnosis": "MG",
    "mg_crisis": "no",
    "weight_kg": "70 kg",
    "refractory": "Y",
    "planned_cotherapy": "steroids; PE",
}
CANONICAL = {
    "diagnosis": "myasthenia_gravis",
    "mg_crisis": False,
    "weight_kg": 70,
    "refractory": True,
    "planned_cotherapy": ["corticosteroids", "plasma_exchange"],
}
LISTED = [
    {"field": "diagnosis", "written": "MG", "read": "myasthenia_gravis"},
    {"field": "weight_kg", "written": "70 kg", "read": 70},
    {"field": "refractory", "written": "Y", "read": True},
    {"field": "planned_cotherapy", "written": "steroids; PE", "read": ["corticosteroids", "plasma_exchange"]},
]


def _yaml_of(case):
    return "".join(f"{k}: {json.dumps(v)}\n" for k, v in case.items())


@pytest.mark.parametrize(
    "name, text",
    [
        (
            "case.yaml",
            "diagnosis: MG\nmg_crisis: no\nweight_kg: 70 kg\nrefractory: Y\nplanned_cotherapy: steroids; PE\n",
        ),
        ("case.json", json.dumps(WRITTEN, indent=1)),
        ("case.jsonl", json.dumps(WRITTEN) + "\n"),
    ],
)
def test_a_file_reads_aliases_and_units_and_says_so(run_cli, tmp_path, name, text):
    written = one(run_cli, tmp_path, text, name)
    canonical = one(run_cli, tmp_path, _yaml_of(CANONICAL), "canonical.yaml")
    assert written["status"] == "ok" and written["normalised"] == LISTED  # 'no' is a value of a boolean: not listed
    assert "normalised" not in canonical  # a case written in the values: the result as it always was
    same = {k: v for k, v in written.items() if k not in ("id", "source", "normalised")}
    assert same == {k: v for k, v in canonical.items() if k not in ("id", "source")}


def test_a_list_of_aliases_in_yaml_is_read_item_by_item(run_cli, tmp_path):
    result = one(run_cli, tmp_path, "diagnosis: gbs\nplanned_cotherapy: [plex, Corticosteroids]\n")
    assert result["normalised"] == [
        {
            "field": "planned_cotherapy",
            "written": ["plex", "Corticosteroids"],
            "read": ["corticosteroids", "plasma_exchange"],
        }
    ]


def test_the_cache_never_lends_one_case_what_another_was_read_from(run_cli, tmp_path):
    """Two cases in one clinical situation: each result lists its own case's spellings."""
    path = tmp_path / "two.jsonl"
    path.write_text('{"diagnosis": "MG"}\n{"diagnosis": "myasthenia_gravis"}\n{"diagnosis": "myasthenia"}\n')
    results = results_of(run_cli, path)
    assert [r.get("normalised") for r in results] == [
        [{"field": "diagnosis", "written": "MG", "read": "myasthenia_gravis"}],
        None,
        [{"field": "diagnosis", "written": "myasthenia", "read": "myasthenia_gravis"}],
    ]


@pytest.mark.parametrize(
    "text, field, line, words",
    [
        ("diagnosis: gsb\n", "diagnosis", 1, "did you mean 'gbs'?"),
        ("diagnosis: no\n", "diagnosis", 1, "'no' is not an allowed value"),
        ("diagnosis: gbs\nage: 4\nweight_kg: 70 lb\n", "weight_kg", 3, "'weight_kg' is in kg, not 'lb'"),
        ("diagnosis: gbs\nwalks_unaided: 1\n", "walks_unaided", 2, "a boolean is never a number"),
        ("diagnosis: gbs\nage: true\n", "age", 2, "must be a number"),
        (
            "diagnosis: gbs\nplanned_cotherapy: steroids; ivig\n",
            "planned_cotherapy",
            2,
            "'ivig' is not an allowed value",
        ),
    ],
)
def test_a_value_that_is_no_alias_is_still_an_error_with_field_and_line(run_cli, tmp_path, text, field, line, words):
    result = one(run_cli, tmp_path, text)
    assert result["status"] == "error"
    assert (result["error"]["field"], result["error"]["line"]) == (field, line) and words in result["error"]["message"]


# -- 2. duplicate keys --------------------------------------------------------


def test_duplicate_json_keys_are_refused_naming_both_lines(run_cli, tmp_path):
    text = '{\n  "diagnosis": "gbs",\n  "walks_unaided": true,\n  "walks_unaided": false\n}\n'
    error = one(run_cli, tmp_path, text, "case.json")["error"]
    assert error["field"] == "walks_unaided" and error["line"] == 4
    assert "duplicate" in error["message"] and "line 3" in error["message"]


def test_duplicate_jsonl_keys_are_refused(run_cli, tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"diagnosis": "als"}\n{"diagnosis": "gbs", "walks_unaided": true, "walks_unaided": false}\n')
    results = results_of(run_cli, path)
    assert [r["status"] for r in results] == ["ok", "error"]
    assert results[1]["error"]["line"] == 2 and "duplicate" in results[1]["error"]["message"]


def test_duplicate_yaml_keys_name_both_lines(run_cli, tmp_path):
    error = one(run_cli, tmp_path, "diagnosis: gbs\nwalks_unaided: true\nage: 4\nwalks_unaided: false\n")["error"]
    assert error["line"] == 4 and "line 2" in error["message"] and "duplicate" in error["message"]


# -- 3. undecodable bytes -----------------------------------------------------


def test_one_bad_byte_in_jsonl_costs_one_case(run_cli, tmp_path):
    lines = [b'{"diagnosis": "als"}'] * 100
    lines[49] = b'{"diagnosis": "als\xff"}'
    path = tmp_path / "big.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    results = results_of(run_cli, path)
    assert len(results) == 100
    assert [i for i, r in enumerate(results) if r["status"] != "ok"] == [49]
    assert results[49]["error"]["line"] == 50 and "UTF-8" in results[49]["error"]["message"]


@pytest.mark.parametrize("name", ["c.yaml", "c.json"])
def test_a_bad_byte_in_yaml_or_json_names_its_line(run_cli, tmp_path, name):
    text = (
        b"diagnosis: gbs\nage: 4\nid: caf\xe9\n"
        if name.endswith("yaml")
        else b'{\n "diagnosis": "gbs",\n "id": "caf\xe9"\n}\n'
    )
    error = one(run_cli, tmp_path, text, name)["error"]
    assert error["line"] == 3 and "UTF-8" in error["message"]


# -- 4. whatever one document raises is that document's error -----------------


def deep_yaml(n):
    return "diagnosis: als\nplanned_cotherapy:\n" + "".join("  " * (i + 1) + "-\n" for i in range(n))


@pytest.mark.parametrize(
    "name, text",
    [
        ("deep.yaml", deep_yaml(300)),
        ("flow.yaml", "diagnosis: als\nplanned_cotherapy: " + "[" * 900 + "]" * 900 + "\n"),
        ("deep.jsonl", '{"diagnosis": "als", "x": ' + "[" * 100_000 + "]" * 100_000 + "}\n"),
        ("deep.json", '{"diagnosis": "als", "x": ' + "[" * 100_000 + "]" * 100_000 + "}\n"),
        ("date.yaml", "id: !!timestamp 2024-02-30\ndiagnosis: als\n"),
        ("set.yaml", "diagnosis: !!set {a, b}\n"),
        ("binary.yaml", "id: !!binary aGVsbG8=\ndiagnosis: als\n"),
        ("python.yaml", "diagnosis: !!python/name:os.system\n"),
        ("recursive.yaml", "diagnosis: als\nplanned_cotherapy: &a [*a]\n"),
        ("long.yaml", "diagnosis: als\nid: " + "x" * 2_000_000 + "\n"),
    ],
)
def test_a_pathological_document_is_one_error_and_its_neighbours_run(run_cli, tmp_path, name, text):
    before, after = tmp_path / "a.yaml", tmp_path / "z.yaml"
    before.write_text("diagnosis: mmn\n")
    after.write_text("diagnosis: als\n")
    (tmp_path / name).write_text(text)
    results = results_of(run_cli, before, tmp_path / name, after)
    assert [r["status"] for r in results] == ["ok", "error", "ok"]
    assert results[1]["error"]["source"] == str(tmp_path / name)
    assert len(results[1]["error"]["message"]) < 500


def test_a_bad_yaml_document_keeps_the_documents_after_it(run_cli, tmp_path):
    path = tmp_path / "multi.yaml"
    path.write_text(
        "diagnosis: als\n---\nid: !!timestamp 2024-02-30\ndiagnosis: als\n---\n"
        "diagnosis: mmn\nage: 3\nage: 4\n---\ndiagnosis: mmn\n"
    )
    results = results_of(run_cli, path)
    assert [r["status"] for r in results] == ["ok", "error", "error", "ok"]
    assert [r["error"]["line"] for r in results[1:3]] == [3, 8]


# -- 5. alias bombs -----------------------------------------------------------


def bounded_ivig(*args, seconds=60, memory=2 << 30):
    """`ivig ARGS` in a process held to `memory` bytes and `seconds`: should the
    defence ever regress, the test fails instead of taking the machine's memory."""
    import resource

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    return subprocess.run(
        [sys.executable, "-m", "ivig_advisor.cli", *map(str, args)],
        preexec_fn=limit,
        capture_output=True,
        text=True,
        timeout=seconds,
    )


def test_an_alias_bomb_under_a_known_field_is_refused_quickly(tmp_path):
    text = f"diagnosis: als\nplanned_cotherapy: {bomb()}\n"
    assert len(text) < 600
    (tmp_path / "case.yaml").write_text(text)
    start = time.monotonic()
    out = bounded_ivig("evaluate", "--format", "jsonl", "-q", tmp_path / "case.yaml")
    assert time.monotonic() - start < 20
    error = jsonl(out.stdout)[0]["error"]
    assert out.returncode == 1 and "alias" in error["message"] and error["line"] == 2


def test_an_alias_bomb_in_a_rule_file_is_refused(rules_copy, tmp_path):
    mutate(
        rules_copy / "mmn.yaml",
        "title: Maintenance IVIG is effective in MMN, though the disease keeps progressing slowly",
        f"title: {bomb()}",
    )
    case = tmp_path / "c.yaml"
    case.write_text("diagnosis: mmn\ntreatment_phase: maintenance\n")
    out = bounded_ivig("evaluate", "--rules", rules_copy, case)
    assert out.returncode == 2 and "alias" in out.stderr and "mmn.yaml" in out.stderr


def test_a_date_in_a_rule_file_is_text_not_a_crash(run_cli, rules_copy, tmp_path):
    mutate(
        rules_copy / "mmn.yaml",
        "title: Maintenance IVIG is effective in MMN, though the disease keeps progressing slowly",
        "title: 2024-02-30",
    )
    case = tmp_path / "c.yaml"
    case.write_text("diagnosis: mmn\ntreatment_phase: maintenance\n")
    assert run_cli("evaluate", "--rules", str(rules_copy), str(case)).exit_code == 0


def test_a_tag_in_a_rule_file_is_a_load_error(run_cli, rules_copy, tmp_path):
    mutate(
        rules_copy / "mmn.yaml",
        "title: Maintenance IVIG is effective in MMN, though the disease keeps progressing slowly",
        "title: !!timestamp 2024-02-30",
    )
    case = tmp_path / "c.yaml"
    case.write_text("diagnosis: mmn\n")
    out = run_cli("evaluate", "--rules", str(rules_copy), str(case))
    assert out.exit_code == 2 and "mmn.yaml" in out.stderr and "not allowed" in out.stderr


# -- 6. memory stays flat ------------------------------------------------------


def peak_rss_mib(args, stdin_path=None):
    """Peak resident memory of `ivig evaluate ARGS` run in a fresh process, in MiB."""
    probe = textwrap.dedent("""
        import resource, subprocess, sys
        stdin = open(sys.argv[1], 'rb') if sys.argv[1] else subprocess.DEVNULL
        code = subprocess.call([sys.executable, '-m', 'ivig_advisor.cli'] + sys.argv[2:], stdin=stdin,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        print(code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024)
    """)
    out = subprocess.run(
        [sys.executable, "-c", probe, stdin_path or ""] + ["evaluate", "-q", "-j", "1", "--format", "jsonl"] + args,
        capture_output=True,
        text=True,
        check=True,
    )
    code, rss = map(int, out.stdout.split())
    assert code == 1  # every case here is an error: fast to evaluate, still read in full
    return rss


def error_cases(n):
    """Large cases that are read in full but fail validation at once: cheap to evaluate."""
    return [{"id": f"case-{i}-" + "x" * 9000, "diagnosis": "nope"} for i in range(n)]


def grown_mib(tmp_path, write, suffix, stdin=False):
    """How much more peak memory 10 times the input takes (18 MB against 1.8 MB)."""
    small, big = tmp_path / f"small{suffix}", tmp_path / f"big{suffix}"
    write(small, 200)
    write(big, 2_000)
    assert big.stat().st_size > 18_000_000
    if stdin:
        return peak_rss_mib(["-"], str(big)) - peak_rss_mib(["-"], str(small))
    return peak_rss_mib([str(big)]) - peak_rss_mib([str(small)])


def test_a_json_array_streams_in_flat_memory(tmp_path):
    grown = grown_mib(tmp_path, lambda path, n: path.write_text(json.dumps(error_cases(n), indent=1)), ".json")
    assert grown < 12, f"peak memory grew {grown} MiB for 10x the input"


def test_yaml_on_stdin_streams_in_flat_memory(tmp_path):
    def write(path, n):
        path.write_text("".join(f"---\nid: {case['id']}\ndiagnosis: nope\n" for case in error_cases(n)))

    grown = grown_mib(tmp_path, write, ".yaml", stdin=True)
    assert grown < 12, f"peak memory grew {grown} MiB for 10x the input"


def test_a_json_array_keeps_each_cases_line(run_cli, tmp_path):
    path = tmp_path / "cases.json"
    path.write_text(
        '[\n  {"diagnosis": "als"},\n  {\n    "diagnosis": "mmn",\n    "wieght_kg": 70\n  },\n'
        '  {"diagnosis": "cidp"}\n]\n'
    )
    results = results_of(run_cli, path)
    assert [r["id"] for r in results] == ["cases.json:1", "cases.json:2", "cases.json:3"]
    assert [r["status"] for r in results] == ["ok", "error", "ok"]
    assert (results[1]["error"]["field"], results[1]["error"]["line"]) == ("wieght_kg", 5)


def test_json_cases_mapping_and_a_broken_element(run_cli, tmp_path):
    path = tmp_path / "cases.json"
    path.write_text('{"cases": [{"diagnosis": "als"}, {"diagnosis": }, {"diagnosis": "mmn"}]}')
    assert [r["status"] for r in results_of(run_cli, path)] == ["ok", "error", "ok"]


@pytest.mark.parametrize(
    "text, stances",
    [
        ('[\n  {"diagnosis": "als"},\n  {"diagnosis": "mmn"}\n]\n', ["not-effective", "first-line"]),
        ("[{diagnosis: als}, {diagnosis: mmn}]\n", ["not-effective", "first-line"]),  # YAML flow, not JSON
        ('{"diagnosis": "als"}\n{"diagnosis": "mmn"}\n', ["not-effective", "first-line"]),
        ("{diagnosis: als}\n", ["not-effective"]),
        ("\n\ndiagnosis: als\n---\ndiagnosis: mmn\n", ["not-effective", "first-line"]),
    ],
)
def test_stdin_is_read_in_each_format(run_cli, text, stances):
    assert [r["ivig"]["stance"] for r in results_of(run_cli, "-", input=text)] == stances


# -- 7. a file without a case --------------------------------------------------


@pytest.mark.parametrize(
    "name, text",
    [
        ("empty.yaml", ""),
        ("comments.yaml", "# nothing yet\n\n# still\n"),
        ("empty.json", ""),
        ("blank.json", "  \n"),
        ("list.json", "[]"),
        ("empty.jsonl", "\n\n"),
        ("none.yaml", "cases: []\n"),
    ],
)
def test_a_file_with_no_case_is_one_error(run_cli, tmp_path, name, text):
    result = one(run_cli, tmp_path, text, name)
    assert result["status"] == "error" and "no case" in result["error"]["message"]


def test_empty_stdin_is_one_error(run_cli):
    out = run_cli("evaluate", "--format", "jsonl", "-", input="")
    results = jsonl(out.stdout)
    assert out.exit_code == 1 and len(results) == 1 and "no case" in results[0]["error"]["message"]


# -- 8. encodings ------------------------------------------------------------


@pytest.mark.parametrize(
    "name, text",
    [
        ("c.yaml", "diagnosis: als\n"),
        ("c.json", '{"diagnosis": "als"}'),
        ("c.jsonl", '{"diagnosis": "als"}\n{"diagnosis": "mmn"}\n'),
    ],
)
def test_a_utf8_bom_is_accepted(run_cli, tmp_path, name, text):
    path = tmp_path / name
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    assert {r["status"] for r in results_of(run_cli, path)} == {"ok"}


@pytest.mark.parametrize(
    "encoding, named", [("utf-16", "UTF-16"), ("utf-16-le", "UTF-16"), ("utf-32", "UTF-32"), ("utf-16-be", "UTF-16")]
)
@pytest.mark.parametrize(
    "name, text",
    [
        ("c.yaml", "diagnosis: als\n"),
        ("c.json", '{"diagnosis": "als"}'),
        ("c.jsonl", '{"diagnosis": "als"}\n{"diagnosis": "mmn"}\n'),
    ],
)
def test_utf16_and_utf32_are_named(run_cli, tmp_path, name, text, encoding, named):
    error = one(run_cli, tmp_path, text.encode(encoding), name)["error"]
    assert named in error["message"] and "UTF-8" in error["message"] and "JSON" not in error["message"]


def test_a_bom_on_stdin_is_accepted(run_cli):
    for text in ('{"diagnosis": "als"}\n', "diagnosis: als\n"):
        results = results_of(run_cli, "-", input=b"\xef\xbb\xbf" + text.encode())
        assert [r["status"] for r in results] == ["ok"]


# -- 9. default ids are unique in a run --------------------------------------


def test_default_ids_are_paths_below_the_directory_given(run_cli, tmp_path):
    for sub in ("a", "b"):
        (tmp_path / "cases" / sub).mkdir(parents=True)
        (tmp_path / "cases" / sub / "p.yaml").write_text("diagnosis: als\n")
    (tmp_path / "cases" / "b" / "two.yaml").write_text("diagnosis: als\n---\ndiagnosis: mmn\n")
    ids = [r["id"] for r in results_of(run_cli, tmp_path / "cases")]
    assert ids == ["a/p.yaml", "b/p.yaml", "b/two.yaml:1", "b/two.yaml:2"]


def test_a_file_argument_keeps_its_name_and_a_clash_its_path(run_cli, tmp_path):
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "p.yaml").write_text("diagnosis: als\n")
    ids = [r["id"] for r in results_of(run_cli, tmp_path / "a" / "p.yaml", tmp_path / "b" / "p.yaml")]
    assert ids[0] == "p.yaml" and ids[1] == str(tmp_path / "b" / "p.yaml")


def test_an_empty_directory_is_one_error(run_cli, tmp_path):
    (tmp_path / "none").mkdir()
    result = results_of(run_cli, tmp_path / "none")
    assert len(result) == 1 and "no case file" in result[0]["error"]["message"]


# -- 10. fuzz: random bytes, YAML and JSON ------------------------------------

YAMLISH = st.text(
    alphabet=st.sampled_from(list("ab:- \n\t[]{}&*!|>'\"#%@`,?~0x1_.e+9") + ["\ufeff", "\xe9", "\x00"]), max_size=80
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
GARBAGE = st.one_of(
    st.binary(max_size=120),
    YAMLISH.map(str.encode),
    JSON_VALUES.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(st.sampled_from(["diagnosis", "age", "id", "walks_unaided", "x"]), JSON_VALUES, max_size=3).map(
        lambda v: json.dumps(v).encode()
    ),
)
SUFFIXES = st.sampled_from([".yaml", ".json", ".jsonl", ".csv"])


def _evaluate_dir(files, advisor):
    """Read and evaluate like `ivig evaluate DIR` does, in this process."""
    from ivig_advisor.engine.batch.pipeline import evaluate_files

    with tempfile.TemporaryDirectory() as tmp:
        for name, data in files.items():
            Path(tmp, name).write_bytes(data)
        return [r.to_dict() for r in evaluate_files([tmp], advisor)]


def _check_neighbours(results):
    assert results[0]["id"] == "a.yaml" and results[0]["status"] == "ok"
    assert results[-1]["id"] == "z.yaml" and results[-1]["status"] == "ok"
    middle = results[1:-1]
    assert middle and all(r["status"] in ("ok", "error") for r in middle)
    for r in middle:
        assert r["status"] == "ok" or (r["error"]["source"] and r["error"]["message"])


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(garbage=GARBAGE, suffix=SUFFIXES)
def test_fuzz_reader_never_loses_a_neighbour(advisor, garbage, suffix):
    files = {"a.yaml": b"diagnosis: mmn\n", "m" + suffix: garbage, "z.yaml": b"diagnosis: als\n"}
    _check_neighbours(_evaluate_dir(files, advisor))


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(garbage=GARBAGE)
def test_fuzz_jsonl_garbage_line_is_one_result(advisor, garbage):
    line = garbage.replace(b"\n", b" ").replace(b"\r", b" ")
    text = b'{"diagnosis": "mmn"}\n' + line + b'\n{"diagnosis": "als"}\n'
    results = _evaluate_dir({"m.jsonl": text}, advisor)
    expected = 3 if line.strip(b" \t") else 2  # a blank line is no case
    assert len(results) == expected
    assert results[0]["status"] == results[-1]["status"] == "ok"


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(garbage=GARBAGE, suffix=SUFFIXES)
def test_fuzz_through_the_cli(run_cli, garbage, suffix):
    with tempfile.TemporaryDirectory() as tmp:
        for name, data in {"a.yaml": b"diagnosis: mmn\n", "m" + suffix: garbage, "z.yaml": b"diagnosis: als\n"}.items():
            Path(tmp, name).write_bytes(data)
        out = run_cli("evaluate", "--format", "jsonl", "-q", tmp)
        assert out.exit_code in (0, 1)
        _check_neighbours(jsonl(out.stdout))
        stdin = run_cli("evaluate", "--format", "jsonl", "-q", "-", input=garbage)
        assert stdin.exit_code in (0, 1) and len(jsonl(stdin.stdout)) >= 1
