"""Every citation held to the translation it cites.

tests/source/review-ja.txt is a copy of shared/source/review-ja.txt (kept
here so that CI has it); `TR Ln` is its line n. A rule's `source.lines`
must exist and carry the words it quotes and the reference marks it cites;
a reference the translation omits is kept, and said so in a flag; a figure
shown to a clinician is on the lines the rule cites, or marked as the trial
report's. Rules are loaded through RuleBase.load(), so that the passages a
rule cites by id (passages.yaml) are checked as the rule shows them.
"""

import re

import pytest
from helpers import ROOT, results_of, written

from ivig_advisor.engine import RuleBase

REVIEW = ROOT / "tests" / "source" / "review-ja.txt"
LINES = REVIEW.read_text(encoding="utf-8").split("\n")  # LINES[n - 1] is TR Ln

RULEBASE = RuleBase.load()
RULES = RULEBASE.rules
PASSAGES = RULEBASE.extras["passages"]

# -- reading the review's reference marks ----------------------------------------

# A run of marks as the review writes them: 36, 28,34, 12、13, 6-11, 25~34.
_MARK_RUN = re.compile(r"\d+(?:\s*[-~〜,、]\s*\d+)*")
# What makes a number a quantity, not a mark: a unit or a decimal point after
# it (2g/kg, 5日, 3 日間, 12~18%, 11 倍, 19名, 2~3ヶ月, 17.23) ...
_QUANTITY_AFTER = re.compile(
    r"[A-Za-z%％./\d]|\s*(?:[日年週月カヶヵケ名人例倍万つ型回時分秒歳コ度件%\d]"
    r"|(?:g|mg|kg|mL|ml|h)\b)"
)
# ... or what stands before it: part of a name or a number (GM1, ICAM-1,
# 0.4, 2/3, N = 383, PMID: 1515...), an enumeration "(1)", a figure or table
# (図1, 表1), an ordinal (第3), a molecule (接着分子1, インターロイキン4).
_NOT_A_MARK_BEFORE = re.compile(r"(?:[A-Za-z.\-/(=:\d]\s*|[図表第]|分子|ロイキン)$")


def reference_marks(text: str) -> set:
    """The reference numbers marked in a line of the review (ranges expanded)."""
    marks = set()
    for run in _MARK_RUN.finditer(text):
        if _QUANTITY_AFTER.match(text, run.end()) or _NOT_A_MARK_BEFORE.search(text[: run.start()]):
            continue
        for part in re.split(r"\s*[,、]\s*", run.group()):
            ends = [int(n) for n in re.split(r"\s*[-~〜]\s*", part)]
            marks.update(range(ends[0], ends[-1] + 1))
    return marks


def line_text(n: int) -> str:
    return LINES[n - 1] if 1 <= n <= len(LINES) else ""


MARKS_ANYWHERE = {m for text in LINES for m in reference_marks(text)}


@pytest.mark.parametrize(
    "n, marks",
    [
        (3, set()),  # PMID: 15150209
        (15, set()),  # MEDLINE(1966-2003)
        (48, {2, 3, 6, 7, 8, 9, 10, 11}),
        (63, set()),  # (図1)
        (64, set(range(25, 35))),  # 25~34
        (92, {36, 37, 38}),  # not 0.4, 1, 5, 383, 4
        (94, {39, 40}),  # not 1.2, 3 日間, 6 日間, 1年後, 2回目
        (100, {41, 42}),  # not 6週間, 60mg, 2日間, 0.2-0.4g/kg
        (104, {47}),  # not 12~18%, 2 型, 11 倍
        (148, {66, 67, 69}),  # not 19名, 第3, 36人, 2~3ヶ月
        (151, {70, 71}),  # not 2g/kg, 16名
        (161, {81, 28, 34}),  # not (2), 5日以内
        (163, {82, 83}),
    ],
)
def test_reference_marks_are_read_as_the_review_writes_them(n, marks):
    assert reference_marks(line_text(n)) == marks


# -- a reference the translation omits -------------------------------------------------

# The one way a rule cites a reference the translation has lost (issue 26): it
# keeps the number in source.refs and says so in a flag worded like this.
_OMITTED = re.compile(r"the translation omits the marks? of refs? (\d+(?:(?:, | and )\d+)*)")


_REFS_NAMED = re.compile(r"\brefs? (\d+(?:(?:, | and |-)\d+)*)")


def numbers_in(listed: str) -> set:
    """The numbers of a list as a flag writes it: 66, 49, 50, 51, 45-46, 66 and 68."""
    out = set()
    for part in re.split(r", | and ", listed):
        ends = [int(n) for n in part.split("-")]
        out.update(range(ends[0], ends[-1] + 1))
    return out


def omitted_in_flags(rule) -> set:
    """The refs a rule's flags say the translation omits."""
    return {n for flag in rule.flags for found in _OMITTED.findall(flag) for n in numbers_in(found)}


