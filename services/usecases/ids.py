"""Fresh ids for processes, executions, agents and requests.

Random version-4 UUIDs from Python's own generator, seeded from the OS once:
`uuid4()` asks the kernel on every call, and on the event loop each such system
call can hand the GIL to a store thread and wait milliseconds to get it back.
These ids name things; they are not secrets (tenancy never rests on guessing).
"""

from __future__ import annotations

import random
import uuid

_random = random.Random()


def new_id() -> str:
    return str(uuid.UUID(int=_random.getrandbits(128), version=4))
