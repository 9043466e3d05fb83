"""Client-stack layers, one concern per module; `block/stack.py` orders them."""

from eblocks.layers.balance import balance
from eblocks.layers.deadline import deadline, per_try_deadline
from eblocks.layers.retry import retry

__all__ = ["balance", "deadline", "per_try_deadline", "retry"]
