"""The README's CDS Hooks example runs as written (issue 30): its curl command, against a real
`ivig serve --insecure-dev`, gives the cards the README shows, in that order."""

import json
import re
import shlex
import shutil
import subprocess

import pytest
from helpers import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")


def example():
    """The curl command and the cards (indicator, summary) of the README's "In the EHR"."""
    part = README[README.index("## In the EHR") : README.index("## Where to go next")]
    command = re.search(r"```sh\n(.*?)```", part, re.S).group(1)
    curl = command.split("\n", 1)[1].replace("\\\n", " ")
    rows = re.findall(r"^\| (critical|warning|info) \| (.*) \|$", part, re.M)
    return curl, [(indicator, summary) for indicator, summary in rows]


def test_the_readme_curl_gives_the_cards_it_shows(dev):
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed: the README's example cannot be run as written")
    curl, cards = example()
    args = shlex.split(curl.replace("http://127.0.0.1:8080", dev.url))
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    got = [(c["indicator"], c["summary"]) for c in json.loads(done.stdout)["cards"]]
    assert got == cards


def test_the_sample_is_shipped_with_the_package():
    setup = (ROOT / "setup.cfg").read_text(encoding="utf-8")
    assert "samples/cds-hooks/*.json" in setup and (ROOT / "samples/cds-hooks/order-select-mmn.json").is_file()
