"""Job queue: requests enqueue, workers run, progress is streamed."""

from genstudio.jobs.base import Handler, JobCancelled, JobContext, JobFailed, JobQueue, OutputFile, QueueFull

__all__ = ["Handler", "JobCancelled", "JobContext", "JobFailed", "JobQueue", "OutputFile", "QueueFull"]
