#!/usr/bin/env bash
# Installs the pinned AWS dev tools into the project-local virtualenv .venv/ (git-ignored),
# from PyPI, and checks that each one runs. Idempotent: a second run with the same pins only
# re-verifies (a few seconds). Fails loudly, naming what to install, if anything is missing or an
# install fails — it never skips a tool silently.
#
#   scripts/dev-tools.sh                  moto[server], cfn-lint, cargo-lambda (+ ziglang), websocket-client
#                                         and the Azure SDK models for scripts/arm_check.py (azure-mgmt-
#                                         securityinsight, azure-mgmt-applicationinsights) into .venv/, and Debian's chromium and
#                                         fonts-noto-cjk (apt-get, as root) for scripts/render_check.py
#                                         and the Node packages of scripts/node/ (the Kusto parser
#                                         for scripts/kql_check.js) into .venv/node/ with npm ci
#   scripts/dev-tools.sh --with-checkov   also checkov, in its own venv .venv/checkov/ (its pins of
#                                         boto3/botocore would downgrade moto's), linked as .venv/bin/checkov
#   scripts/dev-tools.sh --with-arm64     also `rustup target add aarch64-unknown-linux-gnu`, which
#                                         `cargo lambda build --arm64` and `sam build` need
#
# After it: export PATH="$PWD/.venv/bin:$PATH" makes `cargo lambda …`, `cfn-lint`, `moto_server`
# and `zig` available (cargo finds the cargo-lambda subcommand on PATH).
# Environment: MSS_VENV overrides the venv directory (default <repo>/.venv).
set -euo pipefail

# ---- pins (checked installable on CPython 3.11, 2026-11) -----------------------------------
MOTO_VERSION="5.2.5"          # moto[server]: the AWS API emulator (DynamoDB, SQS, S3, Secrets Manager)
CFN_LINT_VERSION="1.58.0"     # cfn-lint: CloudFormation/SAM linter
CARGO_LAMBDA_VERSION="1.9.2"  # cargo-lambda: the PyPI wheel ships the binary; it requires ziglang>=0.10
ZIGLANG_VERSION="0.17.1"      # ziglang: zig as a wheel, the cross-linker cargo-lambda build uses
CHECKOV_VERSION="3.3.30"      # checkov: IaC security scanner for template.yaml (--with-checkov; scripts/test.sh passes it)
WEBSOCKET_CLIENT_VERSION="1.9.2"  # websocket-client: scripts/render_check.py speaks the Chrome DevTools Protocol with it
AZURE_SECURITYINSIGHT_VERSION="1.0.0"   # azure-mgmt-securityinsight: Sentinel API models for scripts/arm_check.py
AZURE_APPINSIGHTS_VERSION="4.1.0"       # azure-mgmt-applicationinsights: workbook API models for scripts/arm_check.py
PINS="moto[server]==${MOTO_VERSION} cfn-lint==${CFN_LINT_VERSION} cargo-lambda==${CARGO_LAMBDA_VERSION} ziglang==${ZIGLANG_VERSION} websocket-client==${WEBSOCKET_CLIENT_VERSION} azure-mgmt-securityinsight==${AZURE_SECURITYINSIGHT_VERSION} azure-mgmt-applicationinsights==${AZURE_APPINSIGHTS_VERSION}"
# Debian packages for the report render check (scripts/render_check.py runs /usr/bin/chromium
# headless; fonts-noto-cjk gives it Japanese glyphs). Debian's own versions, not pinned here.
APT_PACKAGES="chromium fonts-noto-cjk"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MSS_VENV:-$ROOT/.venv}"
WITH_CHECKOV=0
WITH_ARM64=0
for arg in "$@"; do
  case "$arg" in
    --with-checkov) WITH_CHECKOV=1 ;;
    --with-arm64) WITH_ARM64=1 ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "dev-tools: unknown argument '$arg' (see --help)" >&2; exit 2 ;;
  esac
done

die() {
  echo "" >&2
  echo "dev-tools: ERROR: $*" >&2
  exit 1
}
say() { echo "dev-tools: $*"; }

# ---- prerequisites ---------------------------------------------------------------------------
command -v python3 >/dev/null 2>&1 \
  || die "python3 not found. Install CPython >= 3.9 with pip and venv (Debian: apt-get install python3 python3-venv python3-pip)."
python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 9) else 1)' \
  || die "python3 is $(python3 -V 2>&1); these pins need >= 3.9 (3.11 is what they were checked with)."
