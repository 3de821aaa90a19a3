"""The processor runtime: exactly-once consume-apply-produce with Redis snapshots."""

from libs.common.runtime.core import ChangeTracked, Context, Core, CoreFactory, Output
from libs.common.runtime.processor import Processor
from libs.common.runtime.snapshot import SnapshotStore

__all__ = [
    "ChangeTracked",
    "Context",
    "Core",
    "CoreFactory",
    "Output",
    "Processor",
    "SnapshotStore",
]
