"""Process settings for serving: the event loop's I/O backend and the garbage collector.

uvicorn runs on uvloop, whose bundled libuv (1.45 to 1.48) sets up an io_uring ring with a kernel polling thread
(``IORING_SETUP_SQPOLL``) for every event loop. That thread busy-polls after each submission and showed up as a
third of the server's CPU time under load (the ``iou-sqp-<pid>`` thread), on a machine where every core counts;
libuv itself later made the polling ring opt-in. Turning io_uring off (libuv's ``UV_USE_IO_URING=0``) leaves
uvloop on epoll, as on any kernel without io_uring: ``exchange bench api`` went from about 2,200 to 3,150 orders/s
with server CPU per order from 540 to 345 us.
"""

from __future__ import annotations

import gc
import os

IO_URING_ENV = "UV_USE_IO_URING"
# A running exchange keeps millions of long-lived objects (open orders, read models, market data) and allocates
# a few short-lived ones per request. CPython's default thresholds (700, 10, 10) run a young collection every 700
# net allocations and a full one, which walks every long-lived object, often enough to stall requests for hundreds
# of milliseconds once the heap is large. Fewer, larger young collections and rarer full ones: bench api's p99
# went from about 360 ms to 90-120 ms and throughput up by about 10 %.
GC_THRESHOLDS = (50_000, 50, 100)


def avoid_io_uring_polling() -> None:
    """Make libuv use epoll rather than an io_uring polling thread, unless the operator chose otherwise.

    Call before the first event loop is created (libuv reads the variable once per process).
    """
    os.environ.setdefault(IO_URING_ENV, "0")


def tune_for_serving() -> None:
    """Everything a server process sets before its loop starts: no io_uring polling, fewer GC pauses."""
    avoid_io_uring_polling()
    gc.set_threshold(*GC_THRESHOLDS)
