"""HiGHS solver instances, quiet: HiGHS prints its banner on stdout when the first instance of a process is made,
before any option can be set, and a web worker's or a CLI's stdout is not the place for it."""

from __future__ import annotations

import os
import threading

import highspy

_quiet = False
_lock = threading.Lock()


def new_highs() -> highspy.Highs:
    """A HiGHS instance with its output off."""
    global _quiet
    if not _quiet:
        with _lock:
            if not _quiet:
                saved = os.dup(1)
                try:
                    with open(os.devnull, "wb") as null:
                        os.dup2(null.fileno(), 1)
                        first = highspy.Highs()
                finally:
                    os.dup2(saved, 1)
                    os.close(saved)
                _quiet = True
                first.setOptionValue("output_flag", False)
                return first
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    return h
