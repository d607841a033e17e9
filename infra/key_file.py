"""A generated key kept in a file of the data directory: made once, read ever after."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path


def read_or_make(path: Path, make: Callable[[], str]) -> str:
    """The text of `path` (stripped), first written (mode 0600) from `make()` if missing.

    Written whole under another name, then linked into place: a process starting at
    the same moment reads either nothing or the complete file, and one wins.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.parent / f".{path.name}.{secrets.token_hex(8)}"
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as out:
                out.write(make() + "\n")
            try:
                os.link(draft, path)
            except FileExistsError:
                pass  # another process made it first: theirs is the key
            except OSError:  # a file system without hard links
                if not path.exists():
                    os.replace(draft, path)
        finally:
            draft.unlink(missing_ok=True)
    return path.read_text().strip()
