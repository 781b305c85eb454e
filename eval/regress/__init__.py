"""General-capability regression check through the served model (lm-evaluation-harness).

``python -m eval.regress run`` evaluates one OpenAI-compatible server on lm_eval tasks into a run
directory; ``python -m eval.regress compare`` pairs the base and the fine-tuned run item by item
and gives each task a delta, its standard error and a verdict. See ``eval/regress/README.md``.

Modules: :mod:`~eval.regress.stats` (paired comparison, verdict rule), :mod:`~eval.regress.runs`
(the run directory), :mod:`~eval.regress.harness` (lm_eval glue; lm_eval is imported when a run
starts), :mod:`~eval.regress.evaluate` (the ``run`` command), :mod:`~eval.regress.compare` (the
``compare`` command, report and plot). Reading runs and comparing them needs neither lm_eval nor
torch.
"""

from eval.regress.runs import Run, RunError, load_run
from eval.regress.stats import Comparison, Rule, compare_paired, verdict

__all__ = ["Comparison", "Rule", "Run", "RunError", "compare_paired", "load_run", "verdict"]
