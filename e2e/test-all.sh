#!/usr/bin/env bash
# The whole Sluice test suite: formatting, lints, unit/engine/known-answer
# tests, the Helm chart checks (lint, render, rendered-object checks), a
# bounded fuzz run of every fuzz target, the network-namespace
# end-to-end tests, and the real-client interoperability suite (stock pppd +
# pptp-linux, xl2tpd and strongSwan in qemu guests). This is what the README's test command and CI run.
# Needs root (network namespaces, TUN, raw GRE sockets, tap devices) and
# qemu-system-x86 + debootstrap (see .ci/run for the packages). The real-apiserver
# tier runs where test-only Kubernetes binaries are cached (e2e/kube/README.md) and
# prints a SKIPPED line elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZ_SECONDS=${FUZZ_SECONDS:-5}
# Each step's wall time is printed when the next starts, and all of them at the end,
# to keep an eye on CI's time budget.
T0=$SECONDS T_STEP=$SECONDS STEP_NAME="" TIMES=""
lap() {
  [ -n "$STEP_NAME" ] && TIMES+=$(printf '%6ds  %s' $((SECONDS - T_STEP)) "$STEP_NAME")$'\n'
  T_STEP=$SECONDS
}
step() { lap; STEP_NAME="$*"; printf '\n\033[1m==> %s\033[0m\n' "$*"; }
# The table also when a step fails (the failing step is the last line).
table() {
  local rc=$?
  lap
  printf '\nstep times:\n%s%6ds  total\n' "$TIMES" $((SECONDS - T0))
  if [ "$rc" -ne 0 ]; then
    printf 'FAILED in: %s\n' "$STEP_NAME"
    # Resource exhaustion looks like any other failure from here: show what was left.
    df -h . /tmp 2>/dev/null || true
    free -m 2>/dev/null || true
  fi
}
trap table EXIT

if [ "$(id -u)" -ne 0 ]; then
  echo "e2e/test-all.sh needs root (network namespaces, TUN, raw sockets); run it with sudo" >&2
  exit 2
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (deny warnings)"
cargo clippy --workspace --all-targets --release -- -D warnings

# --all-targets: the binaries, tests and examples in one build, with the features
# `cargo test` resolves (dev-dependencies included), so the test step below rebuilds
# nothing; the end-to-end steps use these binaries.
step "cargo build (release, all targets)"
cargo build --workspace --release --all-targets

# Quick failures first: the unit, known-answer and engine-pair tests run before the
# network and VM suites. Tests that need root are #[ignore]d (a plain `cargo test` stays
# honest about what it ran) and run here explicitly.
step "cargo test (unit, known-answer, engine-pair, robustness)"
cargo test --workspace --release

step "cargo test, root-only tests (network namespace, TUN, raw sockets)"
cargo test --workspace --release --test integration -- --ignored

step "Helm chart checks"
e2e/helm/check.sh

step "fuzz smoke run (${FUZZ_SECONDS}s per target)"
e2e/fuzz-smoke.sh "$FUZZ_SECONDS"

step "network-namespace end-to-end tests (PPTP)"
SLUICE_BIN="$PWD/target/release/sluice-dataplane" e2e/netns/pptp.sh

step "network-namespace end-to-end tests (L2TP)"
SLUICE_BIN="$PWD/target/release/sluice-dataplane" e2e/netns/l2tp.sh

step "network-namespace end-to-end tests (L2TP/IPsec, two clients behind one NAT)"
SLUICE_BIN="$PWD/target/release/sluice-dataplane" e2e/netns/ipsec.sh

step "client mode: Sluice dials Sluice, site to site (LAN routes both ways, server restart, wrong password, hitless reload, spoofing; netns)"
SLUICE_BIN="$PWD/target/release/sluice-dataplane" e2e/netns/site-to-site.sh

step "drain end-to-end (refuse new sessions, keep existing ones, exit when empty, netns)"
SLUICE_BIN="$PWD/target/release/sluice-dataplane" e2e/netns/drain.sh

step "per-user rate limits, per-user and setup-phase metrics (iperf3 through sessions, netns)"
SLUICE_BIN="$PWD/target/release/sluice-dataplane" e2e/netns/ratelimit.sh

step "latency under load: the receive queues' CoDel marks or drops under a standing queue (iperf3 CUBIC through a session, netns)"
SLUICE_BIN="$PWD/target/release/sluice-dataplane" e2e/netns/bufferbloat.sh

step "Grafana dashboard against real metrics (every panel's query through Prometheus, netns)"
SLUICE_BIN="$PWD/target/release/sluice-dataplane" OPERATOR_BIN="$PWD/target/release/sluice-operator" \
  e2e/netns/dashboard.sh

step "abuse suite: management endpoints, inner IPv6 spoofing, password guessing, PPTP floods, descriptor exhaustion (netns)"
SLUICE_BIN="$PWD/target/release/sluice-dataplane" e2e/netns/abuse.sh

step "abuse suite: spoofed IKE Main Mode flood vs a real L2TP/IPsec client (netns)"
SLUICE_BIN="$PWD/target/release/sluice-dataplane" e2e/netns/abuse-ike.sh

step "agent mode end-to-end (operator control channel + data-plane agent, netns)"
SLUICE_BIN="$PWD/target/release/sluice-dataplane" OPERATOR_BIN="$PWD/target/release/sluice-operator" \
  e2e/netns/agent.sh

step "real-apiserver tier (kube-apiserver + etcd + controller-manager: CRDs, schema rules, helm, operator, agents)"
SLUICE_BIN="$PWD/target/release/sluice-dataplane" OPERATOR_BIN="$PWD/target/release/sluice-operator" \
  CRDGEN_BIN="$PWD/target/release/crdgen" e2e/kube/run.sh

step "real-client interoperability suite (qemu guests)"
SLUICE_BIN="$PWD/target/release/sluice-dataplane" e2e/qemu/run.sh

