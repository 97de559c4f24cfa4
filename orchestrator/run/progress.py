"""One live line per job on a terminal; plain lines, one per state change, when output is not a TTY."""

from __future__ import annotations

import shutil
import sys
import threading
import time

FINAL = {"cached", "ok", "failed", "skipped"}
MARKS = {"ok": "✓", "cached": "·", "skipped": "-", "failed": "✗"}


class Progress:
    """Thread-safe job status display. `set` records a state; the terminal view is redrawn in place."""

    def __init__(self, names: list[str], stream=None, live: bool | None = None) -> None:
        self.stream = stream or sys.stdout
        self.live = self.stream.isatty() if live is None else live
        self.width = max([len(n) for n in names] + [8])
        self.rows: dict[str, list] = {n: ["queued", "", time.monotonic()] for n in names}
        self._lock = threading.Lock()
        self._drawn = 0
        self._stop = threading.Event()
        self._ticker = None
        if self.live and names:
            self._ticker = threading.Thread(target=self._tick, daemon=True)
            self._ticker.start()

    def set(self, name: str, state: str, detail: str = "") -> None:
        with self._lock:
            row = self.rows.setdefault(name, [state, detail, time.monotonic()])
            if row[0] != state:
                row[2] = time.monotonic()
            row[0], row[1] = state, detail
            if self.live:
                self._draw()
            else:
                self.stream.write(self._line(name) + "\n")
                self.stream.flush()

    def _line(self, name: str) -> str:
        state, detail, since = self.rows[name]
        mark = MARKS.get(state, "…")
        elapsed = "" if state in FINAL or not self.live else f" {time.monotonic() - since:5.1f}s"
        text = f"{mark} {name:<{self.width}}  {state}{elapsed}"
        return f"{text}  {detail}" if detail else text

    def _draw(self) -> None:
        height = shutil.get_terminal_size((100, 40)).lines - 2
        names = list(self.rows)
        if len(names) > height:
            active = [n for n in names if self.rows[n][0] not in FINAL][: height - 1]
            counts: dict[str, int] = {}
            for s, _, _ in self.rows.values():
                counts[s] = counts.get(s, 0) + 1
            lines = [self._line(n) for n in active] + ["  " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))]
        else:
            lines = [self._line(n) for n in names]
        cols = shutil.get_terminal_size((100, 40)).columns - 1
        out = f"\x1b[{self._drawn}F" if self._drawn else ""
        out += "".join(f"\x1b[2K{line[:cols]}\n" for line in lines)
        if len(lines) < self._drawn:
            out += "\x1b[J"
        self._drawn = len(lines)
        self.stream.write(out)
        self.stream.flush()

    def _tick(self) -> None:
        while not self._stop.wait(0.5):
            with self._lock:
                if any(r[0] not in FINAL for r in self.rows.values()):
                    self._draw()

    def close(self) -> None:
        self._stop.set()
        if self._ticker:
            self._ticker.join()
