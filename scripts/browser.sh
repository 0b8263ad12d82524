#!/usr/bin/env bash
# The browser the tests and the AGP PDF need: Debian's chromium (Playwright drives it; its own
# browser download cannot work offline) and poppler-utils (pdftotext/pdftoppm check the PDF).
# Installs them with apt-get when missing; does nothing when they are there.
set -euo pipefail
missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v pdftoppm >/dev/null || missing+=(poppler-utils)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "missing ${missing[*]}; run: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
apt-get update -qq >/dev/null
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