CITING = [r for r in RULES if r.source.get("refs") and r.source.get("lines")]


@pytest.mark.parametrize("rule", CITING, ids=lambda r: r.id)
def test_each_cited_ref_stands_on_a_cited_line(rule):
    lines = rule.source["lines"]
    on_lines = {m for n in lines for m in reference_marks(line_text(n))}
    wrong = []
    for ref in rule.source["refs"]:
        if ref in on_lines:
            continue
        if ref in MARKS_ANYWHERE:
            where = [n for n, text in enumerate(LINES, 1) if ref in reference_marks(text)]
            wrong.append(f"ref {ref} is marked on TR L{where}, not on the cited lines {lines}")
        elif ref not in omitted_in_flags(rule):
            wrong.append(
                f"ref {ref} is not in the translation, and no flag says 'the translation omits the mark of ref {ref}'"
            )
    assert wrong == []


def test_every_rule_with_refs_cites_lines():
    assert [r.id for r in RULES if r.source.get("refs") and not r.source.get("lines")] == []


@pytest.mark.parametrize("rule", [r for r in RULES if omitted_in_flags(r)], ids=lambda r: r.id)
def test_a_flag_that_says_a_mark_is_omitted_is_true_and_the_ref_is_kept(rule):
    for ref in omitted_in_flags(rule):
        assert ref not in MARKS_ANYWHERE, f"ref {ref} is in the translation"
        assert ref in rule.source.get("refs", []), f"ref {ref}: the number is kept in source.refs"


@pytest.mark.parametrize("rule", [r for r in RULES if r.flags], ids=lambda r: r.id)
def test_a_ref_a_flag_names_that_the_translation_lacks_is_kept_and_flagged_as_omitted(rule):
    """One way for a lost reference (issue 26): never dropped from source.refs
    while a flag speaks of it, always flagged in the same words."""
    named = {n for flag in rule.flags for found in _REFS_NAMED.findall(flag) for n in numbers_in(found)}
    lost = named - MARKS_ANYWHERE
    assert sorted(lost - set(rule.source.get("refs") or [])) == [], "a lost ref is kept in source.refs"
    assert sorted(lost - omitted_in_flags(rule)) == [], "flagged as 'the translation omits the mark of ref N'"


@pytest.mark.parametrize("rule", [r for r in RULES if r.source.get("lines")], ids=lambda r: r.id)
def test_every_cited_line_exists_and_is_not_blank(rule):
    assert [n for n in rule.source["lines"] if not line_text(n).strip()] == []


# -- quotes ---------------------------------------------------------------------------


def _squeezed(text: str) -> str:
    return re.sub(r"\s+", "", text)


def quote_parts(quote: str):
    """The pieces of a quote that the review must hold in this order; a quote
    may be an excerpt, its cuts written … or ..."""
    return [p for p in (_squeezed(p) for p in re.split(r"…|\.\.\.", quote)) if p]


def stands_in(quote: str, text: str) -> bool:
    """Whether each piece of `quote` is in `text`, in order, whitespace aside."""
    text, at = _squeezed(text), 0
    for part in quote_parts(quote):
        found = text.find(part, at)
        if found < 0:
            return False
        at = found + len(part)
    return True


@pytest.mark.parametrize("rule", [r for r in RULES if r.source.get("quote")], ids=lambda r: r.id)
def test_a_quote_stands_on_the_lines_cited(rule):
    lines = rule.source.get("lines") or []
    assert lines, "a quote needs source.lines"
    assert stands_in(rule.source["quote"], "".join(line_text(n) for n in sorted(lines)))


@pytest.mark.parametrize("name", sorted(PASSAGES), ids=str)
def test_a_passage_is_in_the_translation(name):
    assert stands_in(PASSAGES[name]["quote"], "".join(LINES))


# The translation's hedges: may, possibly, seems, is thought, suggests.
_JA_HEDGE = re.compile(r"可能性|かもしれ|思われ|考えられ|示唆|場合があ|ことがあ|推定|ようだ|らしい")
_EN_HEDGE = re.compile(r"\b(?:may|might|possibly|perhaps|probably|seems?|appears?)\b", re.I)


def test_the_ibm_trial_dose_cites_the_trial_whose_regimen_it_quotes():
    """ibm-trial-dose gives the 2 g/kg monthly regimen of the IBM trials; the
    sentence that states it is the 36-patient prednisone trial's (ref 68, its
    mark lost), not ref 66's."""
    rule = RULEBASE.by_id["ibm-trial-dose"]
    assert "36人の患者をIVIG(2g/kg)" in rule.source["quote"]
    assert 68 in rule.source["refs"] and 68 in omitted_in_flags(rule)


