"""`ivig audit report`: one self-contained HTML file, checked as text and in a
real headless browser (Debian's chromium) that clicks every link."""

import json
import os
import re
import shutil
import stat
import subprocess
from html.parser import HTMLParser

import pytest
from helpers import ROOT

BROWSER = next(
    (shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome") if shutil.which(name)), None
)
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

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
    rules: doc.querySelectorAll("article.rule").length, graph_links: doc.querySelectorAll("svg a").length,
    title: doc.title, height: doc.documentElement.scrollHeight});
};
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
    harness = report.parent / "harness.html"
    harness.write_text(HARNESS, encoding="utf-8")
    profile = tmp_path / "profile"
    run = subprocess.run(
        [
            BROWSER,
            *FLAGS,
            f"--user-data-dir={profile}",
            "--allow-file-access-from-files",
            # the harness follows every in-page link, more than 200 of them: chromium throttles a page
            # that changes its URL that often (IPC flooding protection), and would stop following them
            "--disable-ipc-flooding-protection",
            "--virtual-time-budget=20000",
            "--dump-dom",
            harness.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    found = re.search(r'<pre id="out">(.*?)</pre>', run.stdout, re.S)
    assert found and found.group(1) != "pending", run.stderr[-2000:]
    seen = json.loads(found.group(1).replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">"))
    assert seen["rules"] == len(rulebase.rules)
    assert seen["graph_links"] == len(rulebase.rules)
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


def test_the_fhir_mapping_section_writes_values_as_the_mapping_file_does(report):
    """What an entry sets reads as in `ivig fhir codes` (fhirtext.entry_sets): a list field's
    value is its item, never a Python tuple, and a refinement is said."""
    html = report.read_text(encoding="utf-8")
    assert 'id="fhir"' in html
    assert "planned_cotherapy = corticosteroids" in html and "(&#x27;corticosteroids&#x27;,)" not in html
    assert "refines diagnosis gbs" in html
