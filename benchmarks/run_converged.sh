#!/usr/bin/env bash
# The converged campaign in its pre-registered order (book/preregistration.md, second part):
# one one-thread process, seed by seed, alternating the arms, each seed in graph order, then each
# arm's whole graph: what is left of it are the trained curves of claim 6 (their task names carry
# no "-s<seed>/"), measured here from the checkpoints the runs left, so they never need weights
# from another machine. Run it from a clean checkout (a published store refuses a dirty tree);
# it resumes where it stopped.
#   bash benchmarks/run_converged.sh [ARMS...]      (default: converged-low-lr converged)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DATA=${DATA:-folder:data/cifar10-jpeg.tar.gz}
ARMS=("$@")
[ ${#ARMS[@]} -gt 0 ] || ARMS=(converged-low-lr converged)
for seed in 0 1 2 3 4; do
  for arm in "${ARMS[@]}"; do
    # a seed the arm does not have is skipped (arm 1 has seeds 0-4 since the amendment: 3-4 were
    # added after its registered seeds 0-2, book/preregistration.md).  The plan is read
    # whole before grep looks at it: `dry-run | grep -q` under pipefail fails whenever grep exits
    # before python has written everything (SIGPIPE), which skipped seeds 1 and 2 of arm 2 once.
    plan=$("$PY" -m needle_core sweep --profile "$arm" --set "dataset=$DATA" --dry-run)
    if grep -q -- "-s$seed/" <<< "$plan"; then
      "$PY" -m needle_core sweep --profile "$arm" --set "dataset=$DATA" --only "*-s$seed/*"
    fi
  done
done
for arm in "${ARMS[@]}"; do
  "$PY" -m needle_core sweep --profile "$arm" --set "dataset=$DATA"
done
