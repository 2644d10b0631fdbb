"""Many cases at once: the pipeline from case files to written results (pipeline), a pool of
worker processes (pool), and the same over dask.bag (dask_bag).

``ivig_advisor.engine.batch.write_results`` and its siblings keep the module path the README
documented before the engine had rooms."""

from .pipeline import evaluate_files, evaluate_many, evaluate_record, evaluate_records, write_results

__all__ = ["evaluate_files", "evaluate_many", "evaluate_record", "evaluate_records", "write_results"]
