"""`ivig audit review` in a real browser: the real command serves a copy of the rules, and Debian's
chromium, driven by selenium through the system's chromedriver, approves one rule and marks
another needs-change on the page; the cards' lifecycles change on the page, a verdict given
on the command line meanwhile shows up too, the forms work without script, and the log and
`ivig audit check` / `ivig audit show` then say what was given. Slow: a server and a browser.
"""

import json
import os
import re
import select
import signal
import subprocess
import time

import pytest
import yaml
from helpers import CHROMEDRIVER, CHROMIUM, IVIG, ivig, plain_env

pytestmark = pytest.mark.slow

webdriver = pytest.importorskip(
    "selenium.webdriver",
    reason='no selenium: pip install -e ".[test]" (or pip install selenium) to run the browser test',
)
if CHROMIUM is None or CHROMEDRIVER is None:
    pytest.skip(
        "no chromium or chromedriver on this machine: `apt-get install chromium chromium-driver` "
        "(Debian's packages; .ci/run installs them) to run the browser test",
        allow_module_level=True,
    )
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException  # noqa: E402
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

REVIEWER = "Dr Browser"
IDENTITY = "Rev Iewer <rev@example.org>"
COMMENT = "say the 2 g/kg total before the daily dose"


@pytest.fixture
def environment(tmp_path):
    """The environment of every process the test starts: a known git identity, no colour, and
    selenium told to find nothing on the network (the browser and its driver are the system's)."""
    config = tmp_path / "gitconfig"
    config.write_text("[user]\n\tname = Rev Iewer\n\temail = rev@example.org\n", encoding="utf-8")
    return plain_env({**os.environ, "GIT_CONFIG_GLOBAL": str(config), "GIT_CONFIG_NOSYSTEM": "1", "SE_OFFLINE": "true"})


@pytest.fixture
def served(rules_copy, environment):
    """`ivig audit review --no-browser --port 0` on the copy: the address it printed. Stopped with
    Ctrl-C (SIGINT) at the end, which it takes as a clean stop."""
    args = ["audit", "review", "--no-browser", "--port", "0", "--rules", str(rules_copy), "--reviewer", REVIEWER]
    proc = subprocess.Popen([*IVIG, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment)
    try:
        said = _read_until(proc, re.compile(r"http://127\.0\.0\.1:\d+/\?key=\S+"), 90)
        yield re.search(r"http://127\.0\.0\.1:\d+/\?key=\S+", said).group(0)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise
    assert proc.returncode == 128 + signal.SIGINT and err.strip() == "ivig: stopped by Ctrl-C (SIGINT)", err


def _read_until(proc: subprocess.Popen, pattern: re.Pattern, seconds: float) -> str:
    """What the process printed, up to the line that matches `pattern` (it printed it: it listens)."""
    said, deadline = "", time.monotonic() + seconds
    while not pattern.search(said):
        if time.monotonic() > deadline or proc.poll() is not None:
            raise AssertionError(
                f"no address printed: {said!r} {proc.stderr.read() if proc.poll() is not None else ''}"
            )
        ready, _, _ = select.select([proc.stdout], [], [], 1)
        if ready:
            said += proc.stdout.readline()
    return said


def _browser(tmp_path, name: str, script: bool = True):
    """Headless chromium through the system's chromedriver (selenium downloads nothing)."""
    options = Options()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1000"):
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / name}")
    if not script:
        options.add_experimental_option("prefs", {"profile.managed_default_content_settings.javascript": 2})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


@pytest.fixture
def browser(tmp_path):
    driver = _browser(tmp_path, "profile")
    yield driver
    driver.quit()


def _text(driver, element_id: str) -> str:
    return driver.find_element(By.ID, element_id).text


def _wait_for(driver, element_id: str, check, seconds: float = 30) -> str:
    """The text of the element once `check` holds of it (the page changes it, or the server answers;
    without script, the browser loads the page anew, and an element read meanwhile may go stale)."""
    ignored = (NoSuchElementException, StaleElementReferenceException)
    WebDriverWait(driver, seconds, ignored_exceptions=ignored).until(lambda d: check(_text(d, element_id)))
    return _text(driver, element_id)


def _click(driver, rule_id: str, verdict: str):
    button = driver.find_element(By.CSS_SELECTOR, f'#rule-{rule_id} form.verdict button[value="{verdict}"]')
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", button)
    button.click()


def _logged(rules_dir):
    return yaml.safe_load((rules_dir / "review-log.yaml").read_text(encoding="utf-8"))["signoffs"]


