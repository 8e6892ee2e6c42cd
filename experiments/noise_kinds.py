"""Does down-weighting a noisy stage pay? It depends on the kind of label noise.

    python experiments/noise_kinds.py [--seeds 5]

MNIST-1D + MLP, 3 stages, the middle stage noisy: 35% *uniform* flips (a uniformly drawn other class)
or 60% *systematic* flips (y -> y + 1). Each is trained with three fixed stage mixes — uniform,
[0.45, 0.1, 0.45] and [0.49, 0.02, 0.49] — for 20 control steps x 10 inner steps, on training seeds
0..N-1 (never evaluation seeds). Prints the mean final val accuracy (clean val labels) with its
standard deviation over seeds. The README's "Tasks" section quotes this table: with uniform flips the
clean class stays the majority label and starving the stage only throws data away; with systematic
flips the stage teaches a wrong mapping and starving it pays.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

SETTINGS = (("uniform", 0.35), ("systematic", 0.6))
MIXES = ((1 / 3, 1 / 3, 1 / 3), (0.45, 0.1, 0.45), (0.49, 0.02, 0.49))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--control-steps", type=int, default=20)
    p.add_argument("--inner-steps", type=int, default=10)
    args = p.parse_args(argv)
    if not 1 <= args.seeds <= 10_000:
        p.error("--seeds must be in 1..10000 (training seeds)")

    import metacurr

    print("| noise on stage 1 | " + " | ".join("mix [" + ", ".join(f"{w:.2f}" for w in m) + "]" for m in MIXES) + " |")
    print("|---|" + "---|" * len(MIXES))
    for kind, rate in SETTINGS:
        cells = []
        for mix in MIXES:
            accs = [
                metacurr.train("mnist1d", arch="mlp", controller="best-static", controller_kwargs={"weights": list(mix)},
                               seed=seed, control_steps=args.control_steps, inner_steps=args.inner_steps,
                               params={"label_noise": [0.0, rate, 0.0], "noise_kind": kind,
                                       "noise_max": 0.25, "translation_max": 36})["final_val_acc"]
                for seed in range(args.seeds)
            ]  # fmt: skip
            cells.append(f"{np.mean(accs):.3f} ± {np.std(accs):.3f}")
        print(f"| {rate:.0%} {kind} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
