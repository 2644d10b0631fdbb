"""The progress line of a long batch on a terminal's stderr."""

import sys
import time
from typing import Callable, Optional, TextIO


class Progress:
    """A one-line counter on a terminal's stderr for long batches: cases, and how far through the
    input the reading is, with the time left, when the input's size is known (as pv shows it);
    the rate, the errors, and the cases with a critical warning.

    Silent for the first second (a short batch shows nothing), then redrawn
    at most five times a second; `close()` wipes it. `total`: the input's size in
    bytes (None: unknown, as for a pipe); `done()`: the bytes read so far.
    """

    def __init__(
        self,
        stream: TextIO = None,
        delay: float = 1.0,
        every: float = 0.2,
        total: Optional[int] = None,
        done: Optional[Callable[[], int]] = None,
    ):
        self.stream = stream or sys.stderr
        self.start = time.monotonic()
        self.delay, self.every = delay, every
        self.next = self.start + delay
        self.measure(total, done)
        self.cases = self.errors = self.critical = 0
        self.width = 0  # of the line last drawn, so that close() wipes all of it

    def measure(self, total: Optional[int], done: Optional[Callable[[], int]]) -> None:
        """Show the share of `total` bytes that `done()` says were read, and the time left."""
        self.total, self.done = (total, done) if total and done else (None, None)

    @property
    def shown(self) -> bool:
        return self.width > 0

    def add(self, result):
        self.cases += 1
        self.errors += not result.ok
        self.critical += bool(result.critical)
        now = time.monotonic()
        if now >= self.next:
            self.next = now + self.every
            line = self.line(now - self.start)
            self.stream.write("\r" + line.ljust(self.width))
            self.stream.flush()
            self.width = max(self.width, len(line))

    def line(self, elapsed: float) -> str:
        """'  12,345 cases  31%  0:14 left  2,345/s  4 errors  2 critical'."""
        where = ""
        if self.total:
            fraction = min(max(self.done() / self.total, 0.0), 1.0)
            where = f"  {fraction:.0%}"
            if fraction >= 0.01:
                where += f"  {_clock(elapsed * (1 - fraction) / fraction)} left"
        rate = self.cases / max(elapsed, 1e-9)
        return (
            f"  {self.cases:,} case{'s' if self.cases != 1 else ''}{where}  {rate:,.0f}/s"
            f"  {self.errors:,} error{'s' if self.errors != 1 else ''}  {self.critical:,} critical"
        )

    def close(self):
        if self.shown:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()


def _clock(seconds: float) -> str:
    """1:05 for 65 seconds; 1:02:03 past an hour."""
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
