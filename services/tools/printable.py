"""Text fit for a terminal: what the tools print never carries a control character raw.

Actors, element keys, errors and outputs come from clients (a token's `sub`, a
definition, an HTTP answer). Printed raw, an ESC sequence could rewrite what a
terminal shows and a newline could forge a line of an audit trail. Every C0
control, DEL and every C1 control is shown escaped (`\\x1b`, `\\n`, `\\x9b`), and
JSON output escapes the ones JSON itself leaves raw (DEL, C1) as `\\u00XX`, so
it stays JSON that decodes to the same values.
"""

from __future__ import annotations

import re

_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# JSON encoders escape C0 controls already; DEL and C1 are legal raw in a JSON string.
_RAW_IN_JSON = re.compile("[\x7f-\x9f]")


def printable(text: str) -> str:
    """`text` with every control character shown as an escape."""
    if _CONTROLS.search(text) is None:
        return text
    return _CONTROLS.sub(lambda m: _NAMED.get(m.group(), f"\\x{ord(m.group()):02x}"), text)


def printable_json(text: str) -> str:
    """An encoded JSON document with DEL and C1 controls escaped: same JSON, same values."""
    if _RAW_IN_JSON.search(text) is None:
        return text
    return _RAW_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
