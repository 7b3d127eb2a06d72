#!/usr/bin/env bash
# Bootstrap the machine, then run the demo (python -m amqp_core.demo); arguments go to the demo.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=tools/bootstrap.sh
source tools/bootstrap.sh
uv run --no-sync python -m amqp_core.demo "$@"
