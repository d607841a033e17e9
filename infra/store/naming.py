"""SQL-safe, injective table names for tenant partitions.

A tenant id names tables, so it is validated before it names anything, and
the mapping from (tenant, kind) to a name is injective: two tenants never share
a table, whatever their ids.

Scheme: `t_<kind>_<escaped tenant>`, where the tenant is escaped with the
prefix-free code `_` -> `__`, `-` -> `_h` (letters and digits stand for
themselves). The kind is letters only, so the first `_` after `t_` ends it.
A name longer than MAX_NAME_LEN becomes `t_<kind>_<leading codes>_x<16 hex of
sha256(tenant)>`: `_x` is not a code, so a hashed name never equals an
unhashed one, and the leading codes keep it readable.
"""

from __future__ import annotations

import hashlib
import re

# PostgreSQL truncates identifiers at 63 bytes, and the event recorder names an
# index `<table>_notification_id_idx` (20 more characters).
MAX_NAME_LEN = 40
_HASH_LEN = 16

_TENANT = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
_KIND = re.compile(r"[a-z]{1,12}")
_CODES = {"_": "__", "-": "_h"}


def validate_tenant(tenant: str) -> str:
    """Return `tenant` if it is a valid tenant id, else raise ValueError."""
    if not isinstance(tenant, str) or _TENANT.fullmatch(tenant) is None:
        raise ValueError(f"invalid tenant id {tenant!r}: must match [a-z0-9][a-z0-9_-]{{0,62}}")
    return tenant


def tenant_table(tenant: str, kind: str) -> str:
    """The table holding `kind` (e.g. 'events', 'status') for one tenant."""
    validate_tenant(tenant)
    if _KIND.fullmatch(kind) is None:
        raise ValueError(f"invalid table kind {kind!r}: must match [a-z]{{1,12}}")
    prefix = f"t_{kind}_"
    codes = [_CODES.get(char, char) for char in tenant]
    name = prefix + "".join(codes)
    if len(name) <= MAX_NAME_LEN:
        return name
    # Cut at a code boundary: half a `__` followed by `_x` would read as an
    # unhashed name and could collide with a crafted short tenant id.
    room = MAX_NAME_LEN - len(prefix) - 2 - _HASH_LEN
    readable = ""
    for code in codes:
        if len(readable) + len(code) > room:
            break
        readable += code
    digest = hashlib.sha256(tenant.encode()).hexdigest()[:_HASH_LEN]
    return f"{prefix}{readable}_x{digest}"


def events_table(tenant: str) -> str:
    """The table holding one tenant's events."""
    return tenant_table(tenant, "events")
