#!/usr/bin/env bash
# checkov, the infrastructure-as-code scanner, over deploy/aws, in a virtual environment of its own
# (.venv-checkov at the repository root: checkov pins many packages, so it stays out of .venv).
# The environment is made, and the pinned checkov installed, only when missing; when that is not
# possible (no package index) the script exits 3 saying so, and tests skip on it.
#   scripts/checkov.sh                 scan deploy/aws with deploy/aws/.checkov.yaml (make lint)
#   scripts/checkov.sh ARGS...         run checkov with these arguments instead
set -euo pipefail
cd "$(dirname "$0")/.."
version=3.3.30
venv=${GLUCOSESTREAM_CHECKOV_VENV:-.venv-checkov}
python=${PYTHON:-python3}

stamp="$venv/.installed-checkov-$version"
if [ ! -e "$stamp" ]; then
  # The stamp is written last: a failed or interrupted install is started again from scratch.
  rm -rf "$venv"
  if ! "$python" -m venv "$venv" \
    || ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --timeout 60 \
      "checkov==$version"; then
    rm -rf "$venv"
    echo "checkov.sh: cannot install checkov $version into $venv (is the package index reachable?)" >&2
    exit 3
  fi
  touch "$stamp"
fi

if [ $# -eq 0 ]; then
  set -- --directory deploy/aws --config-file deploy/aws/.checkov.yaml
fi
exec "$venv/bin/checkov" "$@"
