"""The runtime roles: processes that run around the use cases and the adapters (the api
and the Studio it serves, the gateway's WebSocket, the engine, the projector, the relay).
A role imports use cases and adapters, never another role: `services/bootstrap.py` wires
them together."""
