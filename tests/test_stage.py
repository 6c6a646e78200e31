"""The stage interface and its events, on a fake stage (no models)."""

from __future__ import annotations

import pytest

from saraikit.core.errors import DataError, MeasurementError, ModelError
from saraikit.engines.stage import Event, Stage, event_problems

from stage_helpers import assert_well_formed


class Countdown(Stage):
    """A fake stage: yields n, n-1, ..., 1 as parts; the value is their sum."""

    kind = "llm"

    def _load(self):
        pass

    def _check_input(self, n):
        if not isinstance(n, int) or n < 0:
            raise DataError(f"countdown needs an int >= 0, got {n!r}")
        return n

    def _produce(self, n, mark, meta):
        mark("counting")
        meta["n"] = n
        yield from range(n, 0, -1)

    def _join(self, parts, meta):
        return sum(parts)

    def warmup_input(self):
        return 2


def test_stream_yields_parts_and_records_ordered_events():
    stage = Countdown("count")
    assert stage.load() >= 0 and stage.loaded
    stream = stage.stream(3)
    assert stream.result is None
    assert list(stream) == [3, 2, 1]
    result = stream.result
    assert result.value == 6 and result.meta["n"] == 3
    assert [e.name for e in result.events] == ["start", "counting", "first_output", "output", "output", "end"]
    assert_well_formed(result, "count")
    assert 0 <= result.first_output_s <= result.duration_s
    assert result.seconds("counting", "missing") is None


def test_run_equals_a_consumed_stream_and_empty_output_has_no_first_output():
    stage = Countdown("count")
    stage.load()
    assert stage.run(4).value == 10
    empty = stage.run(0)
    assert empty.value == 0
    assert [e.name for e in empty.events] == ["start", "counting", "end"]
    assert empty.first_output_s is None


def test_stage_must_be_loaded_and_streams_iterate_once():
    stage = Countdown("count")
    with pytest.raises(ModelError, match="not loaded; call load"):
        stage.run(1)
    stage.load()
    stream = stage.stream(1)
    list(stream)
    with pytest.raises(MeasurementError, match="only once"):
        list(stream)


def test_input_is_checked_when_the_stream_is_made():
    stage = Countdown("count")
    stage.load()
    with pytest.raises(DataError, match="int >= 0"):
        stage.stream(-1)


def test_warmup_runs_n_times():
    stage = Countdown("count")
    stage.load()
    seconds = stage.warmup(3)
    assert len(seconds) == 3 and all(s >= 0 for s in seconds)


def test_event_problems_catches_bad_order():
    good = [Event("s", "start", 10), Event("s", "first_output", 20), Event("s", "end", 20)]
    assert event_problems(good) == []
    backwards = [Event("s", "start", 10), Event("s", "first_output", 5), Event("s", "end", 30)]
    assert any("precedes" in problem for problem in event_problems(backwards))
    assert len(event_problems([Event("s", "end", 1)])) == 1
    assert len(event_problems([])) == 2
