#!/usr/bin/env bash
# Set up (or reuse) the virtualenv, then train and test W²AMSN on the real MR sample shipped in
# the repo (see w2amsn_plugin/demo.py). Arguments go to the demo: --quick, --data DIR, --workdir DIR.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup_env.sh"
cd "$REPO_ROOT"
exec python -m w2amsn_plugin.demo "$@"
