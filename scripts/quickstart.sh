#!/usr/bin/env bash
# The main job from a clean clone: install, start the embedded stack, run the default Scaling Reads
# comparison (about 4 minutes), print the verdicts and write results/scaling_reads/<run-id>/.
# Extra arguments go to `harness run`, e.g. `bash scripts/quickstart.sh --duration 10 --repeat 1`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec .venv/bin/harness run scaling_reads "$@"
