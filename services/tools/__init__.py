"""Replay and audit tooling over the event store: `loom audit`, `replay`, `state`,
`diff`, `executions`, `export` and `import`.

Each module answers one question from the recorded events alone and calls
nothing outside (no HTTP, no LLM, no clock): `audit` (the timeline, and the hash
chain verified), `replay` (every decision re-made, one execution or a tenant's
all), `whatif` (the recorded facts through another definition), `diff` (two
executions side by side) and `archive` (export, import); `state` (time travel)
is folded by `domain/state_at.py`. `history` is how they all read; `commands`
wires them to the command line. Only `import` writes.
"""
