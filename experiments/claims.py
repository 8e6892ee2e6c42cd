"""The paper's claims, checked: one table from evaluation folders (see metacurr/evaluation/claims.py).

    python experiments/claims.py runs/main/eval/default [runs/incremental] [--policy LABEL] [--methods heuristic]

For each claim of the dynamic-loss-rebalancing paper: the metric, uniform vs the heuristic vs the learned
policy (mean [95% CI] over the evaluated tasks and seeds), the paired difference against uniform and the
verdict (holds / does not / no evidence) by the rule printed above the table.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folders", nargs="+", help="evaluation folders (metacurr evaluate --out); for each metric the "
                                              "first folder that measured it is used")
    p.add_argument("--policy", help="the learned policy's controller label (default: the one policy:... in the runs)")
    p.add_argument("--methods", default="heuristic", help="comma list of rebalancing methods to test (default heuristic)")
    p.add_argument("--reference", default="uniform", help="the fixed-weight baseline (default uniform)")
    args = p.parse_args(argv)

    from metacurr.errors import ConfigError
    from metacurr.evaluation.claims import check_claims, claims_markdown, claims_sources

    try:
        rows, ctrls = check_claims(args.folders, tuple(m for m in args.methods.split(",") if m), args.policy,
                                   args.reference)
    except ConfigError as e:
        print(f"claims: error: {e}", file=sys.stderr)
        return 2
    names = {c: "learned policy" for c in ctrls if c.startswith(("policy:", "wandb:"))}
    print("Rule: paired difference method − uniform (same task and seed), 95% stratified bootstrap CI; "
          "**holds** = CI entirely on the claimed side of 0, **does not** = entirely on the other side, "
          "**no evidence** = CI includes 0 or the metric was not measured.\n")
    for line in claims_sources(rows):
        print(f"- {line}")
    if names:
        print(f"- learned policy = `{next(iter(names))}`")
    print()
    print(claims_markdown(rows, ctrls, names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
