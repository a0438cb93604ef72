#!/usr/bin/env bash
# Runs every test of this repository on a fresh machine (Debian, Rust stable, Python 3, Node 20):
# installs the third-party test tools it needs (a local Secrets Manager API, MCP test clients,
# Node 22 for the conformance suite) into a cache, then runs
#   1. formatting and lints (cargo fmt --check, cargo clippy -D warnings)
#   2. unit and integration tests, including the ones that need moto_server (cargo test)
#   2b. the AWS deployment files, checked offline with the real tools (scripts/check-aws.sh: cfn-lint,
#      sam validate, actionlint, hadolint, botocore models, podman image build and run, cargo lambda)
#   3. third-party MCP clients against the real binary (tests/clients/run.sh): the official
#      Python `mcp` client in both protocol eras over HTTP and stdio, the MCP Inspector CLI, and
#      the official conformance suite's transport scenarios.
#   3b. the MCP App results view in headless Chromium (scripts/browser-test.sh; installs Debian's chromium).
#   4. a one-minute soak of the debug binary (bench/soak.py --ci; the 30-minute run is a documented command).
#   5. the README's "try it" commands, run as written against `dynatrace-mcp demo`.
# Usage: scripts/test.sh            (the tools cache defaults to .cache/tools; set DTMCP_TOOLS_DIR to move it)
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
step() { printf '\n==> %s (%ss)\n' "$*" "$(( $(date +%s) - started ))" >&2; }

step "installing test tools"
scripts/test-tools.sh python node lambda sam
# shellcheck disable=SC1091
source "${DTMCP_TOOLS_DIR:-.cache/tools}/env.sh"

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (the workspace; and the server as it ships: --no-default-features, no simulated tenant)"
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo clippy --locked --no-default-features --lib --bins -- -D warnings

step "cargo test (unit and integration, with moto_server; the simulated tenant's own route tests)"
cargo test --workspace --locked -- --include-ignored

step "AWS deployment files (scripts/check-aws.sh)" && scripts/check-aws.sh

step "third-party MCP clients against the binary"
cargo build --locked --bin dynatrace-mcp
tests/clients/run.sh target/debug/dynatrace-mcp

step "the MCP App results view in headless Chromium (fixtures, then real results from the demo server)"
scripts/browser-test.sh
scripts/browser-test.sh --demo target/debug/dynatrace-mcp

step "soak, the short version (bench/soak.py --ci: 1 minute at concurrency 16)"
python3 bench/soak.py --ci --out "$(mktemp -d)"

step "the README's commands, as written"
scripts/check-readme.sh target/debug/dynatrace-mcp

step "all tests passed"
