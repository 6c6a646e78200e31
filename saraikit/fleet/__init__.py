"""fleet: the same jobs on Dask workers when one machine is not enough.

The embedded default stays local (isolated processes, nothing to start);
with a scheduler address (``--cluster ADDRESS``, notebook parameter
``cluster``) jobs go to ``dask.distributed`` workers. What lives here:
connecting to the scheduler and the workers' targets and resources
(``cluster``), the model check and shipping by sha256 (``models_sync``),
trials measured on a target's worker and stored by the head (``trials``),
sharded WER / noise runs (``shards``), and the rows a worker's scratch
database hands back to the head (``rows``).

Decisions: the head's results database has one writer, the head; a worker
measures into nothing (or a scratch database) and returns plain data.

May import: saraikit.core, saraikit.data, saraikit.models, saraikit.engines,
saraikit.quality, saraikit.experiments.
"""
