#!/usr/bin/env python3
"""Lambda artifacts benchmark (issue 11): binary size, start time and memory of every function.

For each function in functions/:
  - arm64 size: `cargo lambda build --release --arm64` (what SAM deploys), stripped, in bytes;
  - x86_64 size: `cargo lambda build --release --x86-64`, the same profile for this machine;
  - start: time from spawning the x86_64 binary to its first `GET …/runtime/invocation/next`
    on a runtime API served by this script (stdlib http.server on 127.0.0.1), median of
    --runs starts after one warm-up start; init includes what the function does before it
    polls (SDK config, the HTTPS clients; the OpsRamp secret is read on first use, not here);
  - RSS: VmHWM (peak resident set) from /proc/PID/status after the function handled its share
    of a --alerts batch (default 1,000 alerts): fetch-alerts fetches them from the simulator
    (`mss sim serve`) into DynamoDB/SQS at moto, then each queue consumer drains its queue in
    the batch size template.yaml gives its event source (what the function really gets), the
    monthly report drafts the month over them, etc. A function with nothing to do here is
    measured after init only (said so in the table).

The arm64 binaries cannot run on this x86_64 machine (no emulation): start and RSS are of the
x86_64 build of the same profile; sizes are reported for both.

Needs: cargo-lambda and zig on PATH (scripts/dev-tools.sh), the debug `mss` (cargo build -p mss)
for the simulator and the emulator's tables/queues, and moto: MSS_TEST_AWS_ENDPOINT, or this
script starts its own moto_server from .venv (and stops it again). CARGO_TARGET_DIR honoured.

  .venv/bin/python scripts/bench_lambda.py [--functions a,b] [--runs 5] [--alerts 1000]
      [--no-build] [--no-arm64] [--profile release] [--json FILE] [--md FILE]
      [--extra-tenants N [--extra-tenant-alerts 2]]

--extra-tenants: N more tenants (the example's configuration under other ids) for fetch-alerts
to fetch in its one scheduled invocation, every tenant × product: the fetch's memory and time at
scale. Use a moto started with `scripts/moto-server.sh start --undo-log` (MSS_TEST_AWS_ENDPOINT)
there: stock moto copies the whole table for every transaction item (BENCHMARKS.md, Scale).
"""
import argparse
import datetime as dt
import json
import os
import queue
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import procs  # scripts/procs.py (the script's own directory is on sys.path)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
FUNCTIONS = sorted(d for d in os.listdir(os.path.join(ROOT, "functions"))
                   if os.path.exists(os.path.join(ROOT, "functions", d, "Cargo.toml")))
# The order the workload runs in: producers before their consumers.
ORDER = ["fetch-alerts", "classify", "create-ticket", "investigate", "first-response", "check-action",
         "monthly-report", "rerun", "track-inquiries", "activity-digest", "preflight"]
REGION = "ap-northeast-1"
TENANT_TOML = os.path.join(ROOT, "infra", "tenants", "kaede-shoji.example.toml")


def log(msg):
    print(f"bench_lambda: {msg}", file=sys.stderr, flush=True)


def fail(msg):
    log(f"FAILED: {msg}")
    sys.exit(1)


free_port = procs.free_port


def wait_port(port, proc, what, timeout=60):
    procs.wait_port(port, proc, what, fail, timeout)


def run(cmd, **kw):
    return procs.run(cmd, fail, **kw)


# ---- the runtime API -------------------------------------------------------------------------

