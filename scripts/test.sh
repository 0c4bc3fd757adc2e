#!/usr/bin/env bash
# Set up (or reuse) the virtualenv, then run the test suite. Extra arguments go to pytest,
# e.g. `bash scripts/test.sh -m slow` for the long real-training checks.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup_env.sh"
cd "$REPO_ROOT"
exec python -m pytest "$@"
