"""What every `genstudio` subcommand shares: settings from flags, a studio context over local files,
a progress bar that acts as the job context."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def settings_from(args: argparse.Namespace) -> Any:
    from genstudio.config import Settings

    overrides: dict[str, Any] = {}
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = Path(args.data_dir)
    return Settings(**overrides)


def studio_context(settings: Any, *, files_as_inputs: bool = True) -> Any:
    """A studio context for this process: inputs are files on disk, the actor is "local"."""
    from genstudio import runtime
    from genstudio.studio import FileInputs

    return runtime.context(settings, inputs=FileInputs() if files_as_inputs else None, channel="cli")


class _BarJob:
    """A job context for a run in this process: progress goes to a tqdm bar on stderr."""

    job = None

    def __init__(self, bar: Any) -> None:
        self.bar = bar

    def progress(self, fraction: float, message: str | None = None) -> None:
        self.bar.update(round(fraction * 100) - self.bar.n)

    def check_cancelled(self) -> None:
        pass


@contextmanager
def progress_bar(args: argparse.Namespace, desc: str) -> Iterator[_BarJob]:
    from tqdm import tqdm

    with tqdm(total=100, unit="%", disable=getattr(args, "quiet", False) or not sys.stderr.isatty(), desc=desc) as bar:
        yield _BarJob(bar)
