"""`loom secrets rotate-key`: re-wrap every tenant's data key with a new master key.

Values stay as they are (each is encrypted with its tenant's data key); only the
wrapped data keys are written again. With LOOM_SECRETS_KEY set, that is the new
key and LOOM_SECRETS_OLD_KEY the one it replaces: restart every role with the
new key once this has run. The embedded default rotates its own key file: the
new key is written beside it first (`secrets-key.new`), every tenant is re-wrapped,
then the new file takes the old one's place, so a rotation cut short is finished
by running it again.
"""

from __future__ import annotations

import os
import sys
import time
from typing import TextIO

from infra.auth import data_directory
from infra.key_file import read_or_make
from infra.secret_keys import (
    GENERATED_KEY_FILE,
    MasterKey,
    SecretsKeyError,
    new_master_key_text,
)
from infra.settings import Settings
from infra.store import open_event_store
from services.usecases.secrets import SecretService

ACTOR = "loom secrets rotate-key"


class _Clock:
    def now(self) -> float:
        return time.time()


def rotate_key(settings: Settings, env: dict[str, str], out: TextIO | None = None) -> int:
    out = out or sys.stdout
    try:
        if settings.secrets_key is not None:
            old_text = env.get("LOOM_SECRETS_OLD_KEY", "").strip()
            if not old_text:
                print(
                    "error: set LOOM_SECRETS_OLD_KEY to the key being replaced "
                    "(LOOM_SECRETS_KEY is the new one)",
                    file=sys.stderr,
                )
                return 2
            old = MasterKey.from_base64(old_text, "LOOM_SECRETS_OLD_KEY")
            new = MasterKey.from_base64(settings.secrets_key)
            return _rewrap(settings, old, new, out)
        directory = data_directory(settings.database_url)
        current = directory / GENERATED_KEY_FILE
        if not current.exists():
            print(f"no key file at {current}: nothing to rotate", file=out)
            return 0
        old = MasterKey.from_base64(current.read_text(), str(current))
        draft = directory / f"{GENERATED_KEY_FILE}.new"
        new = MasterKey.from_base64(read_or_make(draft, new_master_key_text), str(draft))
        code = _rewrap(settings, old, new, out)
        os.replace(draft, current)
        print(f"{current} now holds the new key", file=out)
        return code
    except SecretsKeyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _rewrap(settings: Settings, old: MasterKey, new: MasterKey, out: TextIO) -> int:
    store = open_event_store(settings.database_url)
    try:
        tenants = SecretService(store, _Clock(), lambda: new).rotate(old, ACTOR)
    finally:
        store.close()
    print(
        f"re-wrapped the data keys of {len(tenants)} tenant(s) with key {new.fingerprint}",
        file=out,
    )
    return 0
