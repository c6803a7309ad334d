"""How long a finished run's evaluation takes: the policy and baseline replays and the evaluators.

Re-evaluates the run in ``RUN_DIR`` (its frozen configuration, data and checkpoint) without the
look-ahead audit (``bench_audit_replay.py`` and ``exitcore audit RUN`` time that), ``--rounds``
times in one process, and prints the median; ``--results FILE`` writes the ``results.json`` it
computed, so two trees (the code before and after a change, run one after the other with
``PYTHONPATH``) can be checked for identical results. Run:
``python benchmarks/bench_evaluate.py RUN_DIR`` (``--help``).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import attrs
import torch
from bench_ppo_compute import cpu_model  # the benchmarks' one way to name the machine

from exitcore.assembly import assemble, split_pools
from exitcore.data.pipeline import load_bars
from exitcore.evaluation import jsonable, rundir
from exitcore.evaluation.evaluate import evaluate
from exitcore.plugins import PluginHost


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, help="a finished run's directory")
    parser.add_argument("--rounds", type=int, default=1, help="evaluations to time (default 1)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--results", type=Path, default=None, help="write the computed results.json here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    host = PluginHost.create()
    resolved = rundir.resolve_run(args.run_dir, host)
    bars = load_bars(resolved.config.data, host)
    assembled = assemble(resolved, bars)
    splits, pools = split_pools(assembled)
    policy, _ = rundir.load_policy(args.run_dir, resolved, assembled.components.obs_dim, "cpu")
    policy.eval()
    resolved = attrs.evolve(resolved, evaluators=tuple(e for e in resolved.evaluators if e.name != "lookahead_audit"))
    seconds = []
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        out = evaluate(assembled, resolved, policy, pools["valid"], splits, n_trials=1)
        seconds.append(time.perf_counter() - t0)
    print(f"{cpu_model()}, {len(bars):,} bars, {args.threads} thread(s): evaluation without the audit "
          f"{statistics.median(seconds):.2f} s (median of {args.rounds})")
    if args.results is not None:
        args.results.write_text(jsonable.dumps(out.results))


if __name__ == "__main__":
    main()
