#!/usr/bin/env bash
# Reproduces the README's load figures: the example gateway with the full
# tower-bulwark stack against a bare proxy with the same routes and no
# layer, over the same instances on loopback, in turns, median of the runs.
# Extra arguments go to the example (--duration, --clients, --rounds,
# --modes bare,stack,stack+cache).
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run --quiet --release --example loadtest -- "$@"
