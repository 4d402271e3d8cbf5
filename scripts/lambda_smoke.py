#!/usr/bin/env python3
"""Builds the Lambda functions with `cargo lambda build` and runs each real binary
behind cargo-lambda's Lambda runtime API emulator (`cargo lambda watch --only-lambda-apis`),
invoked with `cargo lambda invoke`, against moto (DynamoDB, SQS, S3, Secrets Manager) and the
project's HTTPS simulator (`mss sim serve`). Exits non-zero, saying what failed, on any
deviation. Called by scripts/test.sh; needs MSS_TEST_AWS_ENDPOINT and the tools from
scripts/dev-tools.sh on PATH.

Why a script and not a cargo test: it drives cargo itself (cargo lambda build/watch), which
must not run inside a cargo test that holds the build lock.
"""
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time

import boto3

import procs  # scripts/procs.py (the script's own directory is on sys.path)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENDPOINT = os.environ.get("MSS_TEST_AWS_ENDPOINT") or sys.exit("lambda_smoke: MSS_TEST_AWS_ENDPOINT is not set (run scripts/test.sh)")
# cargo's own rule: CARGO_TARGET_DIR when set, else target/ in the workspace.
TARGET = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
MSS = os.path.join(TARGET, "debug", "mss")
FUNCTIONS = ["fetch-alerts", "classify", "create-ticket", "investigate", "monthly-report", "rerun"]
AZ = "6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f"


def fail(msg):
    print(f"lambda_smoke: FAILED: {msg}", file=sys.stderr)
    sys.exit(1)


free_port = procs.free_port


def wait_port(port, proc, what, timeout=60):
    procs.wait_port(port, proc, what, fail, timeout)


def run(cmd, **kw):
    return procs.run(cmd, fail, **kw)


