#!/usr/bin/env bash
# Generates a self-signed certificate for STARTTLS if none exists.
# Usage: tools/gen-cert.sh DIR [HOSTNAME]
# Production: use a real certificate (e.g. from your ACME client) and point
# tls.cert_file / tls.key_file at it.
set -euo pipefail
dir=${1:?usage: gen-cert.sh DIR [HOSTNAME]}
host=${2:-mx.example.test}
mkdir -p "$dir"
if [ -s "$dir/cert.pem" ] && [ -s "$dir/key.pem" ]; then exit 0; fi
openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=$host" \
  -addext "subjectAltName=DNS:$host,DNS:localhost,IP:127.0.0.1" \
  -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null
# Readable by the daemon's group, so a reload (SIGHUP) after the privilege
# drop can re-read it.
if getent group mxgate >/dev/null; then
  chgrp mxgate "$dir/key.pem" && chmod 640 "$dir/key.pem"
else
  chmod 600 "$dir/key.pem"
fi
echo "gen-cert: wrote self-signed certificate for $host to $dir"
