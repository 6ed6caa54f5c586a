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


def test_serving_processes_collect_garbage_less_often(monkeypatch: pytest.MonkeyPatch) -> None:
    import gc

    from exchange_framework.api.loop import GC_THRESHOLDS, tune_for_serving

    before = gc.get_threshold()
    monkeypatch.delenv(IO_URING_ENV, raising=False)
    try:
        tune_for_serving()
        assert gc.get_threshold() == GC_THRESHOLDS
        assert os.environ[IO_URING_ENV] == "0"
    finally:
        gc.set_threshold(*before)
