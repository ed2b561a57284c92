"""Running a child process (pip, the user's script) as a training job's step.

Its stdout and stderr are streamed line by line to the job's log as they come (SageMaker's
metric definitions are regular expressions over that log), the last lines are kept for
the failure reason, and SIGTERM / SIGINT sent to the job (PID 1 of the container) are
passed on to the child's whole process group.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import BinaryIO

from mlstack.training.errors import Terminated

TAIL_LINES = 25


@dataclass
class Outcome:
    """How a child ended: its exit status (128+N when killed by signal N) and last lines."""

    exit_code: int
    stdout_tail: list[str] = field(default_factory=list)
    stderr_tail: list[str] = field(default_factory=list)

    @property
    def tail(self) -> list[str]:
        """The last lines of stderr, where tracebacks and pip errors go; else of stdout."""
        return self.stderr_tail or self.stdout_tail


def _pump(source: BinaryIO, sink: BinaryIO, tail: deque[str]) -> None:
    """Copy lines from the child to the job's log as they arrive, keeping the last ones."""
    for line in iter(source.readline, b""):
        sink.write(line)
        sink.flush()
        text = line.decode("utf-8", "replace").rstrip()
        if text:
            tail.append(text)
    source.close()


class Supervisor:
    """Runs one child at a time and owns the job's SIGTERM / SIGINT handling.

    A signal while a child runs is forwarded to the child's process group and remembered
    (`stopped_by`); between children it raises Terminated in the main thread. PID 1 of a
    container gets no default signal action from the kernel: without a handler, `docker
    stop` and StopTrainingJob would wait for SIGKILL.
    """

    def __init__(self) -> None:
        self.stopped_by: int | None = None
        self._child: subprocess.Popen[bytes] | None = None

    def _handle(self, signum: int, _frame: object) -> None:
        self.stopped_by = signum
        child = self._child
        if child is None:
            raise Terminated(signum)
        with contextlib.suppress(ProcessLookupError):  # it has just ended
            os.killpg(child.pid, signum)

    @contextmanager
    def signals(self) -> Iterator[None]:
        """Install the handlers for the duration of the job (main thread only)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {
            sig: signal.signal(sig, self._handle) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            yield
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)

    def run(self, cmd: Sequence[str], cwd: str, env: dict[str, str] | None = None) -> Outcome:
        """Run cmd to its end in its own session; stream its output; return how it ended."""
        if self.stopped_by is not None:
            raise Terminated(self.stopped_by)
        child = subprocess.Popen(
            list(cmd),
            cwd=cwd,
            env=env,  # None: the child inherits this process's environment
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group, so signals reach its children
        )
        self._child = child
        tails: tuple[deque[str], deque[str]] = (deque(maxlen=TAIL_LINES), deque(maxlen=TAIL_LINES))
        pumps = [
            threading.Thread(target=_pump, args=(stream, sink, tail), daemon=True)
            for stream, sink, tail in (
                (child.stdout, sys.stdout.buffer, tails[0]),
                (child.stderr, sys.stderr.buffer, tails[1]),
            )
        ]
        for pump in pumps:
            pump.start()
        try:
            while True:
                # Short waits, so a signal that reached another thread of this process is
                # handled (in the main thread) within a fraction of a second.
                try:
                    code = child.wait(timeout=0.5)
                    break
                except subprocess.TimeoutExpired:
                    continue
        finally:
            self._child = None
        for pump in pumps:
            pump.join(timeout=5)  # a grandchild may hold the pipes open: do not hang on it
        return Outcome(128 - code if code < 0 else code, list(tails[0]), list(tails[1]))
