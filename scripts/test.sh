#!/usr/bin/env bash
# The whole test suite: what the README calls "run all tests", and what CI runs.
# Fails loudly on anything missing; skips nothing silently.
set -euo pipefail
cd "$(dirname "$0")/.."

need() {
  command -v "$1" >/dev/null 2>&1 || { echo "error: '$1' is not installed — $2" >&2; exit 1; }
}
need cargo "install Rust with rustup (https://rustup.rs), toolchain 1.85 or newer"
need python3 "install Python 3.10+ (Debian: apt-get install python3 python3-venv)"

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export RUST_BACKTRACE=1

step() { printf '\n== %s\n' "$*"; }

step "dev tools (pinned, into .venv/: moto, cfn-lint, cargo-lambda, checkov)"
./scripts/dev-tools.sh --with-checkov
export PATH="$PWD/.venv/bin:$PATH"

# The AWS emulator for the cloud-shape tests; stopped however this script ends.
step "moto server"
MOTO_URL="$(./scripts/moto-server.sh start)"
trap './scripts/moto-server.sh stop >/dev/null 2>&1 || true' EXIT
export MSS_TEST_AWS_ENDPOINT="$MOTO_URL"
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=ap-northeast-1
echo "moto at $MOTO_URL"

# The scale benchmarks run moto with a cheaper TransactWriteItems rollback; it must still be
# all-or-nothing, or their figures would not be this system's.
step "benchmarks' moto (undo-log rollback) keeps transactions all-or-nothing"
.venv/bin/python scripts/check_moto_undo_log.py

step "SAM template (cfn-lint)"
cfn-lint template.yaml

# checkov's cloudformation framework also reads SAM (AWS::Serverless::Function, and the IAM role
# SAM makes of each function's Policies). Offline (--skip-download). Fails on any failed check,
# on a parse error, and on a skip without its justification (Metadata.checkov.skip[].comment).
step "SAM template (checkov, security checks of the infrastructure)"
mkdir -p target
checkov -f template.yaml --framework cloudformation --skip-download --compact -o json \
  > target/checkov.json || true
.venv/bin/python - <<'PY'
import json, sys
from cfnlint.decode import decode
d = json.load(open("target/checkov.json", encoding="utf-8"))
d = d[0] if isinstance(d, list) else d
s, r = d["summary"], d["results"]
bad = []
for c in r["failed_checks"]:
    bad.append(f"FAILED {c['check_id']} {c['resource']}: {c['check_name']}")
for c in r["skipped_checks"]:
    why = ((c.get("check_result") or {}).get("suppress_comment") or "").strip()
    if len(why) < 20:
        bad.append(f"SKIPPED WITHOUT A JUSTIFICATION {c['check_id']} {c['resource']}")
# Skips whose justification is a property of the resource: the property must be there.
resources = decode("template.yaml")[0]["Resources"]
premise = {
    "CKV_AWS_27": lambda p: p.get("SqsManagedSseEnabled") is True,  # SSE-SQS, not KMS
    "CKV_AWS_119": lambda p: (p.get("SSESpecification") or {}).get("SSEEnabled") is True,
}
for c in r["skipped_checks"]:
    name = c["resource"].split(".", 1)[1]
    check = premise.get(c["check_id"])
    if check and not check(resources[name].get("Properties", {})):
        bad.append(f"SKIP NO LONGER TRUE {c['check_id']} {c['resource']}: its justification says otherwise")
# Every function's log group exists and has a retention.
groups = {json.dumps(v["Properties"].get("LogGroupName")): v["Properties"]
          for v in resources.values() if v["Type"] == "AWS::Logs::LogGroup"}
for k, v in resources.items():
    if v["Type"] == "AWS::Serverless::Function":
        fn = v["Properties"].get("FunctionName", {})
        sub = {"Fn::Sub": "/aws/lambda/" + fn["Fn::Sub"]} if isinstance(fn, dict) and "Fn::Sub" in fn else None
        g = groups.get(json.dumps(sub))
        if not g or "RetentionInDays" not in g:
            bad.append(f"NO LOG GROUP WITH RETENTION for {k}")
