"""The alert-scoring model: a gradient-boosted tree classifier trained on seeded synthetic histories.

Training (:func:`train`) generates histories (:mod:`~exchange_framework.compliance.monitoring.synthetic`), runs the
real :class:`~exchange_framework.compliance.monitoring.monitor.Monitor` over them, labels each alert by whether its
account took part in an illicit typology, and fits scikit-learn's ``HistGradientBoostingClassifier`` on the alerts'
features. It is evaluated on a separately seeded held-out set: precision and recall at the 0.5 cut, and PR-AUC
(average precision), next to the precision of the rules alone (every alert flagged).

The artefact is two files: ``model.skops`` (skops' format: a zip of JSON and numpy arrays, loaded without pickle
and only with an allow-list of scikit-learn types) and ``model.json`` (version, seed, feature list, metrics, the
library versions and the SHA-256 of ``model.skops``). :func:`load` refuses a model whose version or feature list is
not this code's, or whose checksum does not match. Trust model: the artefact is code-reviewed data committed with the
repository; skops refuses any type outside the allow-list, so a swapped file cannot run code, and the checksum makes
an accidental or partial change fail closed.
"""

from __future__ import annotations

import hashlib
import json
import random
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exchange_framework.compliance.monitoring.features import FEATURES
from exchange_framework.compliance.monitoring.monitor import Monitor
from exchange_framework.compliance.monitoring.rules import Rule
from exchange_framework.compliance.monitoring.synthetic import MARKETS, PARAMS, SyntheticHistory, generate

__all__ = [
    "DEFAULT_MODEL_DIR",
    "MODEL_VERSION",
    "ModelError",
    "ScoringModel",
    "dataset",
    "load",
    "save",
    "train",
]

MODEL_VERSION = "tm-hgb-1"  # bump when features, labels or training change meaning
DEFAULT_MODEL_DIR = Path(__file__).parent / "models"
MODEL_FILE = "model.skops"
META_FILE = "model.json"
HELD_OUT_SEED_OFFSET = 1_000_003
# the only types the artefact may contain (skops refuses anything else)
TRUSTED_TYPES = [
    "sklearn._loss.link.Interval",
    "sklearn._loss.link.LogitLink",
    "sklearn._loss.loss.HalfBinomialLoss",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn._loss._loss.CyHalfBinomialLoss",
]


class ModelError(ValueError):
    """A model artefact is missing, corrupt, or does not match this code's version or features; retrain it."""


_controller: Any = None


def _one_thread() -> Any:
    global _controller
    if _controller is None:
        from threadpoolctl import ThreadpoolController  # installed with scikit-learn

        _controller = ThreadpoolController()
    return _controller.limit(limits=1, user_api="openmp")


@dataclass
class ScoringModel:
    """A trained classifier with its metadata; :meth:`score` gives the probability that an alert is a true hit."""

    classifier: Any  # sklearn.ensemble.HistGradientBoostingClassifier (untyped library)
    metadata: dict[str, Any]

    def score(self, features: Sequence[float]) -> float:
        """The probability (0..1) that the alert with ``features`` (ordered as FEATURES) is a true typology."""
        import numpy as np

        row = np.asarray([features], dtype=np.float64)
        # One row: starting OpenMP threads costs ~20x the prediction itself (measured 25 ms vs 1 ms per alert).
        with _one_thread():
            return float(self.classifier.predict_proba(row)[0, 1])

    def scores(self, rows: Sequence[Sequence[float]]) -> list[float]:
        """Score many feature rows at once."""
        import numpy as np

        if not rows:
            return []
        return [float(p) for p in self.classifier.predict_proba(np.asarray(rows, dtype=np.float64))[:, 1]]


def dataset(history: SyntheticHistory) -> tuple[list[tuple[float, ...]], list[int]]:
    """Run the monitor over ``history``; return each alert's features and label (1: its account is illicit)."""
    monitor = Monitor(MARKETS, PARAMS)
    alerts = monitor.feed(history.batches)
    return [a.features for a in alerts], [int(history.illicit(a.account)) for a in alerts]


