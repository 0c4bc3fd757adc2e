# Sourced by scripts/demo.sh and scripts/test.sh: create or reuse a virtualenv with the pinned
# CPU torch, BasicSR 1.4.2 and this plugin, then activate it. An already-active virtualenv
# ($VIRTUAL_ENV) is used as it is. Set W2AMSN_TORCH_INDEX to a PyTorch wheel index (e.g.
# https://download.pytorch.org/whl/cu126) to install a CUDA build instead of the CPU one.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TORCH_VERSION="2.13.0"
TORCHVISION_VERSION="0.28.0"

if [[ -n "${VIRTUAL_ENV:-}" ]]; then
    VENV="$VIRTUAL_ENV"
else
    VENV="$REPO_ROOT/.venv"
    if [[ ! -x "$VENV/bin/python" ]]; then
        echo "[setup] creating $VENV"
        "${PYTHON:-python3}" -m venv "$VENV"
    fi
    # shellcheck disable=SC1091
    source "$VENV/bin/activate"
fi
PY="$VENV/bin/python"
# reinstall when the package description changes
STAMP="$VENV/.w2amsn-setup-$(cat "$REPO_ROOT/pyproject.toml" "$REPO_ROOT/setup.py" | cksum | cut -d' ' -f1)"
if [[ ! -f "$STAMP" ]] || ! "$PY" -c "import w2amsn_plugin" >/dev/null 2>&1; then
    echo "[setup] installing torch $TORCH_VERSION, BasicSR 1.4.2 and w2amsn-plugin into $VENV"
    PIP=("$PY" -m pip install --disable-pip-version-check)
    "${PIP[@]}" -q --upgrade pip setuptools wheel
    if [[ -n "${W2AMSN_TORCH_INDEX:-}" ]]; then
        "${PIP[@]}" "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION" --index-url "$W2AMSN_TORCH_INDEX"
    else
        "${PIP[@]}" "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION"
    fi
    # BasicSR's sdist declares setup_requires=torch: with build isolation pip would fetch a CUDA
    # torch (several GB) just to build it; build it against the torch installed above instead.
    "${PIP[@]}" -q cython numpy
    "${PIP[@]}" -q --no-build-isolation "basicsr==1.4.2"
    "${PIP[@]}" -q --no-build-isolation -e "$REPO_ROOT[test]"
    touch "$STAMP"
else
    echo "[setup] reusing $VENV (delete it to reinstall)"
fi
export PATH="$VENV/bin:$PATH"