if s.get("parsing_errors"):
    bad.append(f"{s['parsing_errors']} parsing error(s)")
if s["passed"] == 0:
    bad.append("checkov checked nothing")
for b in bad:
    print(b)
print(f"checkov: {s['passed']} passed, {s['failed']} failed, {s['skipped']} skipped"
      + (" (each justified)" if not bad else ""))
sys.exit(1 if bad else 0)
PY

step "KQL: every query parsed and analyzed by Microsoft's Kusto parser (scripts/kql_check.js)"
node scripts/kql_check.js

step "Sentinel ARM templates (the rendered snapshots) against the Azure SDK's API models (scripts/arm_check.py)"
.venv/bin/python scripts/arm_check.py

step "format"
cargo fmt --all -- --check

step "lint (clippy, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

start=$(date +%s)
step "tests"
cargo test --workspace --locked 2>&1 | tee target/test-output.txt
status=${PIPESTATUS[0]}
[ "$status" -eq 0 ] || { echo "tests failed" >&2; exit "$status"; }

# The fuzz crate is its own workspace (cargo fuzz needs nightly); on stable its tests replay
# the committed seed corpus, crash reproducers included, through every target's checks, and
# keep the targets compiling against the code they fuzz. Same target dir: dependencies reused.
step "fuzz targets: seed corpus replayed on stable (fuzz/)"
CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}" cargo test --manifest-path fuzz/Cargo.toml --locked 2>&1 \
  | tee -a target/test-output.txt
[ "${PIPESTATUS[0]}" -eq 0 ] || { echo "fuzz seed replay failed" >&2; exit 1; }

step "Lambda functions: cargo lambda build, real binaries behind the runtime API emulator"
.venv/bin/python scripts/lambda_smoke.py 2>&1 | tee target/lambda-smoke.txt
[ "${PIPESTATUS[0]}" -eq 0 ] || { echo "Lambda smoke test failed" >&2; exit 1; }

step "monthly report rendered in headless Chromium (overflow, missing glyphs; screenshot and PDF under target/)"
rm -rf target/report-demo target/report
target/debug/mss demo --state target/report-demo --json > target/report-demo.json
printf '今月は URL クリックの検知が増えました。\n定例会で対策をご説明します。\n' > target/report-comment.txt
target/debug/mss report --state target/report-demo --tenant kaede-shoji --month 2026-11 \
  --comment target/report-comment.txt --out target/report
.venv/bin/python scripts/render_check.py target/report/report.html \
  --png target/report-screenshot.png --json target/report-render.json 2>&1 | tee target/report-render.txt
[ "${PIPESTATUS[0]}" -eq 0 ] || { echo "report render check failed (see target/report-screenshot.png)" >&2; exit 1; }

# One closing line in the plain format CI reads, summed over every test binary.
python3 - <<'PY'
import re
passed = failed = ignored = 0
# The Lambda smoke run counts as one more passed test.
if "lambda smoke: ok" in open("target/lambda-smoke.txt", encoding="utf-8", errors="replace").read():
    passed += 1
# So does the report's render check.
if "no missing glyphs" in open("target/report-render.txt", encoding="utf-8", errors="replace").read():
    passed += 1
for line in open("target/test-output.txt", encoding="utf-8", errors="replace"):
    m = re.search(r"test result: \w+\. (\d+) passed; (\d+) failed; (\d+) ignored", line)
    if m:
        passed += int(m.group(1)); failed += int(m.group(2)); ignored += int(m.group(3))
if passed == 0:
    raise SystemExit("error: no test ran")
print(f"{passed} passed, {failed} failed, {ignored} skipped")
PY
echo "took $(( $(date +%s) - start )) s"
