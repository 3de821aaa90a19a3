"""/health beside /metrics: ok while the main loop beats, 503 once it stops."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

from libs.common.metrics import Health, serve
from libs.localstack import free_ports


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_health_follows_the_heartbeat_and_metrics_still_serve() -> None:
    health = Health(stale_after_s=0.2)
    (port,) = free_ports(1)
    serve(port, health=health)
    base = f"http://127.0.0.1:{port}"
    status, body = get(base + "/health")
    assert status == 503 and json.loads(body)["status"] == "starting"
    health.beat(partitions=4)
    status, body = get(base + "/health")
    assert status == 200 and json.loads(body)["partitions"] == 4
    time.sleep(0.3)
    status, body = get(base + "/health")
    assert status == 503 and json.loads(body)["status"] == "stalled"
    status, body = get(base + "/metrics")
    assert status == 200 and "exchange_messages_in_total" in body
