"""Run ``python -m exchange_framework.compliance.monitoring train [--seed N] [--out DIR]``."""

from exchange_framework.compliance.monitoring.cli import monitoring

monitoring(prog_name="python -m exchange_framework.compliance.monitoring")
