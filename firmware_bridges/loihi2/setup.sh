#!/usr/bin/env bash
# Create firmware_bridges/loihi2/.venv: Lava (lava-nc 0.10.0) on this Python 3.11 with numpy<2,
# beside the main runtime's numpy-2 .venv. Idempotent: a stamp records the inputs; rerun is a no-op.
#
# Why each step:
# - lava-nc 0.10.0 (its last release) declares Python <3.11 and numpy <2 but is pure Python, so it
#   installs with --no-deps --ignore-requires-python; its declared dependencies are installed
#   explicitly, pinned to what it asks for (numpy <2, scipy <2, networkx <=2.8.7, asteval <0.10,
#   scikit-learn <2).
# - On Python 3.11, dataclasses refuse an unhashable default: var_model.ByteEncoder (a mutable
#   dataclass used as a field default) makes `import lava.magma.compiler...` fail. patch_lava.py
#   gives the class a hash (unsafe_hash=True), idempotently, and checks the import afterwards.
# - The bridge imports edgesnn (bundle reader, Loihi quantiser, gRPC servicer, generated proto
#   code) from this checkout: a .pth file puts the repository on the path (same effect as
#   `pip install -e . --no-deps`, without rebuilding the runtime's C kernels for this venv).
#   grpcio/protobuf match the generated code in edgesnn/_proto (protobuf >=7.35.1).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
PYTHON="${PYTHON:-python3}"
VENV="$HERE/.venv"
STAMP="$VENV/.edgesnn-loihi2-installed"
REQS="$HERE/requirements.txt"
KEY="$(cat "$REQS" "$HERE/patch_lava.py" "$HERE/setup.sh" | sha256sum | cut -d' ' -f1)"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$KEY" ] && "$VENV/bin/python" -c "import lava.magma.compiler.compiler" 2>/dev/null; then
    exit 0
fi
echo "loihi2 bridge: setting up $VENV (lava-nc 0.10.0, numpy<2)"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -qq --upgrade pip
"$VENV/bin/python" -m pip install -qq -r "$REQS"
"$VENV/bin/python" -m pip install -qq --no-deps --ignore-requires-python lava-nc==0.10.0
"$VENV/bin/python" "$HERE/patch_lava.py"
SITE="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
echo "$ROOT" > "$SITE/edgesnn-checkout.pth"
"$VENV/bin/python" -c "import lava.magma.compiler.compiler, edgesnn._proto.edgesnn.v1.device_pb2, grpc_health, grpc_reflection"
echo "$KEY" > "$STAMP"
echo "loihi2 bridge: ready ($VENV)"
