"""Memory snapshots of this process."""


def test_memory_snapshot_sees_an_allocation():
    # In a fresh process: a long test session may reuse already-resident freed memory.
    from saraikit.core.trials import run_isolated

    import helpers

    result = run_isolated(helpers.worker_memory_growth, 64, timeout_s=120)
    assert result.ok, result.error
    before, after, _ = result.value
    assert after.rss_bytes - before.rss_bytes > 50 * 1024 * 1024
    assert after.peak_rss_bytes >= after.rss_bytes
    assert after.uss_bytes is not None and after.pss_bytes is not None  # Linux provides both
