#!/usr/bin/env bash
# The store benchmarks of docs/benchmarks.md, with this machine's raw limits measured in the
# same run so the ratios compare like with like. Output goes to stdout; takes about 10 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "# $(date -u +%Y-%m-%dT%H:%MZ) commit $(git rev-parse --short HEAD) on $(nproc) cores"
./scripts/machine-limits.sh
cargo bench -p apogee-store --bench append -- --noplot 2>&1 | grep -E "^append/|thrpt|group commit"
cargo bench -p apogee-store --bench read -- --noplot 2>&1 | grep -E "^read/|thrpt"
cargo bench -p apogee-store --bench index -- --noplot 2>&1 | grep -E "^index/|time:|thrpt"
./scripts/machine-limits.sh
