"""Hard deadlines for the steps of ``kdecay proof``: a unit of work that would overrun its
time is stopped (``SIGALRM`` raises :class:`DeadlineError` in the main thread at the next
Python instruction), so one slow model cannot eat the time of the ones after it.

A deadline that falls inside a CUDA graph capture waits for the capture to end. Deadlines
nest: the timer is armed for the earliest one, and an inner unit that catches its
:class:`DeadlineError` re-arms the outer one (at once if it has passed too).
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["DeadlineError", "caused_by_deadline", "deadline"]

_ACTIVE: list[float] = []  # absolute expiry times (time.monotonic) of the open deadlines


class DeadlineError(Exception):
    """A unit of work reached its deadline and was stopped."""


def caused_by_deadline(err: BaseException) -> bool:
    """Whether ``err`` is, or was raised because of, a :class:`DeadlineError` (a library may
    wrap it: Dynamo raises ``BackendCompilerFailed`` from it)."""
    seen: set[int] = set()
    cause: BaseException | None = err
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, DeadlineError):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False


def _capturing() -> bool:
    """Whether a CUDA graph is being captured now (stopping then would break the device)."""
    torch = sys.modules.get("torch")
    return bool(torch is not None and torch.cuda.is_available()
                and torch.cuda.is_current_stream_capturing())  # fmt: skip


def _on_alarm(signum: int, frame: object) -> None:
    if _capturing():  # let the capture end: try again in a moment
        signal.setitimer(signal.ITIMER_REAL, 0.2, 1.0)
        return
    raise DeadlineError("deadline reached")


def _arm() -> None:
    if not _ACTIVE:
        signal.setitimer(signal.ITIMER_REAL, 0)
        return
    # repeating: an exception a library swallows is raised again a second later
    signal.setitimer(signal.ITIMER_REAL, max(min(_ACTIVE) - time.monotonic(), 0.001), 1.0)


@contextmanager
def deadline(seconds: float) -> Iterator[float]:
    """Run the body for at most ``seconds`` (raises :class:`DeadlineError` when they pass);
    yields the absolute expiry time. Without a main thread to signal it only records it."""
    expiry = time.monotonic() + max(seconds, 0.001)
    if threading.current_thread() is not threading.main_thread():
        yield expiry
        return
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    _ACTIVE.append(expiry)
    _arm()
    try:
        yield expiry
    finally:  # signal blocked: an alarm now is dropped, the outer deadline re-armed
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.sigtimedwait({signal.SIGALRM}, 0)
        _ACTIVE.remove(expiry)
        _arm()
        if not _ACTIVE:
            signal.signal(signal.SIGALRM, previous)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGALRM})
