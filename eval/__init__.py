"""Evaluation harnesses and the code that turns run results into the paper's tables and figures.

- :mod:`eval.bfcl`: BFCL v4 scoring with bfcl-eval's own AST checker and BFCL's aggregation.
- :mod:`eval.summarize`: summarisation metrics (ROUGE-1/2/L, the task's rewards, length, judge).
- :mod:`eval.harness`: generation with the rollout engine and the eval.json writer
  (``scripts/evaluate.py``).
- :mod:`eval.runs`: reading run directories (config.yaml, metrics.jsonl, eval.json).
- :mod:`eval.tables`, :mod:`eval.figures`: tables (markdown/LaTeX/CSV) and PNG figures
  (``scripts/make_tables.py``, ``notebooks/analysis.ipynb``).
- :mod:`eval.paper`: the SAW paper's reported numbers.

Submodules are imported on use (``import eval.tables``), so ``import eval`` stays light.
"""
