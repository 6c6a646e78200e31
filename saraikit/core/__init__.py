"""core: measurement and storage that every other part stands on.

Errors, paths, the hardware fingerprint, statistics, the timing loop, isolated
trials (fresh processes), the SQLite results store, small I/O helpers.

May import: nothing else of saraikit (only the standard library and third-party packages).
"""
