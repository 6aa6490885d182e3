"""Time every estimator x weighting (and SAW weighting alone) on synthetic reward batches.

    python scripts/bench/advantages.py [--repeats 50]

Prints median milliseconds per call at N = 2048, K = 2 (groups of 4) and N = 32768, K = 4
(groups of 8), float32 rewards in [-3, 3] with some flat groups.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import torch  # noqa: E402

from saw.algo.advantages import compute_advantages  # noqa: E402
from saw.algo.weighting import saw_weights  # noqa: E402


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, median of {args.repeats} calls")
    print(f"{'N':>6} {'K':>2} {'estimator':<11} {'weighting':<9} {'ms':>8}")
    for n, k, group in ((2048, 2, 4), (32768, 4, 8)):
        r = (torch.rand(n, k, generator=gen) * 6 - 3).round()
        r[: n // 4, 0] = 1.0  # a saturated reward on a quarter of the batch
        g = torch.arange(n) // group
        rmin = [-3.0] * k
        for est in ("grpo", "gdpo", "grpo_nostd"):
            for w in ("static", "saw"):
                ms = timed(lambda: compute_advantages(r, g, estimator=est, weighting=w, reward_min=rmin), args.repeats)
                print(f"{n:>6} {k:>2} {est:<11} {w:<9} {ms:>8.3f}")
        ms = timed(lambda: saw_weights(r, rmin), args.repeats)
        print(f"{n:>6} {k:>2} {'-':<11} {'saw only':<9} {ms:>8.3f}")


if __name__ == "__main__":
    main()
