"""A stand-in for `systemctl` and `journalctl`, for tests/service/test_hospital.py: what systemd
would do with docs/hospital.md's units, without systemd as PID 1 (a test machine has none).

    python systemd_stand_in.py ROOT systemctl start ivig.service
    python systemd_stand_in.py ROOT journalctl -u ivig.service --since today

Units are read from ROOT/etc/systemd/system. It reads the unit keys that page uses and no others:
ExecStartPre (run first; a failure fails the start), ExecStart (a `Type=oneshot` unit runs to its
end; any other is started in the background, its pid kept in ROOT/run), LoadCredential (copied to
the unit's credentials folder, named by ${CREDENTIALS_DIRECTORY}), StateDirectory (made, 0700),
TimeoutStopSec (how long `stop` waits after SIGTERM). The service's output goes to
ROOT/run/NAME.journal, which `journalctl -u NAME` prints. Any other unit key is left to
`systemd-analyze verify`, which the page runs too."""

import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path


def unit(root: Path, name: str) -> dict:
    """The keys of a unit file, each a list of its values, continued lines joined."""
    text = (root / "etc/systemd/system" / name).read_text(encoding="utf-8").replace("\\\n", " ")
    keys: dict = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", ";", "[")):
            key, value = line.split("=", 1)
            keys.setdefault(key.strip(), []).append(value.strip())
    return keys


def command(line: str, credentials: Path) -> list:
    return shlex.split(line.replace("${CREDENTIALS_DIRECTORY}", str(credentials)))


def start(root: Path, name: str) -> int:
    keys = unit(root, name)
    if name.endswith(".timer"):
        return 0  # the timer's time never comes in a test: the page starts its service by hand
    credentials = root / "run/credentials" / name
    credentials.mkdir(parents=True, exist_ok=True)
    for given in keys.get("LoadCredential", []):
        credential, source = given.split(":", 1)
        shutil.copyfile(source, credentials / credential)
    for state in keys.get("StateDirectory", []):
        (root / "var/lib" / state).mkdir(mode=0o700, parents=True, exist_ok=True)
    journal = open(root / "run" / f"{name}.journal", "ab")
    for line in keys.get("ExecStartPre", []):
        if subprocess.run(command(line, credentials), stdout=journal, stderr=journal).returncode:
            print(f"Job for {name} failed: ExecStartPre failed", file=sys.stderr)
            return 1
    [line] = keys["ExecStart"]
    if keys.get("Type") == ["oneshot"]:
        done = subprocess.run(command(line, credentials), stdout=journal, stderr=journal)
        return 0 if done.returncode == 0 else 1
    process = subprocess.Popen(command(line, credentials), stdout=journal, stderr=journal, start_new_session=True)
    (root / "run" / f"{name}.pid").write_text(str(process.pid))
    return 0


def stop(root: Path, name: str) -> int:
    pid_file = root / "run" / f"{name}.pid"
    if not pid_file.exists():
        return 0
    pid = int(pid_file.read_text())
    wait = float(unit(root, name).get("TimeoutStopSec", ["90"])[0])
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + wait
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if alive(pid):
        os.killpg(pid, signal.SIGKILL)
    pid_file.unlink()
    return 0


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, exited but not yet reaped by its new parent, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def systemctl(root: Path, args: list) -> int:
    verb, names = args[0], [a for a in args[1:] if not a.startswith("--")]
    if verb == "daemon-reload":
        return 0
    if verb == "enable":
        return max((start(root, n) for n in names), default=0) if "--now" in args else 0
    if verb in ("start", "stop", "restart"):
        status = 0
        for name in names:
            if verb in ("stop", "restart"):
                status = max(status, stop(root, name))
            if verb in ("start", "restart"):
                status = max(status, start(root, name))
        return status
    print(f"systemd stand-in: systemctl {verb} is not stood in for", file=sys.stderr)
    return 2


def journalctl(root: Path, args: list) -> int:
    name = args[args.index("-u") + 1]
    journal = root / "run" / f"{name}.journal"
    sys.stdout.write(journal.read_text(encoding="utf-8", errors="replace") if journal.exists() else "")
    return 0


if __name__ == "__main__":
    root, tool, rest = Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
    (root / "run").mkdir(parents=True, exist_ok=True)
    sys.exit(systemctl(root, rest) if tool == "systemctl" else journalctl(root, rest))
