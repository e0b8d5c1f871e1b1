"""Experiments: typed configs (``config``), the grid runner (``runner``), the result store
(``store``), what is measured at a checkpoint (``analyze``), the statistics (``statistics``)
and findings (``findings``) built on the results, and the HTML report (``report``)."""
