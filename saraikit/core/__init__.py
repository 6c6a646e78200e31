"""core: measurement and storage that every other part stands on.

Errors, paths, the hardware fingerprint, strict dataclass configs, statistics,
the timing loop, memory accounting, CPU contention, isolated trials (fresh
processes), the SQLite results store, small I/O helpers.

Modules here may import: nothing else of saraikit (only the standard library and third-party packages).
"""
