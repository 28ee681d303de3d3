#!/usr/bin/env bash
# Downloads, here, the wheels of the packages sim-jax needs that the GPU machine's image lacks
# (it has jax[cuda], flax, optax, orbax, chex, numpy, scipy, scikit-learn, matplotlib, tqdm, absl-py,
# numba, msgpack, requests, ...; no network) into .whl/, for Python 3.12 on x86-64 Linux.
# bench/device_check.sh installs them there; for any other command, start it with
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
#
#   bench/gather_wheels.sh [PYTHON_VERSION]      # default 3.12
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-3.12}
PLATFORMS=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 \
         manylinux2014_x86_64 manylinux1_x86_64; do
  PLATFORMS+=(--platform "$p")
done
# ml_collections (configs); librosa and what it imports that the image lacks (audioread, decorator,
# pooch + platformdirs, soxr, soundfile + cffi + pycparser, standard-* modules are for 3.13+ only).
# The versions this project is tested with (requirements.txt bounds; the CPU venv's versions).
PACKAGES=(ml_collections==1.1.0 librosa==0.11.0 audioread==3.1.0 decorator==5.3.1 pooch==1.9.0
          platformdirs==4.14.9 soxr==1.1.0 soundfile==0.14.0 cffi==2.1.1 pycparser==3.12)
python3 -m pip download --no-deps --only-binary=:all: --python-version "$PY" --implementation cp \
  "${PLATFORMS[@]}" -d .whl "${PACKAGES[@]}"
ls -1 .whl
