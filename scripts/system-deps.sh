#!/usr/bin/env bash
# Install the Debian packages the tests use, only when missing. Idempotent.
set -euo pipefail
need=()
# procps: `ps`/`pgrep` used by tests to prove no process is left behind.
command -v pgrep >/dev/null 2>&1 || need+=(procps)
# postgresql: the docproc store tests start a throwaway PostgreSQL server (initdb, pg_ctl).
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need+=(postgresql)
# iproute2: `ip netns`/veth/bridge for tests/netns/ and the rendered-pods test.
command -v ip >/dev/null 2>&1 || need+=(iproute2)
# prometheus: its `promtool check metrics` validates the real /metrics output.
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
# chromium: headless, driven by Playwright (executable path /usr/bin/chromium) in the
# dashboard and docproc UI tests; Playwright downloads no browser of its own.
[ -x /usr/bin/chromium ] || need+=(chromium)
# nginx-light: a program in C behind the sidecar (tests/integration/test_sidecar.py).
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
# openssl: the security tests check the issued certificate chains with the real binary.
command -v openssl >/dev/null 2>&1 || need+=(openssl)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "missing Debian packages: ${need[*]} (run: sudo apt-get install ${need[*]})" >&2
  exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