class RuntimeApi:
    """A minimal Lambda runtime API (2018-06-01) for one function process: records when the
    first `next` arrived, hands out queued events, collects responses and errors."""

    def __init__(self):
        self.first_poll = None          # time.perf_counter() of the first GET …/next
        self.polled = threading.Event()
        self.init_error = None
        self.events = queue.Queue()
        self.results = {}
        self.done = {}
        self.closed = False
        api = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _reply(self, code, body=b"", headers=()):
                self.send_response(code)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _body(self):
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def do_GET(self):
                if self.path.endswith("/runtime/invocation/next"):
                    t = time.perf_counter()
                    if api.first_poll is None:
                        api.first_poll = t
                        api.polled.set()
                    while not api.closed:
                        try:
                            rid, payload = api.events.get(timeout=0.2)
                        except queue.Empty:
                            continue
                        deadline = int((time.time() + 900) * 1000)
                        self._reply(200, json.dumps(payload).encode(), [
                            ("Content-Type", "application/json"),
                            ("Lambda-Runtime-Aws-Request-Id", rid),
                            ("Lambda-Runtime-Deadline-Ms", str(deadline)),
                            ("Lambda-Runtime-Invoked-Function-Arn",
                             "arn:aws:lambda:ap-northeast-1:123456789012:function:bench"),
                            ("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")])
                        return
                    self.close_connection = True
                    return
                self._reply(404)

            def do_POST(self):
                body = self._body()
                m = re.search(r"/runtime/invocation/([^/]+)/(response|error)$", self.path)
                if m:
                    rid, kind = m.groups()
                    api.results[rid] = (kind, body.decode("utf-8", "replace"))
                    if rid in api.done:
                        api.done[rid].set()
                    self._reply(202, b'{"status":"OK"}', [("Content-Type", "application/json")])
                    return
                if self.path.endswith("/runtime/init/error"):
                    api.init_error = body.decode("utf-8", "replace")
                    self._reply(202, b'{"status":"OK"}', [("Content-Type", "application/json")])
                    return
                self._reply(404)

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                # A function process ended while its poll was open: expected here.
                if not isinstance(sys.exc_info()[1], (ConnectionError, OSError)):
                    super().handle_error(request, client_address)

        self.server = Server(("127.0.0.1", 0), H)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def invoke(self, payload, proc, timeout=900):
        """One invocation: (kind 'response'|'error', parsed JSON or text)."""
        rid = str(uuid.uuid4())
        self.done[rid] = threading.Event()
        self.events.put((rid, payload))
        t0 = time.time()
        while not self.done[rid].wait(0.2):
            if proc.poll() is not None:
                return "exit", f"the process exited with {proc.returncode}"
            if time.time() - t0 > timeout:
                return "timeout", f"no answer in {timeout}s"
        kind, body = self.results[rid]
        try:
            return kind, json.loads(body)
        except ValueError:
            return kind, body

    def close(self):
        self.closed = True
        self.server.shutdown()
        self.server.server_close()


def proc_status(pid):
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmHWM", "VmRSS"):
                    out[k] = int(v.split()[0]) * 1024
    except OSError:
        pass
    return out


class Function:
    """One running function binary behind its own runtime API."""

    def __init__(self, name, binary, env, logdir):
        self.name = name
        self.api = RuntimeApi()
        self.log_path = os.path.join(logdir, f"{name}-{time.time_ns()}.log")
        self.log = open(self.log_path, "w")
        e = dict(env, AWS_LAMBDA_RUNTIME_API=f"http://127.0.0.1:{self.api.port}",
                 AWS_LAMBDA_FUNCTION_NAME=name)
        self.t0 = time.perf_counter()
        self.proc = subprocess.Popen([binary], env=e, stdout=self.log, stderr=subprocess.STDOUT)

    def wait_polled(self, timeout=60):
        """Seconds from spawn to the first poll, or None (with why) when it never polled."""
        t_end = time.time() + timeout
        while not self.api.polled.wait(0.01):
            if self.proc.poll() is not None:
                return None, f"exited with {self.proc.returncode} before polling: {self.log_tail()}"
            if time.time() > t_end:
                return None, f"did not poll within {timeout}s"
        return self.api.first_poll - self.t0, None

    def log_tail(self, n=600):
        self.log.flush()
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-n:].strip().replace("\n", " | ")
        except OSError:
            return ""

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.api.close()
        self.log.close()


# ---- builds ----------------------------------------------------------------------------------

def build(functions, arch, profile, lambda_dir):
    cmd = ["cargo", "lambda", "build", f"--{arch}", "--lambda-dir", lambda_dir]
    cmd += ["--release"] if profile == "release" else ["--profile", profile]
    for f in functions:
        cmd += ["--bin", f]
    log(" ".join(cmd))
    t0 = time.time()
    r = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        fail(f"{' '.join(cmd)} exited {r.returncode}:\n{r.stderr[-4000:]}")
    log(f"  built in {time.time() - t0:.0f}s")


def elf_info(path):
    """(bytes, stripped?) of an ELF file."""
    size = os.path.getsize(path)
    r = subprocess.run(["file", "-b", path], capture_output=True, text=True)
    stripped = None if r.returncode != 0 else ("not stripped" not in r.stdout)
    return size, stripped


