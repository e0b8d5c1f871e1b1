"""Experiments: typed configs (``config``), the grid runner (``runner``), the result store
(``store``), what is measured at a checkpoint (``analyze``), the statistics (``statistics``)
and findings (``findings``) built on the results, and the HTML report (``report``)."""

from reluscope._extras import require

require(("pandas", "pyarrow", "matplotlib", "jinja2"), "experiments",
        "reluscope's experiments (run, report, findings, demo and the results store)")
