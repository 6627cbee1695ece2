#!/usr/bin/env bash
# The test suite from a clean clone: install, lint, then unit, integration (real embedded stack)
# and end-to-end (a short real `harness run`) tests. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
.venv/bin/ruff check .
exec .venv/bin/python -m pytest --durations=15 "$@"  # the slowest tests, to keep the suite within 15 min
