"""The use cases: what a caller can ask of Loom (save a process, start, cancel, read an
execution, keep agents), apart from how it asks. They know the domain and the ports,
raise their own errors (`errors.py`), and import no runtime role and nothing of HTTP."""
