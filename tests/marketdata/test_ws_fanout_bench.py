"""The fan-out benchmark runs and counts correctly (its timings are figures, never checked)."""

from __future__ import annotations

from exchange_framework.bench.ws_fanout_bench import run


def test_every_subscriber_gets_every_message_without_gaps() -> None:
    result = run(subscribers=5, rate=500, seconds=0.2, queue_size=64)
    assert result["published"] == 100
    assert result["ops"] == 5 * 100  # deliveries
    assert (result["gaps"], result["skipped"]) == (0, 0)


def test_queues_too_small_for_the_burst_show_up_as_skips() -> None:
    # a queue of 1 under bursts: subscribers fall behind and messages are skipped; a subscriber sees a gap only
    # if it gets a message after a skip, which depends on how the bursts fall, so gaps are at most the skips
    result = run(subscribers=3, rate=100_000, seconds=0.003, queue_size=1)
    assert result["skipped"] > 0
    assert result["gaps"] <= result["skipped"]
    assert result["ops"] + result["skipped"] == 3 * result["published"]
