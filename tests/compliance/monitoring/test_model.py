"""The synthetic generator is seeded; the scorer learns real signal; model artefacts are versioned and checked."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import msgspec
import pytest
from click.testing import CliRunner

from exchange_framework.compliance.monitoring.cli import monitoring
from exchange_framework.compliance.monitoring.features import FEATURES
from exchange_framework.compliance.monitoring.model import (
    DEFAULT_MODEL_DIR,
    MODEL_VERSION,
    ModelError,
    ScoringModel,
    dataset,
    load,
    save,
    train,
)
from exchange_framework.compliance.monitoring.synthetic import ILLICIT, generate

CUSTOMERS = 1_200


@pytest.fixture(scope="module")
def trained() -> ScoringModel:
    return train(seed=11, customers=CUSTOMERS)


def test_the_generator_is_seeded_and_deterministic() -> None:
    a, b, c = generate(3, 300), generate(3, 300), generate(4, 300)
    assert msgspec.msgpack.encode(a.batches) == msgspec.msgpack.encode(b.batches) and a.labels == b.labels
    assert msgspec.msgpack.encode(a.batches) != msgspec.msgpack.encode(c.batches)
    seqs = [e.seq for _, events in a.batches for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    times = [ts for ts, _ in a.batches]
    assert times == sorted(times)


def test_the_generator_mixes_every_typology_with_benign_look_alikes() -> None:
    history = generate(3, 1_000)
    labels = set(history.labels.values())
    assert set(ILLICIT) <= labels and {"business", "arbitrage", "merchant", "payroll", "peers"} <= labels
    _, y = dataset(history)
    assert 0.2 < sum(y) / len(y) < 0.7  # the rules alone flag many benign accounts: not trivially separable


def test_training_beats_the_rules_alone_on_a_held_out_set(trained: ScoringModel) -> None:
    m = trained.metadata["metrics"]
    assert trained.metadata["held_out_seed"] != trained.metadata["seed"]
    assert m["precision"] >= 0.75 and m["recall"] >= 0.75
    assert m["pr_auc"] >= 0.85 and m["pr_auc"] > m["rules_only_precision"] + 0.3


def test_shuffled_labels_collapse_the_score(trained: ScoringModel) -> None:
    control = train(seed=11, customers=CUSTOMERS, shuffle_labels=True)
    real, shuffled = trained.metadata["metrics"], control.metadata["metrics"]
    assert shuffled["pr_auc"] < real["pr_auc"] - 0.3
    assert shuffled["pr_auc"] < shuffled["rules_only_precision"] + 0.15  # about the base rate: nothing learnt


def test_save_and_load_round_trip(trained: ScoringModel, tmp_path: Path) -> None:
    save(trained, tmp_path)
    meta = json.loads((tmp_path / "model.json").read_text())
    assert meta["version"] == MODEL_VERSION and meta["features"] == list(FEATURES) and meta["seed"] == 11
    assert set(meta["metrics"]) >= {"precision", "recall", "pr_auc"} and len(meta["sha256"]) == 64
    loaded = load(tmp_path)
    rows, _ = dataset(generate(77, 300))
    assert loaded.scores(rows) == trained.scores(rows)
    assert all(0.0 <= s <= 1.0 for s in loaded.scores(rows))


def _edit(directory: Path, **changes: object) -> None:
    meta = json.loads((directory / "model.json").read_text())
    meta.update(changes)
    (directory / "model.json").write_text(json.dumps(meta))


def test_a_model_of_another_version_or_feature_list_is_refused(tmp_path: Path) -> None:
    for name, change, message in [
        ("version", {"version": "tm-hgb-0"}, "version 'tm-hgb-0'"),
        ("features", {"features": [*FEATURES[:-1], "something_else"]}, "other features"),
        ("order", {"features": list(reversed(FEATURES))}, "other features"),
    ]:
        directory = tmp_path / name
        shutil.copytree(DEFAULT_MODEL_DIR, directory)
        _edit(directory, **change)
        with pytest.raises(ModelError, match=message):
            load(directory)


def test_a_changed_or_missing_artefact_is_refused(tmp_path: Path) -> None:
    shutil.copytree(DEFAULT_MODEL_DIR, tmp_path / "m")
    blob = bytearray((tmp_path / "m" / "model.skops").read_bytes())
    blob[-100] ^= 0xFF
    (tmp_path / "m" / "model.skops").write_bytes(bytes(blob))
    with pytest.raises(ModelError, match="checksum"):
        load(tmp_path / "m")
    with pytest.raises(ModelError, match="cannot read"):
        load(tmp_path / "nothing-here")


def test_the_packaged_model_matches_this_code() -> None:
    model = load()  # refuses if FEATURES or MODEL_VERSION changed without retraining
    meta = model.metadata
    assert meta["features"] == list(FEATURES) and meta["version"] == MODEL_VERSION
    assert meta["metrics"]["pr_auc"] >= 0.9 and not meta["shuffled_labels"]
    assert (DEFAULT_MODEL_DIR / "model.skops").stat().st_size < 300_000


def test_the_train_command_reports_held_out_metrics(tmp_path: Path) -> None:
    result = CliRunner().invoke(monitoring, ["train", "--seed", "5", "--customers", "400", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "precision" in result.output and "PR-AUC" in result.output and "rules alone" in result.output
    meta = json.loads((tmp_path / "model.json").read_text())
    assert meta["seed"] == 5 and f"PR-AUC {meta['metrics']['pr_auc']}" in result.output
    load(tmp_path)
