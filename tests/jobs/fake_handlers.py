"""Job handlers for the process-runner tests, importable by the spawned child."""

from __future__ import annotations

import os
import time
from typing import Any

from genstudio.jobs.base import JobFailed, OutputFile


def make(settings: Any) -> dict[str, Any]:
    def ok(ctx: Any) -> list[OutputFile]:
        for i in range(4):
            ctx.progress((i + 1) / 4)
        return [OutputFile(data=f"pid {os.getpid()} n {ctx.job.params['n']}".encode(), mime="image/png", kind="image")]

    def slow(ctx: Any) -> list[OutputFile]:
        for _ in range(1000):
            time.sleep(0.01)
            ctx.progress(0.5)
        return []

    def crash(ctx: Any) -> list[OutputFile]:
        os._exit(3)

    def fail(ctx: Any) -> list[OutputFile]:
        raise JobFailed("no such thing")

    return {"ok": ok, "slow": slow, "crash": crash, "fail": fail}