python3 -c 'import venv, ensurepip' 2>/dev/null \
  || die "python3 has no working venv/ensurepip module. Install it (Debian: apt-get install python3-venv)."

# ---- Debian packages (report render check) ----------------------------------------------------
command -v dpkg >/dev/null 2>&1 \
  || die "dpkg not found: this needs Debian (or Ubuntu) for: $APT_PACKAGES (scripts/render_check.py runs /usr/bin/chromium)."
missing_debs=""
for pkg in $APT_PACKAGES; do
  dpkg -s "$pkg" 2>/dev/null | grep -qx 'Status: install ok installed' || missing_debs="$missing_debs $pkg"
done
if [ -n "$missing_debs" ]; then
  if [ "$(id -u)" = 0 ]; then
    say "installing Debian packages:$missing_debs (apt-get, --no-install-recommends)"
    apt_start=$(date +%s)
    # shellcheck disable=SC2086
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing_debs; } \
      || die "apt-get install failed for:$missing_debs (needs Debian's package archive; rerun to retry)."
    say "Debian packages installed in $(( $(date +%s) - apt_start ))s"
  else
    die "missing Debian packages:$missing_debs (the report render check needs them).
  Install them as root: apt-get update && apt-get install -y --no-install-recommends$missing_debs
  (or rerun this script as root, which does that)."
  fi
fi

# ---- the venv ----------------------------------------------------------------------------------
if [ -e "$VENV" ] && ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
  say "$VENV exists but its python does not run (moved or python upgraded): recreating it"
  rm -rf "$VENV"
fi
if [ ! -x "$VENV/bin/python" ]; then
  say "creating virtualenv $VENV"
  python3 -m venv "$VENV" || die "python3 -m venv $VENV failed (Debian: apt-get install python3-venv)."
fi
"$VENV/bin/python" -m pip --version >/dev/null 2>&1 \
  || die "pip is missing in $VENV (python3 -m ensurepip failed?). Install pip (Debian: apt-get install python3-pip) and remove $VENV."

PIP=("$VENV/bin/python" -m pip --disable-pip-version-check --no-input)
STAMP="$VENV/.dev-tools.pins"
start=$(date +%s)

# shellcheck disable=SC2086
if [ "$(cat "$STAMP" 2>/dev/null)" = "$PINS" ]; then
  say "pins unchanged since last install ($STAMP): verifying only"
else
  say "installing into $VENV: $PINS"
  # shellcheck disable=SC2086
  "${PIP[@]}" install $PINS \
    || die "pip install failed for: $PINS
  (needs the PyPI registry; rerun to retry. To start over: rm -rf $VENV)"
  "${PIP[@]}" check || die "pip check found broken requirements in $VENV (rm -rf $VENV and rerun)."
  "${PIP[@]}" freeze > "$VENV/dev-tools.freeze"
  echo "$PINS" > "$STAMP"
fi

# zig for cargo-zigbuild (inside cargo-lambda): it looks for `zig` on PATH, else `python3 -m
# ziglang`. A wrapper in .venv/bin makes it independent of which python3 is first on PATH.
cat > "$VENV/bin/zig" <<EOF
#!/bin/sh
exec "$VENV/bin/python" -m ziglang "\$@"
EOF
chmod +x "$VENV/bin/zig"

if [ "$WITH_CHECKOV" = 1 ]; then
  CK="$VENV/checkov"
  if [ -e "$CK" ] && ! "$CK/bin/python" -c 'import sys' >/dev/null 2>&1; then rm -rf "$CK"; fi
  if [ "$(cat "$CK/.pins" 2>/dev/null)" != "checkov==$CHECKOV_VERSION" ]; then
    say "installing checkov==$CHECKOV_VERSION into $CK (separate venv: it pins an older boto3)"
    [ -x "$CK/bin/python" ] || python3 -m venv "$CK" || die "python3 -m venv $CK failed."
    "$CK/bin/python" -m pip --disable-pip-version-check --no-input install "checkov==$CHECKOV_VERSION" \
      || die "pip install checkov==$CHECKOV_VERSION failed (rerun, or drop --with-checkov)."
    echo "checkov==$CHECKOV_VERSION" > "$CK/.pins"
  fi
  ln -sf "$CK/bin/checkov" "$VENV/bin/checkov"
fi

if [ "$WITH_ARM64" = 1 ]; then
  command -v rustup >/dev/null 2>&1 || die "--with-arm64 needs rustup (https://rustup.rs) to add aarch64-unknown-linux-gnu."
  if ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
    say "rustup target add aarch64-unknown-linux-gnu"
    rustup target add aarch64-unknown-linux-gnu \
      || die "rustup could not add aarch64-unknown-linux-gnu (needs the Rust dist server); build x86_64 with 'cargo lambda build --x86-64' instead."
  fi