@pytest.mark.parametrize("rule", [r for r in RULES if r.source.get("quote")], ids=lambda r: r.id)
def test_the_english_adds_no_hedge_the_japanese_lacks(rule):
    if not _JA_HEDGE.search(rule.source["quote"]):
        assert _EN_HEDGE.findall(rule.source["quote_en"]) == []


# -- what a clinician reads ----------------------------------------------------------------

TRIAL_REPORT = "[From the trial report, not the review:"
_MARKED = re.compile(r"\[From the trial report, not the review:[^\]]*\]")
_REF_MENTION = re.compile(r"\brefs? \d+(?:(?:, | and |-)\d+)*")
_NUMBER = re.compile(r"(?<![A-Za-z\d.])\d+(?:\.\d+)?")
_YEAR = re.compile(r"\b(?:19|20)\d\d\b")  # a publication's year names it, it is no figure


def clinician_texts(rule):
    """What a clinician reads of a rule: its summary, its warnings' messages,
    short summaries (cards) and actions, its dose's note and repeat (the
    regimen it names, read in)."""
    texts = []
    if "recommend" in rule.then:
        texts.append(rule.then["recommend"]["summary"])
    for warning in rule.warnings:
        texts += [warning["message"], warning.get("summary") or "", warning.get("action") or ""]
    dose = rule.then.get("dose") or {}
    texts += [dose.get("note") or "", dose.get("repeat") or ""]
    return [t for t in texts if t]


def unmarked_figures(rule) -> list:
    """Numbers a clinician reads that are neither on the lines the rule cites nor
    marked as the trial report's (reference numbers aside)."""
    review = {float(n) for k in rule.source.get("lines") or [] for n in _NUMBER.findall(line_text(k))}
    out = []
    for text in clinician_texts(rule):
        plain = _YEAR.sub("", _REF_MENTION.sub("", _MARKED.sub("", text)))
        out += [n for n in _NUMBER.findall(plain) if float(n) not in review]
    return out


@pytest.mark.parametrize("rule", [r for r in RULES if clinician_texts(r)], ids=lambda r: r.id)
def test_a_figure_a_clinician_reads_is_the_reviews_or_marked_as_the_trial_reports(rule):
    assert unmarked_figures(rule) == []


# Trial-report results without a figure, which only a reader can find (issue 26):
# ref 57's equivalence with plasma exchange (T03), ref 63's prednisone.
@pytest.mark.parametrize(
    "rule_id",
    ["gbs-ventilated-full-dose", "gbs-severe-first-line", "cidp-untreated", "dm-resistant", "mg-instead-of-pe"],
)
def test_trial_report_results_are_marked_where_a_clinician_reads_them(rule_id):
    assert any(TRIAL_REPORT in t for t in clinician_texts(RULEBASE.by_id[rule_id]))


@pytest.mark.parametrize(
    "rule", [r for r in RULES if any(TRIAL_REPORT in t for t in clinician_texts(r))], ids=lambda r: r.id
)
def test_a_trial_report_figure_has_its_evidence_record(rule):
    assert rule.evidence and set(rule.evidence) <= set(RULEBASE.extras["evidence"])


def test_the_marks_reach_the_clinician_through_the_cli(run_cli, tmp_path):
    case = written(tmp_path, "id: mg\ndiagnosis: myasthenia_gravis\nmg_exacerbation: true\n", "mg.yaml")
    [result] = results_of(run_cli, case)
    assert result["ivig"]["rule"] == "mg-instead-of-pe"
    assert TRIAL_REPORT in result["ivig"]["summary"]


# -- the platelet term, and the planned course the review finds not effective ---------------


def test_no_text_calls_thrombocytosis_the_likelier_original():
    """claims.md section 3: the translation's thrombocytopenia is the encoded term
    (confidence M); thrombocytosis is a plausible alternative kept as an assumption."""
    texts = [r.title for r in RULES] + [r.rationale for r in RULES] + [f for r in RULES for f in r.flags]
    texts += [t for r in RULES for t in clinician_texts(r)]
    texts += [str(v) for v in RULEBASE.extras["claims"]["assumptions"].values()]
    assert [t for t in texts if "thrombocytosis" in t and re.search(r"likel(?:ier|y)|more probable", t)] == []


def test_a_planned_course_against_the_review_quotes_the_review_for_each_disease():
    """ivig-planned-not-effective fires wherever the stance is not-effective: its
    quote holds, for each rule that concludes not-effective, a sentence of the
    review that rule cites."""
    quote = RULEBASE.by_id["ivig-planned-not-effective"].source["quote"]
    deciding = [r for r in RULES if (r.then.get("recommend") or {}).get("stance") == "not-effective"]
    assert deciding
    missing = [
        r.id
        for r in deciding
        if not any(stands_in(part, line_text(n)) for part in quote_parts(quote) for n in r.source["lines"])
    ]
    assert missing == []
