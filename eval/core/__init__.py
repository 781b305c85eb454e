"""The evaluation run path every task shares: command line, client, runner, report, splits.

* :mod:`eval.core.task`: the :class:`~eval.core.task.Task` interface a task implements;
* :mod:`eval.core.cli`: the one command line and run path (``python -m eval TASK``);
* :mod:`eval.core.client`: one chat-completions request, classified failures;
* :mod:`eval.core.runner`: concurrent requests, retries, the resumable results log;
* :mod:`eval.core.report`: ``report.json``, serving statistics, the summary table, charts;
* :mod:`eval.core.splits` and :mod:`eval.core.records`: reading splits and rows;
* :mod:`eval.core.images`: the image policy training shares (size limit, complete decode,
  transparency on white);
* :mod:`eval.core.dir_lock`: the output directory's lock;
* :mod:`eval.core.redact`: credentials masked in everything printed or written;
* :mod:`eval.core.replies`: finding the JSON answer in a reply;
* :mod:`eval.core.values`: normalising extracted values for comparison;
* :mod:`eval.core.schema_bounds`: bounded variants of a JSON schema.
"""