fi

# ---- Node packages (scripts/kql_check.js) ----------------------------------------------------
# Pinned in scripts/node/package.json + package-lock.json (@kusto/language-service-next 12.4.1:
# Microsoft's Kusto.Language parser compiled to JavaScript; offline). npm ci installs exactly the
# lock into .venv/node/node_modules; rerun only when the lock changes.
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 \
  || die "node and npm not found: scripts/kql_check.js needs Node.js >= 18 (Debian: apt-get install nodejs npm)."
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 18 ? 0 : 1)' \
  || die "node is $(node --version); scripts/kql_check.js needs Node.js >= 18."
NODE_DIR="$VENV/node"
mkdir -p "$NODE_DIR"
if ! cmp -s "$ROOT/scripts/node/package-lock.json" "$NODE_DIR/package-lock.json" \
   || [ ! -f "$NODE_DIR/node_modules/@kusto/language-service-next/package.json" ]; then
  say "npm ci (scripts/node/) into $NODE_DIR"
  cp "$ROOT/scripts/node/package.json" "$ROOT/scripts/node/package-lock.json" "$NODE_DIR/"
  (cd "$NODE_DIR" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error) \
    || die "npm ci failed in $NODE_DIR (needs the npm registry; rerun to retry, or rm -rf $NODE_DIR)."
fi

# ---- verify each tool runs --------------------------------------------------------------------
verify() { # name, command...
  local name="$1"; shift
  local out
  if ! out="$("$@" 2>&1)"; then
    echo "$out" | tail -5 >&2
    die "$name is installed but does not run: '$*'. Remove $VENV and rerun this script."
  fi
  printf '  %-14s %s\n' "$name" "$(echo "$out" | head -1)"
}
say "verifying:"
verify cfn-lint "$VENV/bin/cfn-lint" --version
verify moto_server "$VENV/bin/moto_server" --help
verify moto "$VENV/bin/python" -c 'import moto, boto3; print("moto", moto.__version__, "boto3", boto3.__version__)'
verify cargo-lambda "$VENV/bin/cargo-lambda" lambda --version
verify zig "$VENV/bin/zig" version
verify websocket "$VENV/bin/python" -c 'import websocket; print("websocket-client", websocket.__version__)'
verify azure-models "$VENV/bin/python" -c 'from importlib.metadata import version as v; import azure.mgmt.securityinsight.models, azure.mgmt.applicationinsights.v2022_04_01.models; print("azure-mgmt-securityinsight", v("azure-mgmt-securityinsight"), "azure-mgmt-applicationinsights", v("azure-mgmt-applicationinsights"))'
verify kusto node -e 'const p = require(process.argv[1] + "/@kusto/language-service-next/package.json"); require(process.argv[1] + "/@kusto/language-service-next/bridge.js"); require(process.argv[1] + "/@kusto/language-service-next/Kusto.Language.Bridge.js"); console.log(p.name, p.version, "(node", process.version + ")")' "$NODE_DIR/node_modules"
# (the Debian wrapper /usr/bin/chromium prints a harmless shell warning on stderr: dropped here)
verify chromium sh -c '/usr/bin/chromium --version 2>/dev/null'
verify noto-cjk sh -c 'fc-list ":lang=ja" family | grep -m1 -x "Noto Sans CJK JP" || { echo "fontconfig has no Noto Sans CJK JP"; exit 1; }'
if command -v cargo >/dev/null 2>&1; then
  verify "cargo lambda" env PATH="$VENV/bin:$PATH" cargo lambda --version
else
  die "cargo not found: install Rust (https://rustup.rs); cargo-lambda is a cargo subcommand."
fi
if [ "$WITH_CHECKOV" = 1 ]; then
  verify checkov "$VENV/bin/checkov" --version
else
  printf '  %-14s %s\n' checkov "not requested (pass --with-checkov)"
fi
if [ "$WITH_ARM64" = 1 ]; then
  printf '  %-14s %s\n' rust-target "aarch64-unknown-linux-gnu installed"
fi

say "done in $(( $(date +%s) - start ))s. Tools are in $VENV/bin:"
for t in cfn-lint moto_server cargo-lambda zig checkov; do
  [ -e "$VENV/bin/$t" ] && echo "  $VENV/bin/$t"
done
say "use them with: export PATH=\"$VENV/bin:\$PATH\""
