"""The processor runtime: exactly-once consume-apply-produce with Redis snapshots.

``core`` runs compiled when an up-to-date build exists (see libs/common/native.py)."""

from libs.common.native import extend_path

extend_path(__path__, __name__)

from libs.common.runtime.core import ChangeTracked, Context, Core, CoreFactory  # noqa: E402
from libs.common.runtime.output import Output  # noqa: E402
from libs.common.runtime.processor import Processor  # noqa: E402
from libs.common.runtime.snapshot import SnapshotStore  # noqa: E402

__all__ = [
    "ChangeTracked",
    "Context",
    "Core",
    "CoreFactory",
    "Output",
    "Processor",
    "SnapshotStore",
]
