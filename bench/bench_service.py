"""Load benchmark of the CDS Hooks service: order-select calls from concurrent clients, and at fixed rates.

    python bench/bench_service.py                  # 20 clients, 1 and 2 workers, 30 s each
    python bench/bench_service.py --clients 20 --seconds 15 --workers 2 --rates 100 300

Starts `ivig serve --insecure-dev` on a free port (a fresh feedback file), and
has N concurrent clients post order-select calls to ivig-order-select (an IVIG
draft order for a generated patient: diagnosis, weight, age and risk factors
drawn from the FHIR mapping's own codes) for a fixed time. Per worker count,
after each of 200 patients was seen once: calls for those patients (a client
calls at order-select, then order-sign), then calls each for a patient never
seen (every resource read and validated; the engine runs unless the patient's
clinical situation was met before, which the situation cache replays). The
clients are closed-loop: each sends its next call when its last is answered,
so the latency at 20 clients is mostly the queue of 20 calls. Target (issue
16, issue 30): p99 under 100 ms at 20 concurrent clients on a 2-core machine.

Then fixed-rate runs (--rates): calls sent at a fixed rate whatever the answers
(open loop, the way an EHR's many users send them), every call a new patient,
each latency counted from when the call was due.

The clients are asyncio tasks writing pre-built HTTP/1.1 requests on raw
sockets, in this process on the same 2 cores: they take CPU of their own.

Then checks the closed-loop answers against `ivig evaluate`: each patient's record as a
FHIR Bundle, evaluated by the CLI, must give the stance rule and the
critical and warning codes the cards name.
"""

import argparse
import datetime
import itertools
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from ivig_advisor.engine.io.fhir.mapping import FhirMap