def batch_sizes():
    """Each SQS-triggered function's BatchSize in template.yaml, by binary name."""
    out = {}
    try:
        text = open(os.path.join(ROOT, "template.yaml"), encoding="utf-8").read()
    except OSError:
        return out
    # Resources are top-level keys indented by two spaces; look inside each function's block.
    for block in re.split(r"\n  (?=[A-Za-z0-9]+:\n)", text):
        b = re.search(r"BuildProperties:\s*\n\s*Binary:\s*([\w-]+)", block)
        s = re.search(r"BatchSize:\s*(\d+)", block)
        if b and s:
            out[b.group(1)] = int(s.group(1))
    return out


# ---- the workload ----------------------------------------------------------------------------

def extra_tenant(cfg, i):
    """The example tenant's configuration under another id and Azure tenant (--extra-tenants)."""
    c = json.loads(json.dumps(cfg))
    c["id"] = f"scale-{i:04d}"
    c["name"] = f"スケール検証 {i:04d}"
    c["azure_tenant_id"] = f"00000000-0000-4000-8000-{i:012d}"
    return c


def extra_tenant_toml(i):
    """The example tenant's TOML with extra_tenant(i)'s id, name and Azure tenant (the top-level
    keys, before the first [section])."""
    with open(TENANT_TOML, encoding="utf-8") as f:
        head, sep, rest = f.read().partition("\n[")
    c = extra_tenant({}, i)
    for key in ("id", "name", "azure_tenant_id"):
        head, n = re.subn(rf'(?m)^{key} = ".*"$', f'{key} = "{c[key]}"', head, count=1)
        if n != 1:
            fail(f"{TENANT_TOML}: no top-level {key} to replace")
    return head + sep + rest


