#!/usr/bin/env bash
# The device check in one command (see bench/device_check.py): reference check, train-step and data
# throughput, three minutes of real-width de Boer training -> device_check.json.
#
#   bench/device_check.sh [--smoke] [--out device_check.json]
#
# On a machine without network (the GPU machine), the packages its image lacks travel as wheels in
# .whl/ (bench/gather_wheels.sh fills it here) and are installed into /tmp/site first.
# PYTHON picks the interpreter (default python3).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ -d .whl ] && ! "$PYTHON" -c 'import ml_collections, librosa, soundfile' 2>/dev/null; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
exec "$PYTHON" bench/device_check.py "$@"
