#!/usr/bin/env bash
# Set up (or reuse) the virtualenv, then train and test W²AMSN on the real MR sample shipped in
# the repo (w2amsn demo, see w2amsn_plugin/commands/demo.py). Arguments go to the demo: --quick, --baselines, --data DIR, --workdir DIR.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup_env.sh"
cd "$REPO_ROOT"
exec w2amsn demo "$@"
