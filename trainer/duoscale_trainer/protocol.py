"""Trainer process protocol (DESIGN.md, "Trainer process protocol").

stdout carries one JSON object per line and nothing else; every line has an ``event`` key
(``started``, ``progress``, ``sample``, ``checkpoint``, ``exported``, ``error``, ``finished``)
and a ``time`` key (Unix seconds). Human-readable logs go to stderr through ``logging``.

To keep stdout pure even when a library prints, :func:`claim_stdout` keeps a private handle on
the real stdout and points ``sys.stdout`` at stderr for the rest of the process.
"""
from __future__ import annotations

import json
import logging
import math
import sys
import threading
import time
from typing import Any, TextIO

EVENTS = ("started", "progress", "sample", "checkpoint", "exported", "error", "finished")

_lock = threading.Lock()
_out: TextIO | None = None      # the real stdout once claimed
_enabled = True                 # False on DDP ranks other than 0


def claim_stdout() -> None:
    """Reserve the real stdout for JSON events; route stray prints to stderr."""
    global _out
    if _out is None:
        _out = sys.stdout
        sys.stdout = sys.stderr


def set_enabled(flag: bool) -> None:
    """Only rank 0 speaks on stdout under torchrun."""
    global _enabled
    _enabled = flag


def _clean(value: Any) -> Any:
    # JSON has no NaN/Infinity: non-finite floats become null so every line stays parseable.
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and callable(value.item):      # numpy / torch scalars
        try:
            return _clean(value.item())
        except (TypeError, ValueError):
            pass
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    return str(value)


def format_event(event: str, **fields: Any) -> str:
    if event not in EVENTS:
        raise ValueError(f"unknown protocol event {event!r}; expected one of {', '.join(EVENTS)}")
    record = {"event": event, "time": round(time.time(), 3)}
    record.update(fields)
    return json.dumps(_clean(record), allow_nan=False, separators=(",", ":"))


def emit(event: str, **fields: Any) -> None:
    """Write one JSON line for ``event`` on stdout and flush it."""
    line = format_event(event, **fields)
    if not _enabled:
        return
    out = _out if _out is not None else sys.stdout
    with _lock:
        out.write(line + "\n")
        out.flush()


def setup_logging(verbose: bool = False, rank: int = 0) -> logging.Logger:
    """Logs on stderr, prefixed with the DDP rank when there are several."""
    logger = logging.getLogger("duoscale")
    logger.handlers.clear()
    handler = logging.StreamHandler(sys.__stderr__)
    prefix = f"[rank {rank}] " if rank else ""
    handler.setFormatter(logging.Formatter(f"%(asctime)s {prefix}%(levelname)s %(message)s", "%H:%M:%S"))
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    logger.propagate = False
    return logger