def main():
    t_start = time.time()
    os.chdir(ROOT)
    if not os.path.exists(MSS):
        fail(f"{MSS} is missing: run cargo build -p mss (scripts/test.sh does) first")

    print("cargo lambda build (x86_64, the machine's own architecture, so the binaries can run here)")
    t0 = time.time()
    run(["cargo", "lambda", "build", "--x86-64"] + sum([["--bin", f] for f in FUNCTIONS], []))
    bins = {f: os.path.join(TARGET, "lambda", f, "bootstrap") for f in FUNCTIONS}
    for f, b in bins.items():
        if not os.path.exists(b):
            fail(f"cargo lambda build made no {b}")
    print(f"  built in {time.time() - t0:.0f}s: " + ", ".join(f"{f} {os.path.getsize(b) / 1e6:.1f} MB" for f, b in bins.items()))

    work = tempfile.mkdtemp(prefix="mss-smoke-")
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    at = lambda m: (now - dt.timedelta(minutes=m)).strftime("%Y-%m-%dT%H:%M:%SZ")
    alerts = [
        {"id": "aa-smoke-1", "lastUpdateDateTime": at(50), "createdDateTime": at(50), "serviceSource": "microsoftDefenderForIdentity",
         "severity": "high", "status": "new", "title": "Suspected DCSync attack", "tenantId": AZ, "incidentId": "7001"},
        {"id": "aa-smoke-2", "lastUpdateDateTime": at(40), "createdDateTime": at(40), "serviceSource": "microsoftDefenderForIdentity",
         "severity": "medium", "status": "new", "title": "Account enumeration reconnaissance", "tenantId": AZ, "incidentId": "7001"},
    ]
    tenant_cfg = {"id": "kaede-shoji", "name": "楓商事株式会社", "azure_tenant_id": AZ, "products": ["mdi"], "mdi": {}}
    scenario = {"start": at(60), "end": at(0), "tenants": [{"config": tenant_cfg, "alerts": alerts}]}
    with open(os.path.join(work, "scenario.json"), "w") as f:
        json.dump(scenario, f)
    with open(os.path.join(work, "tenant.toml"), "w") as f:
        f.write('id = "kaede-shoji"\nname = "楓商事株式会社"\nazure_tenant_id = "%s"\nproducts = ["mdi"]\n[contacts]\nto = ["soc@kaede.example"]\n[mdi]\n' % AZ)

    procs = []
    try:
        sim_port = free_port()
        ca = os.path.join(work, "ca.pem")
        sim = subprocess.Popen([MSS, "sim", "serve", "--scenario", os.path.join(work, "scenario.json"),
                                "--listen", f"127.0.0.1:{sim_port}", "--ca-out", ca],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        procs.append(sim)
        wait_port(sim_port, sim, "mss sim serve")
        info = json.loads(_read_json(sim.stdout))

        name = f"smoke-{os.getpid()}"
        prov = json.loads(run([MSS, "cloud", "provision-emulator", "--endpoint-url", ENDPOINT, "--name", name]))
        run([MSS, "tenant", "put", os.path.join(work, "tenant.toml"), "--table", prov["table"], "--endpoint-url", ENDPOINT])
        sm = boto3.client("secretsmanager", endpoint_url=ENDPOINT, region_name="ap-northeast-1")
        t = info["tenants"][0]
        # The template's default (TenantCredentials=parameterstore): the tenant's Azure app as
        # a SecureString parameter; the OpsRamp client stays a Secrets Manager secret.
        ssm = boto3.client("ssm", endpoint_url=ENDPOINT, region_name="ap-northeast-1")
        ssm.put_parameter(Name=f"/{name}/azure/kaede-shoji", Type="SecureString", Value=json.dumps(
            {"azure_tenant_id": t["azure_tenant_id"], "client_id": t["client_id"], "client_secret": t["client_secret"]}))
        sm.create_secret(Name=f"{name}/opsramp", SecretString=json.dumps(
            {"client_id": info["opsramp_client_id"], "client_secret": info["opsramp_client_secret"]}))

        rt_port = free_port()
        watch = subprocess.Popen(["cargo", "lambda", "watch", "--only-lambda-apis", "-A", "127.0.0.1", "-P", str(rt_port)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        procs.append(watch)
        wait_port(rt_port, watch, "cargo lambda watch")

        fn_env = dict(os.environ,
                      AWS_LAMBDA_RUNTIME_API=f"http://127.0.0.1:{rt_port}/.rt",
                      AWS_LAMBDA_FUNCTION_VERSION="1", AWS_LAMBDA_FUNCTION_MEMORY_SIZE="128",
                      AWS_ENDPOINT_URL=ENDPOINT, MSS_TABLE=prov["table"], MSS_BUCKET=prov["bucket"],
                      MSS_CLASSIFY_QUEUE_URL=prov["classify_queue_url"], MSS_TICKET_QUEUE_URL=prov["ticket_queue_url"],
                      MSS_INVESTIGATE_QUEUE_URL=prov["investigate_queue_url"],
                      MSS_OPSRAMP_BASE_URL=info["opsramp"], MSS_OPSRAMP_TENANT_ID=info["opsramp_tenant_id"],
                      MSS_SECRETS_PREFIX=f"{name}/", MSS_TENANT_CREDENTIALS="parameterstore",
                      MSS_GRAPH_BASE=info["graph"], MSS_AUTHORITY_HOST=info["authority_host"],
                      MSS_EXTRA_CA_FILE=ca, RUST_LOG="info")
        sqs = boto3.client("sqs", endpoint_url=ENDPOINT, region_name="ap-northeast-1")

        def invoke(fn, payload, expect_error=False):
            """Start the function's real binary, invoke it once through the runtime API, stop it."""
            p = subprocess.Popen([bins[fn]], env=dict(fn_env, AWS_LAMBDA_FUNCTION_NAME=fn),
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            try:
                r = subprocess.run(["cargo", "lambda", "invoke", "_", "-A", "127.0.0.1", "-P", str(rt_port),
                                    "--output-format", "json", "--data-ascii", json.dumps(payload)],
                                   capture_output=True, text=True, timeout=120)
            finally:
                p.terminate()
                logs = p.communicate(timeout=10)[0]
            if expect_error:
                if r.returncode == 0:
                    fail(f"invoke {fn}: expected a function error, got {r.stdout}")
                return r.stdout + r.stderr, logs
            if r.returncode != 0:
                fail(f"invoke {fn} failed:\n{r.stdout}\n{r.stderr}\nfunction log:\n{logs[-3000:]}")
            return json.loads(r.stdout), logs

        def sqs_event(url):
            msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            return msgs, {"Records": [{
                "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1", "SenderId": "x", "ApproximateFirstReceiveTimestamp": "1"},
                "messageAttributes": {}, "md5OfBody": m["MD5OfBody"], "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:ap-northeast-1:123456789012:" + url.rsplit("/", 1)[1], "awsRegion": "ap-northeast-1"} for m in msgs]}

        out, logs = invoke("fetch-alerts", {"source": "mss.schedule", "detail-type": "fetch-alerts"})
        if out.get("new_versions") != 2:
            fail(f"fetch-alerts: expected 2 new alert versions, got {out}\n{logs[-2000:]}")
        for secret in (t["client_secret"], info["opsramp_client_secret"]):
            if secret in logs:
                fail("a secret reached the function's log")
        print(f"  fetch-alerts: {out['new_versions']} new versions classified, incidents queued")

        # The fetch classifies what it stores: nothing waits for classify, both incidents wait
        # for the ticket step.
        left = sqs.get_queue_attributes(QueueUrl=prov["classify_queue_url"],
                                        AttributeNames=["ApproximateNumberOfMessages"])
        if left["Attributes"]["ApproximateNumberOfMessages"] != "0":
            fail(f"classify queue holds messages after the fetch: {left['Attributes']}")
        msgs, ev = sqs_event(prov["ticket_queue_url"])
        if len(msgs) != 2:
            fail(f"ticket queue holds {len(msgs)} messages, expected 2")

        # classify serves operator reruns: the same two references through it, as
        # `rerun --from classify` queues them; it forwards both incidents again (harmless).
        out, _ = invoke("classify", ev)
        if out != {"batchItemFailures": []}:
            fail(f"classify: {out}")
        again, _ = sqs_event(prov["ticket_queue_url"])
        if len(again) != 2:
            fail(f"classify forwarded {len(again)} incidents to the ticket queue, expected 2")
        for m in again:
            sqs.delete_message(QueueUrl=prov["ticket_queue_url"], ReceiptHandle=m["ReceiptHandle"])
        print("  classify (a rerun's records): 2 records, no failures")

        out, _ = invoke("create-ticket", ev)
        if out != {"batchItemFailures": []}:
            fail(f"create-ticket: {out}")
        print("  create-ticket: 2 records, no failures")

        # The ticket step queued one investigation per alert; the report goes on the ticket.
        imsgs, iev = sqs_event(prov["investigate_queue_url"])
        if len(imsgs) != 2:
            fail(f"investigate queue holds {len(imsgs)} messages, expected 2")
        out, logs = invoke("investigate", iev)
        if out != {"batchItemFailures": []}:
            fail(f"investigate: {out}\n{logs[-2000:]}")
        for m in imsgs:
            sqs.delete_message(QueueUrl=prov["investigate_queue_url"], ReceiptHandle=m["ReceiptHandle"])
        ibody = json.loads(imsgs[0]["Body"])
        out, _ = invoke("investigate", {"tenant": ibody["tenant"], "alert_id": ibody["alert_id"], "last_update": ibody["last_update"]})
        if out.get("action") != "nothing_new" or out.get("version") != 1:
            fail(f"manual investigate rerun: expected nothing new on report version 1, got {out}")
        print(f"  investigate: 2 records, no failures; manual rerun on {out['ticket_id']}: {out['action']}")

        # A manual rerun of one alert: finds the ticket, repeats nothing.
        body = json.loads(msgs[0]["Body"])
        out, _ = invoke("create-ticket", {"tenant": body["tenant"], "alert_id": body["alert_id"], "last_update": body["last_update"]})
        if not str(out.get("ticket_id", "")).startswith("INC") or out.get("actions") != ["already_applied"]:
            fail(f"manual create-ticket rerun: {out}")
        print(f"  manual rerun: ticket {out['ticket_id']}, {out['actions']}")

        # The operator's rerun function: back onto the ticket queue, marked as a rerun; the
        # create-ticket function then finds the ticket and repeats nothing.
        out, logs = invoke("rerun", {"tenant": body["tenant"], "alert": body["alert_id"], "from": "ticket"})
        if out.get("queued") != 1 or out.get("queue") != "ticket":
            fail(f"rerun from ticket: {out}\n{logs[-2000:]}")
        rmsgs, rev = sqs_event(prov["ticket_queue_url"])
        if len(rmsgs) != 1 or json.loads(rmsgs[0]["Body"]).get("rerun") != "again":
            fail(f"rerun: expected one message marked rerun on the ticket queue, got {[m['Body'] for m in rmsgs]}")
        out, _ = invoke("create-ticket", rev)
        if out != {"batchItemFailures": []}:
            fail(f"create-ticket on the rerun message: {out}")
        sqs.delete_message(QueueUrl=prov["ticket_queue_url"], ReceiptHandle=rmsgs[0]["ReceiptHandle"])
        out, _ = invoke("rerun", {"runs": {}})
        if out.get("runs") != []:
            fail(f"rerun runs: expected nothing failed or stuck, got {out}")
        err, _ = invoke("rerun", {"tenant": body["tenant"], "alert": "da-does-not-exist", "from": "ticket"}, expect_error=True)
        if "has no stored alert" not in err:
            fail(f"rerun of a missing alert: expected a clear refusal, got {err}")
        print("  rerun: one message back on the ticket queue, handled without repeating; runs: none failed; a missing alert refused")

        # The monthly report of this month so far: a manual draft into S3 (SSE-S3), then the
        # operator's send (one OpsRamp service request), then a second send that does nothing.
        month = (now + dt.timedelta(hours=9)).strftime("%Y-%m")
        out, logs = invoke("monthly-report", {"tenant": "kaede-shoji", "month": month})
        if out.get("action") != "drafted":
            fail(f"monthly-report draft: {out}\n{logs[-2000:]}")
        s3 = boto3.client("s3", endpoint_url=ENDPOINT, region_name="ap-northeast-1")
        key = f"reports/kaede-shoji/{month}/report.html"
        head = s3.head_object(Bucket=prov["bucket"], Key=key)
        if head.get("ServerSideEncryption") != "AES256" or not head.get("ContentType", "").startswith("text/html"):
            fail(f"monthly-report: {key} has SSE {head.get('ServerSideEncryption')}, type {head.get('ContentType')}")
        out, logs = invoke("monthly-report", {"send": {"tenant": "kaede-shoji", "month": month}})
        if out.get("action") != "sent" or not str(out.get("service_request", "")).startswith("SRQ"):
            fail(f"monthly-report send: {out}\n{logs[-2000:]}")
        srq = out["service_request"]
        out, _ = invoke("monthly-report", {"send": {"tenant": "kaede-shoji", "month": month, "resend": False}})
        if out.get("action") != "already_sent" or out.get("service_request") != srq:
            fail(f"monthly-report second send: expected already_sent on {srq}, got {out}")
        print(f"  monthly-report: {month} drafted to s3://{prov['bucket']}/{key}, sent as {srq}, second send did nothing")
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
    print(f"lambda smoke: ok in {time.time() - t_start:.0f}s")


def _read_json(stream):
    """`mss sim serve` prints one pretty JSON object, then serves."""
    lines, depth = [], 0
    for line in stream:
        lines.append(line)
        depth += line.count("{") - line.count("}")
        if depth == 0 and lines and "}" in line:
            break
    return "".join(lines)


if __name__ == "__main__":
    main()
