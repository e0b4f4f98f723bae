"""Classical gap-repair baselines a user would try before a neural network: morphological
closing and skeleton end-point linking. Each is a function `mask -> mask` on NumPy plus a
tiled Dask version; `run.repair_store` applies one to a whole mask store (keeping its `gaps`
and `truth` layers for evaluation) and `predictor.repair_files` to files, folders, globs and
stores as `distpaint infer` does (the baseline runs as a model of infer's tiled job).

Usage::

    from distpaint.baselines import closing, linking
    repaired = linking(mask)

or `distpaint baseline closing|linking INPUT... --out OUT`.
"""

from distpaint.baselines.closing import ClosingConfig, closing, closing_dask
from distpaint.baselines.linking import LinkingConfig, linking, linking_dask

__all__ = ["ClosingConfig", "LinkingConfig", "closing", "closing_dask", "linking", "linking_dask"]
