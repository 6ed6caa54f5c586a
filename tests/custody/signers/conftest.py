"""A real SoftHSM2 token for the PKCS#11 signer tests, initialised once per test session in a temporary directory."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SOFTHSM_MODULE = Path("/usr/lib/softhsm/libsofthsm2.so")
TOKEN_LABEL = "exchange-test"
SO_PIN = "87654321"
USER_PIN = "12345678"
PIN_ENV = "TEST_HSM_PIN"


@dataclass(frozen=True)
class SoftHsmToken:
    """Where the test token lives and how to log in to it."""

    module: Path
    label: str
    pin_env: str
    conf: Path


@pytest.fixture(scope="session")
def softhsm_token(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoftHsmToken]:
    """Initialise a fresh SoftHSM2 token (own token directory and ``SOFTHSM2_CONF``) for this test session."""
    util = shutil.which("softhsm2-util")
    if util is None or not SOFTHSM_MODULE.is_file():
        message = "SoftHSM2 is not installed (scripts/setup installs the Debian softhsm2 package)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    root = tmp_path_factory.mktemp("softhsm")
    (root / "tokens").mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n", encoding="utf-8"
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SOFTHSM2_CONF", str(conf))  # read by the module when it is loaded (C_Initialize)
        patch.setenv(PIN_ENV, USER_PIN)
        subprocess.run(
            [util, "--init-token", "--free", "--label", TOKEN_LABEL, "--so-pin", SO_PIN, "--pin", USER_PIN],
            check=True,
            capture_output=True,
        )
        yield SoftHsmToken(SOFTHSM_MODULE, TOKEN_LABEL, PIN_ENV, conf)
