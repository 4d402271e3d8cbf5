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

step "dev tools (pinned, into .venv/: moto, cfn-lint, cargo-lambda)"
./scripts/dev-tools.sh
export PATH="$PWD/.venv/bin:$PATH"

# The AWS emulator for the cloud-shape tests; stopped however this script ends.
step "moto server"
MOTO_URL="$(./scripts/moto-server.sh start)"
trap './scripts/moto-server.sh stop >/dev/null 2>&1 || true' EXIT
export MSS_TEST_AWS_ENDPOINT="$MOTO_URL"
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=ap-northeast-1
echo "moto at $MOTO_URL"

step "SAM template (cfn-lint)"
cfn-lint template.yaml

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
