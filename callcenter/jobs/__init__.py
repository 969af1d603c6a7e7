"""Background jobs: one registry, run in-process (embedded mode) or by an arq worker over Redis.

The same job function runs in both: ``registry.Job.run(context, kwargs)``. Features register
their jobs through the composition root (``callcenter.services.job_registry``), so the core
never imports them.
"""

from callcenter.jobs.registry import Job, JobContext, JobRegistry, UnknownJob

__all__ = ["Job", "JobContext", "JobRegistry", "UnknownJob"]
