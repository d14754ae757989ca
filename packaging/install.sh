#!/usr/bin/env bash
# Install the appliance from this bundle without any network:
#   ./install.sh [PREFIX]        (default /opt/appliance; the command is PREFIX/bin/appliance)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
prefix=${1:-/opt/appliance}
python=${PYTHON:-python3}

"$python" -m venv "$prefix"
"$prefix/bin/python" -m pip install --quiet --no-index --find-links "$here/wheels" \
    --constraint "$here/constraints.txt" appliance
echo "installed $("$prefix/bin/appliance" --version) at $prefix/bin/appliance"
