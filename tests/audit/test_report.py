"""`ivig audit report`: one self-contained HTML file, checked as text and in a
real headless browser (Debian's chromium) that clicks every link."""

import json
import os
import re
import shutil
import stat
import subprocess
from collections import Counter
from html.parser import HTMLParser

import pytest
from helpers import HEADLESS_FLAGS, ROOT

from ivig_advisor.engine.core.analysis import live_rules

BROWSER = next(
    (shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome") if shutil.which(name)), None
)
FLAGS = list(HEADLESS_FLAGS)

# Loaded beside the report: clicks each in-page link in an iframe and writes
# what happened into the page, which --dump-dom then prints.
HARNESS = """<!DOCTYPE html><html><body>
<iframe id="f" src="report.html" style="width:1200px;height:800px"></iframe><pre id="out">pending</pre>
<script>
const frame = document.getElementById("f");
frame.onload = () => {
  const doc = frame.contentDocument, win = frame.contentWindow;
  const links = [...doc.querySelectorAll('a[href^="#"]')];
  const seen = new Set(), broken = [], missed = [];
  for (const a of links) {
    const id = decodeURIComponent(a.getAttribute("href").slice(1));
    if (seen.has(id)) continue;
    seen.add(id);
    const target = doc.getElementById(id);
    if (!target) { broken.push(id); continue; }
    a.dispatchEvent(new MouseEvent("click", {bubbles: true, cancelable: true, view: win}));
    const top = target.getBoundingClientRect().top;
    if (win.location.hash !== "#" + id || top < -2 || top > win.innerHeight) missed.push(id + " at " + top);
  }
  const external = [...doc.querySelectorAll("[src],[href]")]
    .map(e => e.getAttribute("src") || e.getAttribute("href")).filter(u => !u.startsWith("#"));
  document.getElementById("out").textContent = JSON.stringify({
    links: links.length, targets: seen.size, broken, missed, external,
    rules: doc.querySelectorAll("article.rule").length,
    graph_links: [...doc.querySelectorAll("svg a")].map(a => a.getAttribute("href")),
    title: doc.title, height: doc.documentElement.scrollHeight});
};
</script></body></html>"""


def _browse(report, name: str, harness: str, profile, *flags) -> dict:
    """Open `harness` (a page beside the report that loads it in an iframe) in headless chromium,
    and what its script wrote into <pre id="out">, as JSON."""
    page = report.parent / name
    page.write_text(harness, encoding="utf-8")
    run = subprocess.run(
        [
            BROWSER,
            *FLAGS,
            f"--user-data-dir={profile}",
            "--allow-file-access-from-files",
            *flags,
            "--virtual-time-budget=20000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    found = re.search(r'<pre id="out">(.*?)</pre>', run.stdout, re.S)
    assert found and found.group(1) != "pending", run.stderr[-2000:]
    return json.loads(found.group(1).replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">"))


# Loaded beside the report: the report in a 1280 px and a 900 px wide frame (each a window of
# that width), every disease's graph opened, and where each graph's boxes and labels fall.
LAYOUT = """<!DOCTYPE html><html><body style="margin:0">
<iframe class="w" src="report.html" style="width:1280px;height:900px;border:0"></iframe>
<iframe class="w" src="report.html" style="width:900px;height:900px;border:0"></iframe>
<pre id="out">pending</pre>
<script>
function outside(inner, outer) {
  return inner.left < outer.left - 0.5 || inner.right > outer.right + 0.5
    || inner.top < outer.top - 0.5 || inner.bottom > outer.bottom + 0.5;
}
function measure(frame) {
  const doc = frame.contentDocument, win = frame.contentWindow;
  doc.querySelectorAll("details").forEach(d => { d.open = true; });  // a reader opening each disease
  const graphs = [...doc.querySelectorAll("svg")].map(svg => {
    const box = svg.parentElement, boxes = [...svg.querySelectorAll("a")];
    const rect = a => a.querySelector("rect").getBoundingClientRect();
    return {
      name: svg.getAttribute("aria-label"),
      frame_right: box.getBoundingClientRect().right,
      rightmost: Math.max(...boxes.map(a => rect(a).right)),
      overflow: win.getComputedStyle(box).overflowX,
      spilled: boxes.filter(a => outside(a.querySelector("text").getBoundingClientRect(), rect(a)))
        .map(a => a.getAttribute("href")),
    };
  });
  return {width: doc.documentElement.clientWidth, scroll_width: doc.documentElement.scrollWidth, graphs};
}
let loaded = 0;
const frames = [...document.querySelectorAll("iframe.w")];
frames.forEach(f => f.onload = () => {
  if (++loaded === frames.length)
    document.getElementById("out").textContent = JSON.stringify(frames.map(measure));
});
</script></body></html>"""


class _Anchors(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids, self.hrefs, self.sources, self.tags = set(), [], [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if "href" in attrs:
            self.hrefs.append(attrs["href"])
        if "src" in attrs:
            self.sources.append(attrs["src"])


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    from click.testing import CliRunner

    from ivig_advisor.cli import main

    out = tmp_path_factory.mktemp("report") / "report.html"
    umask = os.umask(0o022)  # a known umask, so that the file's mode is known: 0o666 & ~0o022
    try:
        result = CliRunner().invoke(
            main,
            [
                "audit",
                "report",
                "--out",
                str(out),
                "--cases",
                str(ROOT / "tests" / "cases"),
                "--cases",
                str(ROOT / "examples"),
            ],
        )
    finally:
        os.umask(umask)
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"wrote {out}: ")
    return out


def test_the_report_is_one_self_contained_file(report, rulebase):
    text = report.read_text(encoding="utf-8")
    page = _Anchors()
    page.feed(text)
    assert "script" not in page.tags, "the report needs no script"
    assert page.sources == [] and all(h.startswith("#") for h in page.hrefs), "no file or network resource"
    assert {f"rule-{r.id}" for r in rulebase.rules} <= page.ids
    assert not [h for h in page.hrefs if h[1:] not in page.ids], "every in-page link has a target"
    for section in ("summary", "rules", "regimens", "assumptions", "check", "coverage", "graph"):
        assert section in page.ids
    # precedence and the regimen table, each a link to the rule it names
    assert 'pre-empted by <a href="#rule-gbs-second-course">gbs-second-course</a>' in text
    assert re.search(r'<td>0\.4 g/kg/day x 5 days = 2 g/kg</td><td>one course</td><td><a href="#rule-gbs-dose">', text)
    assert 'Static check: <span class="ok">passes</span>' in text
    assert re.search(r"[\d,]+ combinations checked exhaustively", text)
    assert 'id="assumption-A01"' in text and 'class="badge draft">draft<' in text
    # the mode a plain open() gives under the umask (0o022), not mkstemp's private 0o600
    assert stat.S_IMODE(report.stat().st_mode) == 0o644, oct(report.stat().st_mode)


def test_the_japanese_quotes_name_common_cjk_fonts_to_fall_back_on(report):
    """Without a CJK font the review's quotes are empty boxes: the page names the
    fonts that carry Japanese on Linux, macOS and Windows, before the generic one."""
    text = report.read_text(encoding="utf-8")
    chain = re.search(r"body\{font:[^;]*?,([^;{}]*)sans-serif;", text).group(1)
    for font in (
        "Noto Sans CJK JP",
        "Source Han Sans JP",
        "Hiragino Sans",
        "Yu Gothic",
        "Meiryo",
        "IPAexGothic",
        "Droid Sans Fallback",
    ):
        assert f'"{font}"' in chain, font
    assert "svg text{font-size:11px;font-family:inherit}" in text  # the graph's labels too
    assert "IVIGの使用に関連する有害反応には" in text


def test_the_report_shows_sign_offs_and_findings(run_cli, rules_copy, tmp_path):
    from helpers import mutate

    run_cli("audit", "--rules", str(rules_copy), "sign", "mmn-general", "--verdict", "approved", "--reviewer", "Dr R")
    mutate(rules_copy / "gbs.yaml", "stance: first-line", "stance: second-line")
    out = tmp_path / "r.html"
    assert run_cli("audit", "--rules", str(rules_copy), "report", "--out", str(out)).exit_code == 0
    text = out.read_text(encoding="utf-8")
    assert 'class="badge approved">approved<' in text and "approved by Dr R" in text
    assert '<td class="bad">gap</td>' in text and "no rule gives a regimen" in text


@pytest.mark.skipif(
    BROWSER is None,
    reason="no Chromium on this machine: `apt-get install chromium` "
    "(Debian's package; .ci/run installs it) to run the browser test",
)
def test_the_report_renders_in_a_real_browser_and_its_links_work(report, rulebase, tmp_path):
    profile = tmp_path / "profile"
    # the harness follows every in-page link, more than 200 of them: chromium throttles a page
    # that changes its URL that often (IPC flooding protection), and would stop following them
    seen = _browse(report, "harness.html", HARNESS, profile, "--disable-ipc-flooding-protection")
    assert seen["rules"] == len(rulebase.rules)
    # every rule is a box in some disease's graph, and a rule that can fire for every diagnosis in each
    in_graphs = Counter(href[len("#rule-") :] for href in seen["graph_links"])
    assert set(in_graphs) == {r.id for r in rulebase.rules}
    diagnoses = rulebase.schema.fields["diagnosis"].values
    everywhere = set.intersection(*({r.id for r in live_rules(rulebase, d)} for d in diagnoses))
    assert everywhere and all(in_graphs[rule_id] == len(diagnoses) for rule_id in everywhere), in_graphs
    assert seen["broken"] == [] and seen["external"] == []
    assert seen["targets"] > len(rulebase.rules) and seen["missed"] == []
    assert seen["title"].startswith("Rule audit: ") and seen["height"] > 5000

    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            BROWSER,
            *FLAGS,
            f"--user-data-dir={profile}",
            "--window-size=1200,900",
            f"--screenshot={shot}",
            report.as_uri(),
        ],
        capture_output=True,
        timeout=120,
    )
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and int.from_bytes(png[16:20], "big") == 1200
    assert len(png) > 20_000, "a page with text, not a blank one"


@pytest.mark.skipif(BROWSER is None, reason="no Chromium on this machine: `apt-get install chromium`")
def test_each_disease_graph_fits_a_1280_px_window_and_scrolls_in_its_own_frame_when_narrower(report, tmp_path):
    """Issue 29: at 1280 px the one graph of every rule had its plan and safety columns cut off.
    Each disease's graph fits a 1280 px window, each box's label inside its box; in a narrower
    window a graph scrolls inside its own frame, never the page."""
    wide, narrow = _browse(report, "layout.html", LAYOUT, tmp_path / "profile")
    assert wide["width"] <= 1280 and wide["scroll_width"] <= wide["width"], wide
    for graph in wide["graphs"]:
        assert graph["rightmost"] <= graph["frame_right"] <= wide["width"], graph
        assert graph["spilled"] == [], graph
    assert len(wide["graphs"]) > 1, "one graph per disease"
    for graph in narrow["graphs"]:
        assert graph["frame_right"] <= narrow["width"], graph
        assert graph["rightmost"] <= graph["frame_right"] or graph["overflow"] in ("auto", "scroll"), graph


def _graph_of(text: str, diagnosis: str):
    """The rule ids boxed in one disease's graph of the report, and its column headings."""
    found = re.search(rf'<details class="graph" id="graph-{diagnosis}">(.*?)</details>', text, re.S)
    assert found, f"no graph for {diagnosis}"
    graph = found.group(1)
    return set(re.findall(r'<a href="#rule-([^"]+)">', graph)), re.findall(r'<text class="layer"[^>]*>([^<]+)<', graph)


def test_a_disease_graph_holds_the_rules_that_can_fire_for_it_and_no_others(report, rulebase):
    """Issue 29: the reviewer of MMN sees MMN's rules (those that can fire for it, the shared
    safety rules among them), not CIDP's, and only the layers where one of them sits."""
    text = report.read_text(encoding="utf-8")
    boxed, columns = _graph_of(text, "mmn")
    mmn = {r.id for r in live_rules(rulebase, "mmn")}
    cidp_only = {r.id for r in live_rules(rulebase, "cidp")} - mmn
    assert boxed == mmn and cidp_only and not boxed & cidp_only
    assert columns == [
        layer.name for layer in rulebase.layers if any(r.layer == layer.name for r in live_rules(rulebase, "mmn"))
    ]
    assert "situation" not in columns  # no MMN rule sits there: the column is left out
    assert "<summary>Multifocal motor neuropathy" in text


def test_a_rule_no_diagnosis_reaches_has_a_graph_of_its_own(run_cli, rules_copy, tmp_path):
    """Every rule is a box in some graph: one that can fire for no diagnosis (here MMN's and
    CIDP's at once) is in a last graph, not lost."""
    from helpers import mutate

    mutate(rules_copy / "mmn.yaml", "- treatment_phase: maintenance", "- diagnosis: cidp")
    out = tmp_path / "r.html"
    assert run_cli("audit", "--rules", str(rules_copy), "report", "--out", str(out)).exit_code == 0
    boxed, _ = _graph_of(out.read_text(encoding="utf-8"), "no-diagnosis")
    assert boxed == {"mmn-maintenance"}


def test_the_fhir_mapping_section_writes_values_as_the_mapping_file_does(report):
    """What an entry sets reads as in `ivig fhir codes` (fhirtext.entry_sets): a list field's
    value is its item, never a Python tuple, and a refinement is said."""
    html = report.read_text(encoding="utf-8")
    assert 'id="fhir"' in html
    assert "planned_cotherapy = corticosteroids" in html and "(&#x27;corticosteroids&#x27;,)" not in html
    assert "refines diagnosis gbs" in html
