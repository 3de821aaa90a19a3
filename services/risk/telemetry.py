"""Risk's business gauges for Prometheus (telemetry only: never read back as state)."""

from __future__ import annotations

import numpy as np

from libs.common import metrics
from services.risk.revaluation import Exposures

NEAR_PERCENT = 120  # "near liquidation": equity within 20% above maintenance
EXPORT_EVERY_MS = 1_000

_near_by_partition: dict[int, int] = {}


def near_liquidation(exposures: Exposures) -> int:
    """Accounts with a maintenance requirement (cross or portfolio) and equity below
    120% of it."""
    n = len(exposures.addresses)
    maintenance = exposures.maintenance[:n]
    if exposures.portfolio_count:
        maintenance = np.where(exposures.pm[:n], exposures.pm_maintenance[:n], maintenance)
    equity = exposures.base[:n] + exposures.value[:n] + exposures.asset_equity[:n]
    return int(((maintenance > 0) & (equity * 100 < maintenance * NEAR_PERCENT)).sum())


def export(partition: int, exposures: Exposures) -> None:
    """Publish this partition's count; the gauge is the sum over the process's partitions."""
    _near_by_partition[partition] = near_liquidation(exposures)
    metrics.ACCOUNTS_NEAR_LIQUIDATION.set(sum(_near_by_partition.values()))
