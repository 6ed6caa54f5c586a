"""Transaction monitoring: typology rules with evidence, alert scores from a gradient-boosting model, a review queue.

- :mod:`~exchange_framework.compliance.monitoring.rules`: structuring, rapid movement, fan-in/out (and the alert).
- :mod:`~exchange_framework.compliance.monitoring.monitor`: the event consumer, layering chains, cases, the queue.
- :mod:`~exchange_framework.compliance.monitoring.features`: an alert's scoring features.
- :mod:`~exchange_framework.compliance.monitoring.synthetic`: seeded, labelled synthetic histories.
- :mod:`~exchange_framework.compliance.monitoring.model`: training, evaluation, the versioned artefact.

scikit-learn is needed only to train or score (``pip install exchange-framework[monitoring]``); the rules run without.
"""

from exchange_framework.compliance.monitoring.monitor import Monitor, record_alert
from exchange_framework.compliance.monitoring.rules import Alert, MonitoringParams, Movement, MovementKind, Rule

__all__ = ["Alert", "Monitor", "MonitoringParams", "Movement", "MovementKind", "Rule", "record_alert"]
