#!/usr/bin/env bash
# Make the TF OD API reference venv (default /work/tfod_ref/venv; first argument overrides).
# A separate venv: the TF OD API never goes into the python that runs kdet and its tests.
# Needs only PyPI. See README.md beside this file.
set -euo pipefail

VENV="${1:-/work/tfod_ref/venv}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON="${PYTHON:-python3}"

"$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/pip" install --quiet)

# TensorFlow 2.21 with the Keras 2 API the TF OD API is written for (TF_USE_LEGACY_KERAS=1),
# and the libraries its model code imports.
# Pinned to the versions that made tests/data/tfod_reference/.
"${PIP[@]}" tensorflow-cpu==2.21.0 tf-keras==2.21.0 numpy==2.4.6 protobuf==7.36.2 \
  grpcio-tools==1.85.1 tf-slim==1.1.0 pycocotools==2.0.11 scipy==1.17.1 lxml==6.2.0 \
  contextlib2==21.6.0 gin-config==0.5.0 pandas==3.1.1 pyyaml==6.0.4 pillow==13.0.0 \
  matplotlib==3.11.2

# The TF OD API sdist (late-2022 research/object_detection + slim `nets`) and
# tf-models-official (the EfficientNet of EfficientDet, imported by model_builder) without
# their pinned dependencies: their pins (apache-beam, old pyyaml, tensorflow~=2.20, ...) do not
# install on Python 3.11 / TF 2.21 and are not needed to build models. tensorflow-io is imported
# by deepmac_meta_arch at module level; its native ops do not load on TF 2.21 (a warning), and
# nothing here uses them.
"${PIP[@]}" --no-deps tf-object-detection-api==0.1 tf-models-official==2.20.0 \
  tensorflow-io==0.37.1

# The sdist ships generated *_pb2.py but no .proto files: regenerate them from the descriptors
# they embed, with the protoc of grpcio-tools that matches the installed protobuf runtime.
"$VENV/bin/python" "$HERE/regenerate_pb2.py"

TF_USE_LEGACY_KERAS=1 "$VENV/bin/python" -c \
  "from object_detection.builders import model_builder; print('TF OD API model_builder imports')" \
  2>&1 | tail -n 1
