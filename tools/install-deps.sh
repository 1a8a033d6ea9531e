#!/usr/bin/env bash
# Installs what mxgate needs to build, run and test on Debian 12, and nothing
# that is already there. Idempotent; run as root (make run / make test do).
set -euo pipefail

PACKAGES=(
  # build
  cmake ninja-build g++ ccache pkg-config clang-format
  # libraries
  libasio-dev libssl-dev libtoml11-dev libfmt-dev libspdlog-dev liblmdb-dev zlib1g-dev libc-ares-dev
  libspf2-dev libopendkim-dev libopendmarc-dev libpsl-dev libidn2-dev publicsuffix libsodium-dev libcrypt-dev
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev libyaml-cpp-dev python3 python3-pytest python3-aiosmtpd swaks
  python3-dkim python3-nacl python3-dnspython opendkim-tools
  openssl lmdb-utils postfix
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing packages: ${missing[*]}" >&2
    echo "install-deps: run as root (or: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
  echo "install-deps: installing ${missing[*]}"
  # postfix is used only as a benchmark and test tool (smtp-source,
  # smtp-sink, a private instance): keep its package from configuring or
  # starting a system mail server.
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# The unprivileged user the daemon drops to when started as root.
if [ "$(id -u)" -eq 0 ] && ! getent passwd mxgate >/dev/null; then
  useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin mxgate
  echo "install-deps: created system user mxgate"
fi
