"""Output helpers of the ``amqp-core`` command: plain tables and a progress display.

Theory of operation: results go to stdout (tables, JSON); progress and notes
go to stderr, so ``amqp-core bench --format json > out.json`` stays clean.
:class:`Progress` draws a one-line bar, redrawn in place at most
:data:`REDRAW_INTERVAL` times a second, when stderr is a terminal; elsewhere
(a pipe, a CI log) it prints one line when each step starts and ends and at
most one line every :data:`LINE_INTERVAL` seconds in between.  It only uses
the standard library.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Final, TextIO

__all__ = ["LINE_INTERVAL", "REDRAW_INTERVAL", "Progress", "format_table"]

#: Seconds between two redraws of the bar on a terminal.
REDRAW_INTERVAL: Final = 0.1
#: Seconds between two progress lines when stderr is not a terminal.
LINE_INTERVAL: Final = 5.0
_BAR_WIDTH: Final = 28


def format_table(
    header: Sequence[str], rows: Sequence[Sequence[str]], align: str | None = None
) -> str:
    """A plain-text table.

    :param header: the column titles
    :param rows: the cells, as text
    :param align: one ``l`` or ``r`` per column (default: the first column left, the
        others right, for figures)
    :returns: the table, lines joined by ``\\n`` (no final newline)
    """
    if align is None:
        align = "l" + "r" * (len(header) - 1)
    if len(align) != len(header) or set(align) - {"l", "r"}:
        raise ValueError(f"align must be one 'l' or 'r' per column, not {align!r}")
    widths = [len(title) for title in header]
    for row in rows:
        for index, cell in enumerate(row):
            widths[index] = max(widths[index], len(cell))

    def line(cells: Sequence[str]) -> str:
        parts = [cell.ljust(width) if side == "l" else cell.rjust(width)
                 for cell, width, side in zip(cells, widths, align, strict=True)]
        return "  ".join(parts).rstrip()

    lines = [line(header), "  ".join("-" * width for width in widths)]
    lines += [line(row) for row in rows]
    return "\n".join(lines)


class Progress:
    """Progress of a sequence of steps, each of a known number of units (messages).

    :param stream: where to draw (stderr)
    :param steps: how many steps there are
    :param mode: ``"bar"`` (redrawn in place), ``"lines"`` (periodic lines) or ``"none"``
    """

    def __init__(self, stream: TextIO, steps: int, mode: str) -> None:
        if mode not in ("bar", "lines", "none"):
            raise ValueError(f"mode must be 'bar', 'lines' or 'none', not {mode!r}")
        self.stream = stream
        self.steps = steps
        self.mode = mode
        self.step = 0
        self.label = ""
        self.units = 0
        self.done = 0
        self._last_draw = 0.0
        self._drawn = False

    def start_step(self, label: str, units: int) -> None:
        """A new step begins: ``label`` names it, ``units`` is its size."""
        self.step += 1
        self.label = label
        self.units = max(units, 1)
        self.done = 0
        if self.mode == "lines":
            self._write_line(f"[{self.step}/{self.steps}] {label} ...")
        self._draw(force=True)

    def advance(self, units: int = 1) -> None:
        """``units`` more units of the current step are done."""
        self.done += units
        now = time.monotonic()
        interval = REDRAW_INTERVAL if self.mode == "bar" else LINE_INTERVAL
        if now - self._last_draw >= interval:
            self._draw(now=now)

    def end_step(self, outcome: str) -> None:
        """The current step ended; ``outcome`` is its one-line result."""
        self.done = self.units
        if self.mode == "lines":
            self._write_line(f"[{self.step}/{self.steps}] {self.label}: {outcome}")
        elif self.mode == "bar":
            self._draw(force=True)

    def close(self) -> None:
        """Erase the bar (terminal mode) so what follows starts on a clean line."""
        if self.mode == "bar" and self._drawn:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
            self._drawn = False

    def note(self, text: str) -> None:
        """Print a line of text without garbling the bar."""
        if self.mode == "bar" and self._drawn:
            self.stream.write("\r\x1b[2K")
            self._drawn = False
        self.stream.write(text + "\n")
        self.stream.flush()
        if self.mode == "bar":
            self._draw(force=True)

    # ------------------------------------------------------------ internals

    def _write_line(self, text: str) -> None:
        self.stream.write(f"bench: {text}\n")
        self.stream.flush()

    def _draw(self, *, force: bool = False, now: float | None = None) -> None:
        if self.mode == "none":
            return
        now = time.monotonic() if now is None else now
        if not force and now - self._last_draw < REDRAW_INTERVAL:
            return
        self._last_draw = now
        fraction = min(self.done / self.units, 1.0)
        if self.mode == "lines":
            if not force and self.done < self.units:
                self._write_line(
                    f"[{self.step}/{self.steps}] {self.label}: {self.done}/{self.units}"
                )
            return
        overall = (self.step - 1 + fraction) / max(self.steps, 1)
        filled = int(overall * _BAR_WIDTH)
        bar = "#" * filled + "." * (_BAR_WIDTH - filled)
        self.stream.write(
            f"\r\x1b[2K[{bar}] {overall * 100:3.0f}%  {self.step}/{self.steps} "
            f"{self.label} {self.done}/{self.units}"
        )
        self.stream.flush()
        self._drawn = True
