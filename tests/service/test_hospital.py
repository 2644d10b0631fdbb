"""docs/hospital.md, "Running it in a hospital", run as written (issue 30): every block of the page,
in order. A command runs in bash and shows the output and exit status the page shows; a unit, the
trust file or another file the page names is written where it says. `/etc/ivig`, `/etc/systemd`,
`/var/lib/ivig` and `/var/backups/ivig` are mapped into a temporary folder, `/opt/ivig/bin` to this
Python's, `ivig.example.org:8443` to a free port on this machine, and `systemctl` and `journalctl`
to tests/service/systemd_stand_in.py, which does what systemd would do with the page's units. The
EHR's part is this test's: its JWK Set, and signed calls before the page reads the trail of calls."""

import json
import re
import shutil
import ssl
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from helpers import ROOT, Keys, es384, load
from test_docs import Block, blocks_of, commands, matches

PAGE = ROOT / "docs" / "hospital.md"
STAND_IN = Path(__file__).with_name("systemd_stand_in.py")
NEEDED = ("openssl", "curl", "systemd-analyze")
FILE_MARK = re.compile(r"<!-- hospital: file (\S+) -->")
AFTER_CALLS = "<!-- hospital: after calls -->"

pytestmark = pytest.mark.slow


class Site:
    """The page's machine, in a temporary folder: its paths, port, keys and shell."""

    def __init__(self, root: Path, port: int):
        self.root, self.port = root, port
        self.keys = Keys(root)
        self.bin = root / "bin"
        self.bin.mkdir()
        for tool in ("systemctl", "journalctl"):
            stand_in = self.bin / tool
            stand_in.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{STAND_IN}" "{root}" {tool} "$@"\n')
            stand_in.chmod(0o755)

    def mapped(self, text: str) -> str:
        """`text` with the page's paths, host and port made this test's."""
        for page, here in (
            ("ivig.example.org:8443", f"localhost:{self.port}"),
            ("ivig.example.org", "localhost"),
            ("0.0.0.0:8443", f"0.0.0.0:{self.port}"),
            ("--port 8443", f"--port {self.port}"),
            ("/opt/ivig/bin/", str(Path(sys.executable).parent) + "/"),
            ("/etc/ivig", f"{self.root}/etc/ivig"),
            ("/etc/systemd", f"{self.root}/etc/systemd"),
            ("/var/lib/ivig", f"{self.root}/var/lib/ivig"),
            ("/var/backups/ivig", f"{self.root}/var/backups/ivig"),
        ):
            text = text.replace(page, here)
        return text

    def write(self, block: Block, path: str) -> None:
        target = Path(self.mapped(path))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(self.mapped(block.text), encoding="utf-8")

    def run(self, block: Block) -> None:
        """Each command of a console block, as the page shows it (continued lines joined)."""
        env = {"PATH": f"{self.bin}:{Path(sys.executable).parent}:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
        for command in commands(re.sub(r" \\\n\s*", " ", self.mapped(block.text))):
            done = subprocess.run(
                ["bash", "-c", command.line],
                cwd=self.root,
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=180,
            )
            said = f"{block.name}: $ {command.line}\n--- printed ---\n{done.stdout}--- stderr ---\n{done.stderr}"
            assert done.returncode == command.status, f"exit {done.returncode}, not {command.status}\n{said}"
            if command.output is not None:
                assert matches(command.output, done.stdout), f"{said}--- the page shows ---\n{command.output}"

    def ehr_calls(self) -> None:
        """What the EHR does before the page reads the trail: calls with a token the trust file trusts."""
        url = f"https://localhost:{self.port}"
        tls = ssl.create_default_context(cafile=self.root / "etc/ivig/tls/fullchain.pem")
        for service in ("ivig-order-select", "ivig-order-select", "no-such-service"):
            path = f"/cds-services/{service}"
            now = int(time.time())
            claims = {"iss": "https://ehr.example.org/", "aud": url + path, "iat": now, "exp": now + 300}
            claims["jti"] = str(uuid.uuid4())
            token = es384(self.keys, claims)
            reply = httpx.post(
                url + path, json=load("order-select-mmn"), headers={"Authorization": f"Bearer {token}"}, verify=tls
            )
            assert reply.status_code == (404 if service == "no-such-service" else 200), reply.text


def test_the_hospital_page_runs_as_written(tmp_path):
    missing = [tool for tool in NEEDED if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (.ci/run installs them): the page cannot run as written")
    from helpers import free_port

    site = Site(tmp_path, free_port())
    (tmp_path / "etc/ivig").mkdir(parents=True)
    shutil.copyfile(site.keys.jwks, tmp_path / "etc/ivig/ehr-jwks.json")  # the EHR vendor's keys
    blocks = blocks_of(PAGE)
    try:
        for block in blocks:
            written = FILE_MARK.fullmatch(block.note)
            if written:
                site.write(block, written.group(1))
                continue
            assert block.lang == "console", f"{block.name}: a ```{block.lang} block the page neither writes nor runs"
            if block.note == AFTER_CALLS:
                site.ehr_calls()
            site.run(block)
    finally:
        subprocess.run([str(site.bin / "systemctl"), "stop", "ivig.service"], timeout=60)
    trail = subprocess.run(
        [
            sys.executable,
            "-m",
            "ivig_advisor.cli",
            "audit",
            "calls",
            "--db",
            str(tmp_path / "var/lib/ivig/ivig.sqlite"),
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    statuses = sorted(call["status"] for call in json.loads(trail.stdout)["calls"])
    assert statuses == [200, 200, 404], statuses
    backups = sorted(p.name for p in (tmp_path / "var/backups/ivig").iterdir())
    assert len(backups) == 3 and all(re.fullmatch(r"ivig-\d{8}T\d{6}Z(-\d+)?\.sqlite", name) for name in backups), (
        backups
    )
    [aside] = (tmp_path / "var/lib/ivig").glob("replaced-*")  # put aside, never deleted
    assert (aside / "ivig.sqlite").is_file()


def test_every_block_of_the_page_is_one_the_test_runs_or_writes():
    for block in blocks_of(PAGE):
        assert FILE_MARK.fullmatch(block.note) or block.lang == "console", block.name
