"""Worker pools: supervised ``jobhandle worker`` processes, sized by the load of their queues."""

from .scaling import Decision, Load, Scaler, ScalingPolicy
from .supervisor import Pool, PoolConfig, PoolEvent

__all__ = ["Decision", "Load", "Pool", "PoolConfig", "PoolEvent", "Scaler", "ScalingPolicy"]
