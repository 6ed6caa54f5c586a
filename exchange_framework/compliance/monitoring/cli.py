"""``python -m exchange_framework.compliance.monitoring train``: train, evaluate and save the alert-scoring model."""

from __future__ import annotations

import json
from pathlib import Path

import click

__all__ = ["monitoring"]


@click.group()
def monitoring() -> None:
    """Transaction monitoring: the alert-scoring model (docs/transaction-monitoring.md)."""


@monitoring.command(name="train")
@click.option("--seed", type=int, default=7, show_default=True, help="Seed of the synthetic training histories.")
@click.option("--customers", type=click.IntRange(100, 200_000), default=4_000, show_default=True,
              help="Synthetic customers to generate (the held-out set has half as many, another seed).")  # fmt: skip
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Directory for model.skops and model.json [default: the packaged models/ directory].")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the metadata as JSON.")
def train_cmd(seed: int, customers: int, out: Path | None, as_json: bool) -> None:
    """Generate seeded synthetic histories, train the classifier, report held-out precision/recall/PR-AUC, save."""
    from exchange_framework.compliance.monitoring.model import DEFAULT_MODEL_DIR, save, train

    model = train(seed, customers)
    directory = save(model, out if out is not None else DEFAULT_MODEL_DIR)
    meta = model.metadata
    if as_json:
        click.echo(json.dumps(meta, indent=2, sort_keys=True))
        return
    m = meta["metrics"]
    click.echo(f"model {meta['version']} (seed {seed}, {customers} customers) saved to {directory}")
    click.echo(f"training alerts {meta['train_alerts']} ({meta['train_positive']} true typologies)")
    click.echo(
        f"held-out (seed {meta['held_out_seed']}): {meta['held_out_alerts']} alerts, "
        f"{meta['held_out_positive']} true; precision {m['precision']}, recall {m['recall']} at {m['cut']}, "
        f"PR-AUC {m['pr_auc']} (rules alone: precision {m['rules_only_precision']})"
    )
    click.echo(f"sha256 {meta['sha256']}")
