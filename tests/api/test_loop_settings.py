"""The servers turn libuv's io_uring polling off unless the operator set UV_USE_IO_URING."""

from __future__ import annotations

import os

import pytest

from exchange_framework.api.loop import IO_URING_ENV, avoid_io_uring_polling


def test_io_uring_is_off_by_default_and_an_operator_choice_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(IO_URING_ENV, raising=False)
    avoid_io_uring_polling()
    assert os.environ[IO_URING_ENV] == "0"
    monkeypatch.setenv(IO_URING_ENV, "1")
    avoid_io_uring_polling()
    assert os.environ[IO_URING_ENV] == "1"
