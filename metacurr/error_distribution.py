"""How a trained model's errors spread over the classes: the paper's "error distribution balance".

Plain accuracy hides a model that is right on the frequent classes and wrong on the rare ones; on the
balanced target sets (``val``, ``shift``) these metrics show it:

- ``balanced_acc``: mean over classes of the per-class accuracy (recall), as
  ``sklearn.metrics.balanced_accuracy_score``;
- ``worst_class_acc``: the lowest per-class accuracy;
- ``class_error_spread``: highest minus lowest per-class error (= best minus worst class accuracy);
- ``per_class_acc``: the per-class accuracies (``None`` for a class absent from the set).

Classes absent from a set are left out of all of them. Every run summary carries them for ``val`` and
``shift`` (prefixed ``val_`` / ``shift_``; ``None`` when the curriculum has no shift set).
"""

from __future__ import annotations

import numpy as np
import torch

#: The scalar metrics (per set prefix) that results tables and reports show.
SCALAR_METRICS = ("balanced_acc", "worst_class_acc", "class_error_spread")
#: Summary keys of the scalar metrics, in table order.
SUMMARY_KEYS = tuple(f"{s}_{m}" for s in ("val", "shift") for m in SCALAR_METRICS)


def class_error_metrics(pred: np.ndarray, y: np.ndarray, n_classes: int) -> dict:
    """Per-class accuracy and its balance for predictions ``pred`` of labels ``y``.

    Args:
        pred, y: (N,) integer class predictions and true labels.
        n_classes: number of classes.

    Returns:
        dict with ``per_class_acc`` (list of ``n_classes``, ``None`` where a class has no example),
        ``balanced_acc``, ``worst_class_acc``, ``class_error_spread`` (``None`` when ``y`` is empty).
    """
    pred = np.asarray(pred, dtype=np.int64).reshape(-1)
    y = np.asarray(y, dtype=np.int64).reshape(-1)
    total = np.bincount(y, minlength=n_classes)
    correct = np.bincount(y[pred == y], minlength=n_classes)
    present = total > 0
    acc = correct[present] / total[present]
    per_class = [float(correct[c] / total[c]) if present[c] else None for c in range(n_classes)]
    if not present.any():
        return {"per_class_acc": per_class, "balanced_acc": None, "worst_class_acc": None,
                "class_error_spread": None}
    return {
        "per_class_acc": per_class,
        "balanced_acc": float(acc.mean()),
        "worst_class_acc": float(acc.min()),
        "class_error_spread": float(acc.max() - acc.min()),
    }


@torch.no_grad()
def predict(model: torch.nn.Module, x: torch.Tensor, chunk: int = 2048) -> np.ndarray:
    """Class predictions of ``model`` (in eval mode; its mode is restored) for inputs ``x``."""
    was_training = model.training
    model.eval()
    try:
        out = [model(x[i : i + chunk]).argmax(-1) for i in range(0, len(x), chunk)]
    finally:
        model.train(was_training)
    return torch.cat(out).cpu().numpy()


def error_distribution(model: torch.nn.Module, curriculum) -> dict:
    """The metrics of `class_error_metrics` on the curriculum's ``val`` and ``shift`` sets.

    Reads the model only (no gradient, no random draw), so adding these metrics to a run changes none
    of its other numbers.

    Returns:
        ``val_<metric>`` and ``shift_<metric>`` for every metric of `class_error_metrics`
        (``shift_*`` are ``None`` when the curriculum has no shift set).
    """
    out = {}
    for name, pair in (("val", curriculum.val), ("shift", curriculum.shift)):
        if pair is None:
            m = {"per_class_acc": None, **dict.fromkeys(SCALAR_METRICS)}
        else:
            m = class_error_metrics(predict(model, pair[0]), pair[1].cpu().numpy(), curriculum.n_classes)
        out.update({f"{name}_{k}": v for k, v in m.items()})
    return out
