"""The cost model lives in the package (``miniwdl_serverless.core.cost_model``: `report` prices a
run with it); the benchmarks import it from here as before."""

from miniwdl_serverless.core.cost_model import (
    HOURS_PER_MONTH,
    Cost,
    Invocations,
    Prices,
    Usage,
    fargate_cost,
    lambda_gb_seconds,
    merged,
    nat_cost,
    orchestration_cost,
)

__all__ = [
    "HOURS_PER_MONTH",
    "Cost",
    "Invocations",
    "Prices",
    "Usage",
    "fargate_cost",
    "lambda_gb_seconds",
    "merged",
    "nat_cost",
    "orchestration_cost",
]
