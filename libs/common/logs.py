"""Structured logging: one JSON object per line, with the service and instance."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import msgspec

_RESERVED = set(vars(logging.makeLogRecord({})))
_JSON = msgspec.json.Encoder()
_PLAIN = (int, str, bool, float, type(None), list, tuple, dict)


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str, instance: str) -> None:
        super().__init__()
        self.service = service
        self.instance = instance

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "service": self.service,
            "instance": self.instance,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                doc[key] = value if isinstance(value, _PLAIN) else str(value)
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return _JSON.encode(doc).decode()


def configure(service: str, instance: str, level: str = "INFO") -> None:
    """Route all logging to stderr as JSON lines; call once at process start."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service, instance))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
