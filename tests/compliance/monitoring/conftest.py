"""Import scikit-learn (and scipy under it) at collection, before any other test runs in this process.

After tests/chains has run in a process, importing scipy.stats there for the first time warns "invalid value
encountered in ldexp" from a module-level constant (something in those tests leaves the floating-point
environment changed, e.g. flush-to-zero; filterwarnings = error makes it a failure). Reproduced with
``pytest tests/chains tests/compliance/monitoring/test_config.py`` without this file. Importing at collection, in
a clean process, avoids depending on which tests ran first.
"""

import scipy.stats  # noqa: F401
import sklearn.ensemble
import sklearn.metrics  # noqa: F401
import skops.io  # noqa: F401
