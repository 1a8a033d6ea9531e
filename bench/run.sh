#!/usr/bin/env bash
# make bench: the micro-benchmarks, then the end-to-end load comparison.
set -euo pipefail
build=${1:-build}
cd "$(dirname "$0")/.."
echo "== micro-benchmarks ($build/bench/mxgate_bench)"
"$build/bench/mxgate_bench" --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
echo
echo "== end-to-end load (bench/load.sh)"
bash bench/load.sh --mxgate "$build/gateway/mxgate"
echo
echo "== end-to-end relay (bench/load.sh --relay)"
bash bench/load.sh --relay --mxgate "$build/gateway/mxgate"
