"""Process settings for the event loop the exchange serves on.

uvicorn runs on uvloop, whose bundled libuv (1.45 to 1.48) sets up an io_uring ring with a kernel polling thread
(``IORING_SETUP_SQPOLL``) for every event loop. That thread busy-polls after each submission and showed up as a
third of the server's CPU time under load (the ``iou-sqp-<pid>`` thread), on a machine where every core counts;
libuv itself later made the polling ring opt-in. Turning io_uring off (libuv's ``UV_USE_IO_URING=0``) leaves
uvloop on epoll, as on any kernel without io_uring: ``exchange bench api`` went from about 2,200 to 3,150 orders/s
with server CPU per order from 540 to 345 us.
"""

from __future__ import annotations

import os

IO_URING_ENV = "UV_USE_IO_URING"


def avoid_io_uring_polling() -> None:
    """Make libuv use epoll rather than an io_uring polling thread, unless the operator chose otherwise.

    Call before the first event loop is created (libuv reads the variable once per process).
    """
    os.environ.setdefault(IO_URING_ENV, "0")