def test_a_reviewer_approves_a_rule_in_the_browser_and_audit_check_shows_it(
    served, browser, rules_copy, environment, tmp_path
):
    browser.get(served)
    assert browser.current_url == served.split("?")[0], "the key is traded for a cookie and leaves the address"
    assert _text(browser, "stage-mmn-general") == "draft"
    browser.execute_script("window.notReloaded = true")  # the verdicts below update the page in place

    _click(browser, "mmn-general", "approved")
    assert _wait_for(browser, "stage-mmn-general", lambda t: t == "approved") == "approved"
    assert _text(browser, "lifecycle-mmn-general").startswith(f"approved by {REVIEWER} on ")
    assert _text(browser, "said-mmn-general") == f"Recorded in {rules_copy / 'review-log.yaml'}"

    _click(browser, "gbs-dose", "needs-change")  # no comment: signoff's refusal, on the card
    said = _wait_for(browser, "said-gbs-dose", lambda t: t != "")
    assert said == "a 'needs-change' verdict needs a comment saying what to change"
    assert _text(browser, "stage-gbs-dose") == "draft"
    browser.find_element(By.CSS_SELECTOR, "#rule-gbs-dose textarea[name=comment]").send_keys(COMMENT)
    _click(browser, "gbs-dose", "needs-change")
    assert _wait_for(browser, "stage-gbs-dose", lambda t: t == "needs-change") == "needs-change"
    assert _text(browser, "lifecycle-gbs-dose").endswith(f": {COMMENT}")
    assert browser.execute_script("return window.notReloaded") is True

    # verdicts given on the command line meanwhile show on the open page, one after the other (it polls)
    for rule_id in ("mg-dose", "lems-dose"):
        signed = ivig("audit", "sign", "--rules", rules_copy, rule_id, "--verdict", "approved", "--reviewer", "Dr B")
        assert signed.returncode == 0, signed.stderr
        assert _wait_for(browser, f"stage-{rule_id}", lambda t: t == "approved") == "approved"
        assert _text(browser, f"lifecycle-{rule_id}").startswith("approved by Dr B on ")
    assert browser.execute_script("return window.notReloaded") is True

    entries = _logged(rules_copy)
    assert [(e["rule"], e["verdict"], e["reviewer"]) for e in entries] == [
        ("mmn-general", "approved", REVIEWER),
        ("gbs-dose", "needs-change", REVIEWER),
        ("mg-dose", "approved", "Dr B"),
        ("lems-dose", "approved", "Dr B"),
    ]
    assert entries[0]["identity"] == IDENTITY and entries[1]["comment"] == COMMENT

    check = ivig("audit", "check", "--strict", "--format", "json", "--rules", rules_copy, env=environment)
    unsigned = {f["rule"] for f in json.loads(check.stdout)["findings"] if f["kind"] == "sign-off"}
    assert "mmn-general" not in unsigned and "mg-dose" not in unsigned and "gbs-dose" in unsigned
    shown = ivig("audit", "show", "--rules", rules_copy, "mmn-general", env=environment).stdout
    assert shown.splitlines()[0].startswith(f"mmn-general  [review] approved by {REVIEWER} on ")


def test_the_forms_work_without_script(served, rules_copy, tmp_path):
    driver = _browser(tmp_path, "no-script", script=False)
    try:
        driver.get(served)
        assert _text(driver, "stage-cidp-general") == "draft"
        _click(driver, "cidp-general", "approved")  # a plain POST, then the page again at the card
        WebDriverWait(driver, 30).until(lambda d: d.current_url.endswith("/#rule-cidp-general"))
        assert _wait_for(driver, "stage-cidp-general", lambda t: t == "approved") == "approved"
        assert _text(driver, "lifecycle-cidp-general").startswith(f"approved by {REVIEWER} on ")

        _click(driver, "gbs-dose", "needs-change")  # refused: the page comes back with the reason on the card
        WebDriverWait(driver, 30).until(lambda d: d.current_url.endswith("/verdict#rule-gbs-dose"))
        said = _wait_for(driver, "said-gbs-dose", lambda t: t != "")
        assert said == "a 'needs-change' verdict needs a comment saying what to change"
        top, height = driver.execute_script(
            "return [document.getElementById('rule-gbs-dose').getBoundingClientRect().top, window.innerHeight]"
        )
        assert -2 <= top < height / 2, "the page opens at the card that says why"
    finally:
        driver.quit()
    assert [(e["rule"], e["verdict"]) for e in _logged(rules_copy)] == [("cidp-general", "approved")]


def test_a_browser_without_the_key_gets_no_page(served, browser):
    browser.get(served.split("?")[0])
    assert "Open the address `ivig audit review` printed" in browser.find_element(By.TAG_NAME, "body").text
    assert not browser.find_elements(By.CSS_SELECTOR, "form.verdict")
