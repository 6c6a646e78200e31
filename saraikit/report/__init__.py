"""report: turning results into the ledger and pages people read.

KPI definitions and the recorder that turns results into trials and KPI rows,
verdicts against targets, saved figures, ``outputs/index.html``, the browser
check of HTML reports, and the workbook runner (papermill + nbconvert), on
this machine (``workbook``) or on the Dask workers of each target
(``fleet_workbook``).

May import: every other subpackage.
"""
