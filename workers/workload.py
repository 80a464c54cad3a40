"""The workload: everything every leg of a paired job must share to be like-for-like.

Declared with the rest of the job spec in ``parityscope.jobspec`` (standard library only), so the
server validates a job's workload without torch; the worker parses a claimed leg's with the same
code.
"""

from __future__ import annotations

from parityscope.jobspec import METRIC_AGGREGATIONS, OBJECTIVES, Workload
from workers.task import SortDigitsTask, get_task

__all__ = ["METRIC_AGGREGATIONS", "OBJECTIVES", "Workload", "task_for"]


def task_for(workload: Workload) -> SortDigitsTask:
    """The workload's task with its shared instruction."""
    return get_task(workload.task, workload.instruction_tokens)
