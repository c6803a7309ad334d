"""What the look-ahead audit's engine replay costs: the decision probe with and without it.

The audit recomputes each sampled decision with the future poisoned (the plugins rebuilt on the
poisoned bars) and, given the actions that led to it, also replays the decision's trade in an
environment built on those bars (:func:`exitcore.env.causality.replay_path`). This script
samples ``--decisions`` decisions of a random-init policy on an experiment's test split and
times :func:`exitcore.env.causality.probe_decisions` with and without the rows' action
histories, alternating ``--rounds`` times in one process (same machine load for both).
Run: ``python benchmarks/bench_audit_replay.py`` (``--help``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from bench_ppo_compute import cpu_model  # the benchmarks' one way to name the machine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiment", default="v4_no_lookahead")
    parser.add_argument("--decisions", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="also print the figures as one JSON line")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from exitcore.env.causality import probe_decisions
    from exitcore.evaluation.audit import make_rebuild, prepare, random_policy, sample_decision_paths
    from exitcore.evaluation.ledger import policy_actor
    from exitcore.experiments import load_experiments, resolve
    from exitcore.data.pipeline import load_bars
    from exitcore.plugins import PluginHost

    host = PluginHost.create()
    resolved = resolve(load_experiments(), args.experiment, host)
    bars = load_bars(resolved.config.data, host)
    assembled, pools = prepare(resolved, bars)
    policy = random_policy(assembled, 0)
    paths = sample_decision_paths(assembled, pools["test"], policy_actor(policy), args.decisions, 0)
    rows, histories = [row for row, _ in paths], [h for _, h in paths]
    steps = sum(len(h) for h in histories)
    rebuild = make_rebuild(assembled)

    times: dict[str, list[float]] = {"without replay": [], "with replay": []}
    for _ in range(args.rounds):
        for name, given in (("without replay", None), ("with replay", histories)):
            start = time.perf_counter()
            leaks = probe_decisions(assembled, rows, rebuild, histories=given)
            times[name].append(time.perf_counter() - start)
            if leaks:
                raise SystemExit(f"{args.experiment} is not causal here: {leaks[0]}")
    print(f"{cpu_model()}, torch {torch.__version__}, {args.threads} thread(s); "
          f"{args.experiment}: {len(rows)} decisions, {steps} replayed steps per poisoning")
    for name, values in times.items():
        print(f"  {name:15s} median {statistics.median(values):.2f} s  ({', '.join(f'{v:.2f}' for v in values)})")
    ratio = statistics.median(times["with replay"]) / statistics.median(times["without replay"])
    print(f"  with / without  {ratio:.2f}x")
    if args.json:
        print(json.dumps({"experiment": args.experiment, "decisions": len(rows), "replayed_steps": steps,
                          "threads": args.threads, "machine": cpu_model(),
                          **{name.replace(" ", "_"): statistics.median(v) for name, v in times.items()}, "ratio": ratio}))


if __name__ == "__main__":
    main()