def scenario(work, mss, n_alerts, now, extra_tenants=0, extra_alerts=2):
    """A simulator scenario: the example tenant with n_alerts alerts of the demo's shapes,
    all within the last hour (so one fetch sees every one); and extra_tenants more tenants of
    the same configuration with extra_alerts alerts each (the fetch's scale, --extra-tenants)."""
    with open(TENANT_TOML, "rb") as f:
        cfg = tomllib.load(f)
    az = cfg["azure_tenant_id"]
    shapes = []
    demo = os.path.join(work, "demo-scenario.json")
    r = subprocess.run([mss, "demo", "--write-scenario", demo], capture_output=True, text=True)
    sources = {"mde": "microsoftDefenderForEndpoint", "mdo": "microsoftDefenderForOffice365",
               "mda": "microsoftDefenderForCloudApps", "mdi": "microsoftDefenderForIdentity",
               "idp": "azureAdIdentityProtection", "sentinel": "microsoftSentinel"}
    wanted = {sources[p] for p in cfg.get("products", []) if p in sources}
    if r.returncode == 0 and os.path.exists(demo):
        with open(demo, encoding="utf-8") as f:
            for t in json.load(f).get("tenants", []):
                # The tenant's own products only: the others are never fetched.
                shapes += [a for a in t.get("alerts", [])
                           if isinstance(a, dict) and a.get("id") and a.get("serviceSource") in wanted]
    if not shapes:
        log("mss demo --write-scenario gave no alerts; synthesising minimal MDI alerts")
        shapes = [{"serviceSource": "microsoftDefenderForIdentity", "severity": "high", "status": "new",
                   "title": "Suspected DCSync attack"}]
    alerts = []
    span = 55 * 60
    for i in range(n_alerts):
        a = json.loads(json.dumps(shapes[i % len(shapes)]))
        t = (now - dt.timedelta(seconds=60 + span * (n_alerts - i) // max(n_alerts, 1)))
        ts = t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        a.update({"id": f"bench-{i:06d}", "tenantId": az, "createdDateTime": ts, "lastUpdateDateTime": ts,
                  "firstActivityDateTime": ts, "lastActivityDateTime": ts})
        if "incidentId" in a:
            a["incidentId"] = str(900000 + i // 4)
        alerts.append(a)
    fmt = lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ")
    tenants = [{"config": cfg, "alerts": alerts}]
    for i in range(1, extra_tenants + 1):
        c = extra_tenant(cfg, i)
        more = []
        for j in range(extra_alerts):
            a = json.loads(json.dumps(alerts[(i * extra_alerts + j) % len(alerts)]))
            a.update({"id": f"scale-{i:04d}-{j:03d}", "tenantId": c["azure_tenant_id"]})
            more.append(a)
        tenants.append({"config": c, "alerts": more})
    sc = {"start": fmt(now - dt.timedelta(hours=1)), "end": fmt(now), "tenants": tenants}
    path = os.path.join(work, "scenario.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(sc, f)
    avg = sum(len(json.dumps(a)) for a in alerts) // max(len(alerts), 1)
    return path, cfg, avg


def read_json_object(stream):
    """`mss sim serve` prints one pretty JSON object, then serves."""
    lines, depth = [], 0
    for line in stream:
        lines.append(line)
        depth += line.count("{") - line.count("}")
        if depth == 0 and "}" in line:
            break
    return json.loads("".join(lines))


def sqs_records(sqs, url, n):
    """Up to n messages from the queue, as an SQS event's records (not deleted)."""
    msgs = []
    empty = 0
    while len(msgs) < n and empty < 2:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=min(10, n - len(msgs)),
                                  AttributeNames=["All"], WaitTimeSeconds=0).get("Messages", [])
        if not got:
            empty += 1
            continue
        msgs += got
    arn = "arn:aws:sqs:ap-northeast-1:123456789012:" + url.rsplit("/", 1)[1]
    recs = [{"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
             "attributes": {"ApproximateReceiveCount": m.get("Attributes", {}).get("ApproximateReceiveCount", "1"),
                            "SentTimestamp": "1", "SenderId": "bench", "ApproximateFirstReceiveTimestamp": "1"},
             "messageAttributes": {}, "md5OfBody": m["MD5OfBody"], "eventSource": "aws:sqs",
             "eventSourceARN": arn, "awsRegion": REGION} for m in msgs]
    return msgs, recs


def drain(fn, sqs, url, batch, limit):
    """Invokes fn with SQS events of `batch` records until the queue is empty or `limit`
    records were handled; deletes what succeeded (as the event source mapping would)."""
    handled = failed = invocations = 0
    errors = []
    while handled < limit:
        msgs, recs = sqs_records(sqs, url, min(batch, limit - handled))
        if not recs:
            break
        kind, out = fn.api.invoke({"Records": recs}, fn.proc)
        invocations += 1
        bad = set()
        if kind == "response" and isinstance(out, dict):
            bad = {f.get("itemIdentifier") for f in out.get("batchItemFailures", [])}
        else:
            bad = {m["MessageId"] for m in msgs}
            errors.append(f"{kind}: {str(out)[:300]}")
        ok = [m for m in msgs if m["MessageId"] not in bad]
        for i in range(0, len(ok), 10):
            sqs.delete_message_batch(QueueUrl=url, Entries=[
                {"Id": str(j), "ReceiptHandle": m["ReceiptHandle"]} for j, m in enumerate(ok[i:i + 10])])
        # Failed records stay invisible for the queue's visibility timeout: not retried here.
        handled += len(msgs)
        failed += len(bad)
        if kind in ("exit", "timeout"):
            break
    note = f"{handled} records in {invocations} invocations of ≤ {batch}"
    if failed:
        note += f", {failed} failed ({errors[0] if errors else 'batchItemFailures'})"
    return handled, note


def workload(name, fn, ctx):
    """Runs the function's share of the batch; returns (did something?, note)."""
    sqs, prov, month = ctx["sqs"], ctx["prov"], ctx["month"]
    bs = ctx["batch_sizes"]

    def one(payload, describe):
        kind, out = fn.api.invoke(payload, fn.proc)
        if kind != "response":
            return True, f"{describe}: {kind} {str(out)[:300]}"
        return True, f"{describe}: {summarise(out)}"

    if name == "fetch-alerts":
        return one({"source": "mss.schedule", "detail-type": "fetch-alerts"}, "scheduled fetch")
    queues = {"classify": "classify_queue_url", "create-ticket": "ticket_queue_url",
              "investigate": "investigate_queue_url", "first-response": "respond_queue_url",
              "check-action": "check_queue_url"}
    if name in queues:
        url = prov.get(queues[name])
        if not url:
            return False, "no queue provisioned"
        limit = ctx["alerts"] if name != "investigate" else ctx["investigate_max"]
        n, note = drain(fn, sqs, url, bs.get(name, 10), limit)
        if n == 0:
            return False, "its queue was empty after the upstream steps"
        return True, note
    if name == "monthly-report":
        return one({"tenant": ctx["tenant"], "month": month}, f"draft of {month}")
    if name == "rerun":
        return one({"runs": {}}, "list failed and stuck work")
    if name == "track-inquiries":
        return one({"source": "mss.schedule"}, "scheduled pass (the simulator holds no inquiries)")
    if name == "activity-digest":
        return one({"source": "mss.schedule"}, "scheduled pass (no tenant has [log_analysis])")
    if name == "preflight":
        return one({"tenant": ctx["tenant"]}, "preflight of the tenant")
    return False, "no workload defined"


def summarise(out):
    if isinstance(out, dict):
        keep = {k: v for k, v in out.items() if isinstance(v, (int, str, bool)) and len(str(v)) < 60}
        s = json.dumps(keep, ensure_ascii=False)
        return s[:200]
    return str(out)[:200]


# ---- main ------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--functions", default=",".join(FUNCTIONS))
    ap.add_argument("--runs", type=int, default=5, help="measured starts per function (after one warm-up)")
    ap.add_argument("--alerts", type=int, default=1000)
    ap.add_argument("--investigate-max", type=int, default=20,
                    help="investigations to run (each is a hunting pack against the simulator)")
    ap.add_argument("--profile", default="release")
    ap.add_argument("--no-build", action="store_true", help="use the binaries already built")
    ap.add_argument("--no-arm64", action="store_true", help="skip the arm64 build and sizes")
    ap.add_argument("--no-workload", action="store_true", help="start times only")
    ap.add_argument("--extra-tenants", type=int, default=0,
                    help="more tenants for fetch-alerts to fetch (the fetch's scale: its RSS and time "
                         "with every tenant × product in one invocation)")
    ap.add_argument("--extra-tenant-alerts", type=int, default=2, help="alerts of each extra tenant")
    ap.add_argument("--json", help="write the results as JSON here")
    ap.add_argument("--md", help="write the markdown table here")
    args = ap.parse_args()
    fns = [f for f in args.functions.split(",") if f]
    for f in fns:
        if f not in FUNCTIONS:
            fail(f"unknown function {f} (functions/: {', '.join(FUNCTIONS)})")
    os.chdir(ROOT)
    arm_dir = os.path.join(TARGET, "lambda-bench", args.profile, "arm64")
    x86_dir = os.path.join(TARGET, "lambda-bench", args.profile, "x86_64")
    if not args.no_build:
        if not args.no_arm64:
            build(fns, "arm64", args.profile, arm_dir)
        build(fns, "x86-64", args.profile, x86_dir)
    results = {f: {"function": f} for f in fns}
    def binary(lambda_dir, triple, f):
        # cargo-lambda copies into --lambda-dir as <fn>/bootstrap; some versions leave the
        # binary where cargo put it only.
        b = os.path.join(lambda_dir, f, "bootstrap")
        return b if os.path.exists(b) else os.path.join(TARGET, triple, args.profile, f)

    for f in fns:
        a = binary(arm_dir, "aarch64-unknown-linux-gnu", f)
        x = binary(x86_dir, "x86_64-unknown-linux-gnu", f)
        results[f]["x86_64_path"] = x
        if os.path.exists(a) and not args.no_arm64:
            results[f]["arm64_bytes"], results[f]["arm64_stripped"] = elf_info(a)
        if not os.path.exists(x):
            fail(f"{x} is missing (run without --no-build)")
        results[f]["x86_64_bytes"], results[f]["x86_64_stripped"] = elf_info(x)

    # MSS_BIN: the debug mss of another target dir (the release builds may have their own).
    mss = os.environ.get("MSS_BIN") or os.path.join(TARGET, "debug", "mss")
    if not os.path.exists(mss):
        fail(f"{mss} is missing: cargo build -p mss first")
    endpoint = os.environ.get("MSS_TEST_AWS_ENDPOINT")
    moto = None
    if not endpoint:
        # Its own moto process (not scripts/moto-server.sh's shared one), ended at the end.
        venv = os.environ.get("MSS_VENV") or os.path.join(ROOT, ".venv")
        port = free_port()
        moto = subprocess.Popen([os.path.join(venv, "bin", "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        endpoint = f"http://127.0.0.1:{port}"
        wait_port(port, moto, "moto_server")
        log(f"moto at {endpoint} (started here)")
    import boto3  # noqa: E402  (from .venv, with moto)

    work = tempfile.mkdtemp(prefix="mss-bench-lambda-")
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    procs = []
    try:
        sc_path, cfg, avg_bytes = scenario(work, mss, args.alerts, now, args.extra_tenants, args.extra_tenant_alerts)
        log(f"scenario: {args.alerts} alerts of {avg_bytes} bytes on average (JSON)"
            + (f"; {args.extra_tenants} more tenants with {args.extra_tenant_alerts} alerts each"
               if args.extra_tenants else ""))
        tenant = cfg["id"]
        sim_port = free_port()
        ca = os.path.join(work, "ca.pem")
        sim = subprocess.Popen([mss, "sim", "serve", "--scenario", sc_path, "--listen", f"127.0.0.1:{sim_port}",
                                "--ca-out", ca], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        procs.append(sim)
        info = read_json_object(sim.stdout)
        name = f"bench-{os.getpid()}"
        aws_env = dict(os.environ, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_REGION=REGION)
        prov = json.loads(run([mss, "cloud", "provision-emulator", "--endpoint-url", endpoint, "--name", name], env=aws_env))
        run([mss, "tenant", "put", TENANT_TOML, "--table", prov["table"], "--endpoint-url", endpoint], env=aws_env)
        sm = boto3.client("secretsmanager", endpoint_url=endpoint, region_name=REGION,
                          aws_access_key_id="test", aws_secret_access_key="test")
        t = next(x for x in info["tenants"] if x["id"] == tenant)
        # As deployed by default (TenantCredentials=parameterstore).
        ssm = boto3.client("ssm", endpoint_url=endpoint, region_name=REGION,
                           aws_access_key_id="test", aws_secret_access_key="test")
        ssm.put_parameter(Name=f"/{name}/azure/{tenant}", Type="SecureString", Value=json.dumps(
            {"azure_tenant_id": t["azure_tenant_id"], "client_id": t["client_id"], "client_secret": t["client_secret"]}))
        for i in range(1, args.extra_tenants + 1):
            x_id = extra_tenant({}, i)["id"]
            x_toml = os.path.join(work, f"{x_id}.toml")
            with open(x_toml, "w", encoding="utf-8") as f:
                f.write(extra_tenant_toml(i))
            run([mss, "tenant", "put", x_toml, "--table", prov["table"], "--endpoint-url", endpoint], env=aws_env)
            xt = next(x for x in info["tenants"] if x["id"] == x_id)
            ssm.put_parameter(Name=f"/{name}/azure/{x_id}", Type="SecureString", Value=json.dumps(
                {"azure_tenant_id": xt["azure_tenant_id"], "client_id": xt["client_id"],
                 "client_secret": xt["client_secret"]}))
            if i % 100 == 0:
                log(f"{i} of {args.extra_tenants} extra tenants put")
        sm.create_secret(Name=f"{name}/opsramp", SecretString=json.dumps(
            {"client_id": info["opsramp_client_id"], "client_secret": info["opsramp_client_secret"]}))
        sqs = boto3.client("sqs", endpoint_url=endpoint, region_name=REGION,
                           aws_access_key_id="test", aws_secret_access_key="test")
        env = dict(aws_env, AWS_LAMBDA_FUNCTION_VERSION="1", AWS_LAMBDA_FUNCTION_MEMORY_SIZE="128",
                   AWS_ENDPOINT_URL=endpoint, MSS_TABLE=prov["table"], MSS_BUCKET=prov["bucket"],
                   MSS_OPSRAMP_BASE_URL=info["opsramp"], MSS_OPSRAMP_TENANT_ID=info["opsramp_tenant_id"],
                   MSS_SECRETS_PREFIX=f"{name}/", MSS_TENANT_CREDENTIALS="parameterstore",
                   MSS_GRAPH_BASE=info["graph"],
                   MSS_AUTHORITY_HOST=info["authority_host"], MSS_EXTRA_CA_FILE=ca, RUST_LOG="info",
                   # as template.yaml sets it for fetch-alerts (the others do not read it)
                   MSS_FETCH_CONCURRENCY="64")
        for k, e in [("classify_queue_url", "MSS_CLASSIFY_QUEUE_URL"), ("ticket_queue_url", "MSS_TICKET_QUEUE_URL"),
                     ("investigate_queue_url", "MSS_INVESTIGATE_QUEUE_URL"), ("respond_queue_url", "MSS_RESPOND_QUEUE_URL"),
                     ("check_queue_url", "MSS_CHECK_QUEUE_URL"), ("classify_dlq_url", "MSS_CLASSIFY_DLQ_URL"),
                     ("ticket_dlq_url", "MSS_TICKET_DLQ_URL")]:
            if prov.get(k):
                env[e] = prov[k]
        if "graph_beta" in info:
            env["MSS_GRAPH_BETA_BASE"] = info["graph_beta"]
        logdir = os.path.join(work, "logs")
        os.makedirs(logdir)
        ctx = {"sqs": sqs, "prov": prov, "month": (now + dt.timedelta(hours=9)).strftime("%Y-%m"),
               "batch_sizes": batch_sizes(), "alerts": args.alerts, "investigate_max": args.investigate_max,
               "tenant": tenant}

        for f in [x for x in ORDER if x in fns] + [x for x in fns if x not in ORDER]:
            binary = results[f]["x86_64_path"]
            r = results[f]
            # Start time: one warm-up start (page cache), then --runs measured ones.
            starts, why = [], None
            for i in range(args.runs + 1):
                fn = Function(f, binary, env, logdir)
                s, why = fn.wait_polled()
                fn.stop()
                if s is None:
                    break
                if i > 0:
                    starts.append(s * 1000)
            if starts:
                r["start_ms_median"] = round(statistics.median(starts), 1)
                r["start_ms_runs"] = [round(s, 1) for s in starts]
            else:
                r["start_error"] = why
                log(f"{f}: {why}")
                continue
            # Memory: one more start, then its share of the batch.
            fn = Function(f, binary, env, logdir)
            s, why = fn.wait_polled()
            if s is None:
                r["rss_error"] = why
                fn.stop()
                continue
            time.sleep(0.05)
            st = proc_status(fn.proc.pid)
            r["rss_init_bytes"] = st.get("VmHWM")
            if not args.no_workload:
                t0 = time.time()
                did, note = workload(f, fn, ctx)
                st = proc_status(fn.proc.pid)
                r["workload"] = note
                r["workload_s"] = round(time.time() - t0, 1)
                if did:
                    r["rss_batch_bytes"] = st.get("VmHWM")
                if fn.proc.poll() is not None:
                    r["workload"] += f" (process exited {fn.proc.returncode}: {fn.log_tail(300)})"
            fn.stop()
            log(f"{f}: start {r.get('start_ms_median')} ms, RSS init {mb(r.get('rss_init_bytes'))} MB, "
                f"after batch {mb(r.get('rss_batch_bytes'))} MB — {r.get('workload', '')}")
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        if moto is not None:
            moto.terminate()
            try:
                moto.wait(timeout=10)
            except subprocess.TimeoutExpired:
                moto.kill()
        shutil.rmtree(work, ignore_errors=True)

    report = {
        "date": now.isoformat(), "profile": args.profile, "alerts": args.alerts, "runs": args.runs,
        "alert_bytes_avg": avg_bytes,
        "note": ("start and RSS measured on the x86_64 build of the same profile (this machine is "
                 "x86_64; the arm64 binaries cannot run here without emulation); sizes of both"),
        "host": os.uname().machine, "cpus": os.cpu_count(),
        "functions": [results[f] for f in fns],
    }
    md = markdown(report)
    print(md)
    if args.md:
        with open(args.md, "w", encoding="utf-8") as f:
            f.write(md + "\n")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2, ensure_ascii=False)
    else:
        print(json.dumps(report, indent=2, ensure_ascii=False))


def mb(b, d=1):
    return "–" if b is None else f"{b / 1e6:.{d}f}"


def markdown(rep):
    lines = [f"Profile `{rep['profile']}`, {rep['alerts']} alerts ({rep.get('alert_bytes_avg')} bytes of JSON each on average), "
             f"start = median of {rep['runs']} starts. "
             f"Note: {rep['note']}.", "",
             "| function | arm64 stripped (MB) | x86_64 (MB) | start (ms, median) | RSS after init (MB) | RSS after the batch (MB) | batch |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for r in rep["functions"]:
        start = r.get("start_ms_median")
        lines.append("| {} | {} | {} | {} | {} | {} | {} |".format(
            r["function"], mb(r.get("arm64_bytes"), 2), mb(r.get("x86_64_bytes"), 2),
            "–" if start is None else f"{start:.1f}", mb(r.get("rss_init_bytes")), mb(r.get("rss_batch_bytes")),
            (r.get("workload") or r.get("start_error") or r.get("rss_error") or "").replace("|", "/")))
    return "\n".join(lines)


if __name__ == "__main__":
    main()