def train(seed: int = 7, customers: int = 4_000, *, shuffle_labels: bool = False) -> ScoringModel:
    """Train on ``customers`` synthetic customers generated with ``seed``; evaluate on a held-out set.

    ``shuffle_labels`` permutes the training labels (a control: the held-out scores must collapse).
    """
    from sklearn.ensemble import HistGradientBoostingClassifier

    x, y = dataset(generate(seed, customers))
    if len(set(y)) < 2:
        raise ModelError("the generated training set has one class only: generate more customers")
    if shuffle_labels:
        random.Random(seed).shuffle(y)
    classifier = HistGradientBoostingClassifier(
        max_iter=80, learning_rate=0.1, max_leaf_nodes=8, min_samples_leaf=20, random_state=seed
    )
    classifier.fit(x, y)
    held_out_seed = seed + HELD_OUT_SEED_OFFSET
    hx, hy = dataset(generate(held_out_seed, max(200, customers // 2)))
    model = ScoringModel(classifier, {})
    held_out_scores = model.scores(hx)
    metrics: dict[str, Any] = evaluate(held_out_scores, hy)
    metrics["per_rule"] = {}
    for rule in Rule:
        column = FEATURES.index(f"rule_{rule.value}")
        picked = [i for i, row in enumerate(hx) if row[column] == 1.0]
        labels = [hy[i] for i in picked]
        if picked and 0 < sum(labels) < len(labels):
            metrics["per_rule"][rule.value] = evaluate([held_out_scores[i] for i in picked], labels) | {
                "alerts": len(picked)
            }
    model.metadata = {
        "version": MODEL_VERSION,
        "features": list(FEATURES),
        "seed": seed,
        "customers": customers,
        "held_out_seed": held_out_seed,
        "train_alerts": len(y),
        "train_positive": sum(y),
        "held_out_alerts": len(hy),
        "held_out_positive": sum(hy),
        "shuffled_labels": shuffle_labels,
        "metrics": metrics,
        "params": {k: v for k, v in classifier.get_params().items() if isinstance(v, int | float | str)},
    }
    return model


def evaluate(scores: Sequence[float], labels: Sequence[int], cut: float = 0.5) -> dict[str, Any]:
    """Precision, recall (at ``cut``), PR-AUC (average precision) and the rules-only precision."""
    from sklearn.metrics import average_precision_score, precision_score, recall_score

    predicted = [int(s >= cut) for s in scores]
    return {
        "precision": round(float(precision_score(labels, predicted, zero_division=0)), 4),
        "recall": round(float(recall_score(labels, predicted, zero_division=0)), 4),
        "pr_auc": round(float(average_precision_score(labels, scores)), 4),
        "rules_only_precision": round(sum(labels) / len(labels), 4) if labels else 0.0,
        "cut": cut,
    }


def save(model: ScoringModel, out: str | Path = DEFAULT_MODEL_DIR) -> Path:
    """Write ``model.skops`` and ``model.json`` (with the checksum) into ``out``; return the directory."""
    import sklearn
    import skops
    import skops.io

    directory = Path(out)
    directory.mkdir(parents=True, exist_ok=True)
    blob = skops.io.dumps(model.classifier, compression=zipfile.ZIP_DEFLATED, compresslevel=9)
    (directory / MODEL_FILE).write_bytes(blob)
    meta = dict(model.metadata)
    meta["sha256"] = hashlib.sha256(blob).hexdigest()
    meta["libraries"] = {"scikit-learn": sklearn.__version__, "skops": skops.__version__}
    (directory / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    model.metadata = meta
    return directory


def load(directory: str | Path = DEFAULT_MODEL_DIR) -> ScoringModel:
    """Load a model saved by :func:`save`; raise :class:`ModelError` if it is not one this code can use."""
    directory = Path(directory)
    try:
        meta = json.loads((directory / META_FILE).read_text())
        blob = (directory / MODEL_FILE).read_bytes()
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read the monitoring model in {directory}: {exc}; train one (see docs)") from None
    if meta.get("version") != MODEL_VERSION:
        raise ModelError(
            f"the model in {directory} is version {meta.get('version')!r}, this code needs {MODEL_VERSION!r}: "
            "retrain with `python -m exchange_framework.compliance.monitoring train`"
        )
    if meta.get("features") != list(FEATURES):
        raise ModelError(
            f"the model in {directory} was trained on other features ({meta.get('features')}); this code computes "
            f"{list(FEATURES)}: retrain with `python -m exchange_framework.compliance.monitoring train`"
        )
    if hashlib.sha256(blob).hexdigest() != meta.get("sha256"):
        raise ModelError(f"{directory / MODEL_FILE} does not match the checksum in {META_FILE}: refusing to load it")
    import skops.io

    untrusted = skops.io.get_untrusted_types(data=blob)
    unexpected = sorted(set(untrusted) - set(TRUSTED_TYPES))
    if unexpected:
        raise ModelError(f"{directory / MODEL_FILE} contains types outside the allow-list: {unexpected}")
    classifier = skops.io.loads(blob, trusted=untrusted)
    return ScoringModel(classifier, meta)