IVIG = [sys.executable, "-m", "ivig_advisor.cli"]
ICD = "http://hl7.org/fhir/sid/icd-10-cm"
RISKS = ("renal_disease", "migraine", "diabetes", "iga_deficiency", "volume_depletion", "thrombocytopenia")
DIAGNOSES = (
    "gbs",
    "cidp",
    "mmn",
    "myasthenia_gravis",
    "dermatomyositis",
    "lems",
    "multiple_sclerosis",
    "inclusion_body_myositis",
    "stiff_person_syndrome",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def patient(rng: random.Random, fmap: FhirMap, n: int) -> dict:
    """One patient's prefetch (Patient, Conditions, weight) and an IVIG draft order."""
    pid = f"p{n}"

    def coded(field, value):
        code = next(c for c in fmap.codes_for(field, value) if c.match == "code")
        return {"system": code.uri, "code": code.code}

    conditions = [coded("diagnosis", rng.choice(DIAGNOSES))]
    conditions += [coded(r, True) for r in RISKS if rng.random() < 0.15]

    def cond(i, coding):
        return {
            "resource": {
                "resourceType": "Condition",
                "id": f"{pid}-c{i}",
                "subject": {"reference": f"Patient/{pid}"},
                "code": {"coding": [coding]},
            }
        }

    weight = rng.choice(range(45, 110, 5))
    born = datetime.date(rng.randint(1940, 2005), rng.randint(1, 12), rng.randint(1, 28))
    order = {
        "resourceType": "MedicationRequest",
        "id": f"{pid}-ivig",
        "status": "draft",
        "intent": "order",
        "medicationCodeableConcept": {"coding": [{"system": "http://www.whocc.no/atc", "code": "J06BA02"}]},
        "subject": {"reference": f"Patient/{pid}"},
        "dosageInstruction": [
            {
                "doseAndRate": [
                    {
                        "doseQuantity": {
                            "value": rng.choice((20, 25, 30, 35)),
                            "unit": "g",
                            "system": "http://unitsofmeasure.org",
                            "code": "g",
                        }
                    }
                ]
            }
        ],
    }
    prefetch = {
        "patient": {
            "resourceType": "Patient",
            "id": pid,
            "birthDate": born.isoformat(),
            "gender": rng.choice(("female", "male")),
        },
        "conditions": {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [cond(i, c) for i, c in enumerate(conditions)],
        },
        "weights": {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [
                {
                    "resource": {
                        "resourceType": "Observation",
                        "id": f"{pid}-w",
                        "status": "final",
                        "subject": {"reference": f"Patient/{pid}"},
                        "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
                        "valueQuantity": {
                            "value": weight,
                            "unit": "kg",
                            "system": "http://unitsofmeasure.org",
                            "code": "kg",
                        },
                    }
                }
            ],
        },
        "medications": None,
        "statements": None,
        "procedures": None,
        "allergies": None,
    }
    return {"pid": pid, "prefetch": prefetch, "order": order}


def request(p: dict) -> dict:
    return {
        "hook": "order-select",
        "hookInstance": str(uuid.uuid4()),
        "context": {
            "userId": "Practitioner/bench",
            "patientId": p["pid"],
            "selections": [f"MedicationRequest/{p['order']['id']}"],
            "draftOrders": {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": p["order"]}]},
        },
        "prefetch": p["prefetch"],
    }


def serve(workers: int, port: int, db: str, matcher: str):
    proc = subprocess.Popen(
        IVIG
        + ["serve", "--insecure-dev", "--port", str(port), "--workers", str(workers), "--feedback-db", db]
        + ["--matcher", matcher],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/cds-services", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"the service did not start: {proc.stderr.read().decode()[:500]}")


def load(port: int, patients: list, clients: int, seconds: float, fresh: bool = False) -> dict:
    """`clients` concurrent callers for `seconds`, each on its own keep-alive connection.

    The callers are asyncio tasks writing pre-built HTTP/1.1 requests on raw sockets: an
    HTTP client library in Python costs a few ms of CPU a request, which on a 2-core machine
    is taken from the service and would pass for its latency."""
    import asyncio

    latencies, failures, answers = [], [], {}
    bodies = {p["pid"]: json.dumps(dict(request(p), hookInstance="HOOK-INSTANCE")) for p in patients}
    unused = iter(patients)  # fresh: each call a patient the service has not seen

    async def client(k: int, stop: float):
        rng = random.Random(k)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.time() < stop:
                p = next(unused, None) if fresh else rng.choice(patients)
                if p is None:
                    break
                start = time.perf_counter()
                status, reply = await exchange(reader, writer, port, bodies[p["pid"]])
                latencies.append(time.perf_counter() - start)
                if status != 200:
                    failures.append(status)
                elif p["pid"] not in answers:
                    answers[p["pid"]] = json.loads(reply)
        finally:
            writer.close()

    async def run():
        stop = time.time() + seconds
        await asyncio.gather(*(client(k, stop) for k in range(clients)))

    began = time.perf_counter()
    asyncio.run(run())
    return dict(figures(latencies, time.perf_counter() - began), failures=len(failures), answers=answers)


PATH = "/cds-services/ivig-order-select"
KEEP_ALIVE = 4.0  # seconds a connection is reused after its last answer: uvicorn closes one idle for 5


async def exchange(reader, writer, port: int, body_text: str) -> tuple:
    """One call on a keep-alive connection: a pre-built HTTP/1.1 request, read back by hand."""
    body = body_text.replace("HOOK-INSTANCE", str(uuid.uuid4())).encode()
    head = (
        f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    writer.write(head + body)
    await writer.drain()
    status, length = 0, 0
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        if line.startswith(b"HTTP/"):
            status = int(line.split()[1])
        elif line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return status, await reader.readexactly(length)


def figures(latencies: list, wall: float) -> dict:
    cuts = statistics.quantiles(latencies, n=100)
    return {
        "requests": len(latencies),
        "rps": len(latencies) / wall,
        "p50": cuts[49] * 1000,
        "p95": cuts[94] * 1000,
        "p99": cuts[98] * 1000,
        "max": max(latencies) * 1000,
    }


WRK_SCRIPT = """
-- each connection posts the next body of the file: every call a new patient
local bodies, next_body = {}, 0
for line in io.lines(os.getenv("IVIG_BODIES")) do bodies[#bodies + 1] = line end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  next_body = next_body % #bodies + 1
  return wrk.format(nil, nil, nil, bodies[next_body])
end
done = function(summary, latency, requests)
  io.write(string.format("WRK %d %d %.3f %.3f %.3f %.3f %d\\n", summary.requests, summary.duration,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, summary.errors.status + summary.errors.connect + summary.errors.read))
end
"""


def load_with_wrk(port: int, patients: list, clients: int, seconds: float) -> dict:
    """The closed-loop run again with wrk (Debian's package, a C client) as the client: it takes
    far less CPU than Python clients, so what it measures is nearer the service's own latency."""
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "bodies.jsonl").write_text("\n".join(json.dumps(request(p)) for p in patients) + "\n")
        Path(tmp, "new-patient.lua").write_text(WRK_SCRIPT)
        out = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{clients}",
                f"-d{seconds:g}s",
                "-s",
                Path(tmp, "new-patient.lua"),
                f"http://127.0.0.1:{port}{PATH}",
            ],
            capture_output=True,
            text=True,
            env=dict(os.environ, IVIG_BODIES=str(Path(tmp, "bodies.jsonl"))),
        )
    line = next((line for line in out.stdout.splitlines() if line.startswith("WRK ")), None)
    if line is None:
        raise SystemExit(f"wrk gave no figures: {out.stdout[-300:]} {out.stderr[-300:]}")
    requests, micros, p50, p95, p99, most, errors = line.split()[1:]
    return {
        "requests": int(requests),
        "rps": int(requests) / (int(micros) / 1e6),
        "p50": float(p50),
        "p95": float(p95),
        "p99": float(p99),
        "max": float(most),
        "failures": int(errors),
    }


def quantiles(found: dict) -> str:
    return f"p50 {found['p50']:.1f} ms, p95 {found['p95']:.1f} ms, p99 {found['p99']:.1f} ms, max {found['max']:.0f} ms"


def load_at_rate(port: int, patients: list, rate: float, seconds: float) -> dict:
    """Calls sent at a fixed rate, as an EHR's users send them (open loop): call i is due at
    i / rate, each on a free connection (a new one when all are busy), and its latency is counted
    from when it was due, so a slow answer cannot hide the calls it held up."""
    import asyncio

    latencies, failures, retried = [], [], []
    unused = iter(patients)

    async def run():
        idle = []
        began = time.perf_counter()

        async def connection():
            """An idle connection the server still keeps (uvicorn closes one idle for 5 s), else a new one."""
            while idle:
                reader, writer, used = idle.pop()
                if time.perf_counter() - used < KEEP_ALIVE:
                    return reader, writer
                writer.close()
            return await asyncio.open_connection("127.0.0.1", port)

        async def one(due: float, p: dict):
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            reader, writer = await connection()
            body = json.dumps(dict(request(p), hookInstance="HOOK-INSTANCE"))
            try:
                status, _reply = await exchange(reader, writer, port, body)
            except (ConnectionError, asyncio.IncompleteReadError):  # a kept-alive connection the server had closed
                retried.append(p["pid"])  # sent again on a new one, as an HTTP client does; its latency counts both
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                status, _reply = await exchange(reader, writer, port, body)
            latencies.append(time.perf_counter() - due)
            if status != 200:
                failures.append(status)
            idle.append((reader, writer, time.perf_counter()))

        calls = [one(began + i / rate, p) for i, p in zip(range(int(rate * seconds)), unused)]
        await asyncio.gather(*calls)
        for _reader, writer, _used in idle:
            writer.close()
        return time.perf_counter() - began

    wall = asyncio.run(run())
    return dict(figures(latencies, wall), failures=len(failures), retried=len(retried))


def check_against_cli(patients: list, answers: dict) -> list:
    """The pids whose cards do not give the stance rule and warning codes `ivig evaluate` gives."""
    with tempfile.TemporaryDirectory() as tmp:
        for p in patients:
            if p["pid"] not in answers:
                continue
            entries = [{"resource": p["prefetch"]["patient"]}, {"resource": p["order"]}]
            for key in ("conditions", "weights"):
                entries += p["prefetch"][key]["entry"]
            Path(tmp, f"{p['pid']}.json").write_text(
                json.dumps({"resourceType": "Bundle", "type": "collection", "entry": entries})
            )
        out = subprocess.run(IVIG + ["evaluate", "--format", "jsonl", "-q", tmp], capture_output=True, text=True)
    differ = []
    for line in out.stdout.splitlines():
        result = json.loads(line)
        cards = answers[result["id"]]["cards"]
        rules = {c["source"].get("topic", {}).get("code") for c in cards}
        # a warning from the later evidence is its entry's card: its topic code is the entry's id
        expected = {result["ivig"]["rule"]} | {
            w["rule"] or w["later_evidence"] for w in result["warnings"] if w["severity"] != "info"
        }
        if not expected <= rules:
            differ.append(result["id"])
    return differ


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--workers", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--patients", type=int, default=200)
    parser.add_argument(
        "--rates", type=float, nargs="*", default=[100, 200, 300], help="calls a second of the fixed-rate runs"
    )
    parser.add_argument(
        "--wrk", action="store_true", help="also run the 20 clients as wrk (apt install wrk), a client in C"
    )
    parser.add_argument(
        "--matcher", default="compiled", help="the service's matcher (ivig serve --matcher): compiled or rete"
    )
    args = parser.parse_args()
    fmap, rng = FhirMap.load(), random.Random(16)
    patients = [patient(rng, fmap, n) for n in range(args.patients)]
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent
    ).stdout.strip()
    print(
        f"# bench_service {datetime.datetime.now():%Y-%m-%d %H:%M}, code {commit}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; {args.clients} clients, {args.seconds:g} s, {args.patients} patients; "
        f"matcher {args.matcher}"
    )
    drawn = iter(range(args.patients, 10**9))

    def new_patients(count: int) -> list:
        """Patients no run has called for yet."""
        return [patient(rng, fmap, n) for n in itertools.islice(drawn, count)]

    ok = True
    for workers in args.workers:
        at_rate, by_client = {}, None
        with tempfile.TemporaryDirectory() as tmp:
            port = free_port()
            proc = serve(workers, port, os.path.join(tmp, "fb.sqlite"), args.matcher)
            try:
                load(port, patients, 2, len(patients) / 50, fresh=True)  # each patient seen once: the steady state
                fresh = new_patients(int(args.seconds * 1500))
                by_kind = {
                    "repeat": load(port, patients, args.clients, args.seconds),
                    "fresh": load(port, fresh, args.clients, args.seconds, fresh=True),
                }
                if args.wrk:
                    by_client = load_with_wrk(port, new_patients(int(args.seconds * 2000)), args.clients, args.seconds)
                for rate in args.rates:
                    at_rate[rate] = load_at_rate(port, new_patients(int(rate * args.seconds)), rate, args.seconds)
            finally:
                proc.terminate()
                proc.wait(timeout=30)
        for kind, found in by_kind.items():
            differ = check_against_cli(patients if kind == "repeat" else fresh, found["answers"])
            met = found["p99"] < 100
            ok = ok and met and not differ and not found["failures"]
            print(
                f"workers {workers}, {args.clients} clients, "
                f"{'patients seen before' if kind == 'repeat' else 'every call a new patient'}: "
                f"{found['requests']} requests, {found['rps']:.0f} req/s, {quantiles(found)} "
                f"({'met' if met else 'MISSED'}: target p99 < 100 ms); non-200: {found['failures']}; "
                f"answers that differ from ivig evaluate: {len(differ)} of {len(found['answers'])}"
                + (f" ({', '.join(differ[:5])})" if differ else "")
            )
        if by_client:
            met = by_client["p99"] < 100
            ok = ok and met and not by_client["failures"]
            print(
                f"workers {workers}, {args.clients} connections of wrk (a C client), every call a new patient: "
                f"{by_client['requests']} requests, {by_client['rps']:.0f} req/s, {quantiles(by_client)} "
                f"({'met' if met else 'MISSED'}: target p99 < 100 ms); errors: {by_client['failures']}"
            )
        for rate, found in at_rate.items():
            ok = ok and not found["failures"]
            print(
                f"workers {workers}, fixed rate {rate:g} calls/s, every call a new patient: {found['requests']} "
                f"requests, {found['rps']:.0f} req/s, {quantiles(found)}; non-200: {found['failures']}; "
                f"sent again on a new connection: {found['retried']}"
            )
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
