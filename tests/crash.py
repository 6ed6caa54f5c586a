"""Shared by the crash tests: run a worker process, SIGKILL it at a chosen moment, collect its whole lines."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

REPO = Path(__file__).resolve().parent.parent


def _drain(stream: IO[str], lines: list[str], ready: threading.Event) -> None:
    for line in stream:
        lines.append(line)
        ready.set()
    ready.set()


def run_and_kill(
    script: Path, args: list[str], stderr: Path, *, kill_after: float | None, wait_ready: bool = True
) -> list[str]:
    """Run ``script`` with ``args`` (cwd and PYTHONPATH the repository).

    With ``kill_after`` it is SIGKILLed that many seconds after its first output line (or after launch when not
    ``wait_ready``), and must still have been running; without, it must finish cleanly. Returns its whole lines:
    a line cut by the kill was never acknowledged.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    lines: list[str] = []
    ready = threading.Event()
    command = [sys.executable, str(script), *args]
    with (
        stderr.open("w") as err,
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=err, text=True, cwd=REPO, env=env) as proc,
    ):
        assert proc.stdout is not None
        reader = threading.Thread(target=_drain, args=(proc.stdout, lines, ready))
        reader.start()
        try:
            if kill_after is None:
                assert proc.wait(60) == 0, stderr.read_text()
            else:
                if wait_ready:
                    assert ready.wait(30), stderr.read_text()
                time.sleep(kill_after)
                proc.send_signal(signal.SIGKILL)
                assert proc.wait(30) == -signal.SIGKILL, stderr.read_text()  # it was still running: no crash
        finally:
            if proc.poll() is None:
                proc.kill()
            reader.join(30)
    return [line for line in lines if line.endswith("\n")]
