"""Load balancers: pure pick functions over a list of endpoints.

Every balancer is a `Balancer` (``pick(endpoints, key)``); the load-aware ones
are also `Feedback` and learn from each try through ``begin``/``end``. Build
one by name with `make_balancer`; one module per algorithm:

=============  ==============  ====================================================
name           class           picks
=============  ==============  ====================================================
round_robin    `RoundRobin`    each endpoint in turn
random         `RandomChoice`  uniformly at random
weighted       `Weighted`      at random, in proportion to the ``weight`` label
p2c            `P2C`           the one of two random with fewer tries in flight
p2c_bytes      `P2CBytes`      the one of two random with fewer bytes assigned
ewma           `PeakEwma`      the one of two random with lower latency x load
ring_hash      `RingHash`      by ``key`` on a ring of virtual nodes
maglev         `Maglev`        by ``key`` through a Maglev lookup table
=============  ==============  ====================================================

`Locality` wraps any of them to prefer endpoints in the caller's zone.
"""

from eblocks.balance.base import Balancer, Feedback, Ticket, endpoint_key
from eblocks.balance.ewma import PeakEwma
from eblocks.balance.factory import BALANCER_NAMES, BalancerName, make_balancer
from eblocks.balance.locality import Locality
from eblocks.balance.maglev import Maglev
from eblocks.balance.p2c import P2C
from eblocks.balance.p2c_bytes import P2CBytes
from eblocks.balance.random import RandomChoice
from eblocks.balance.ring_hash import RingHash
from eblocks.balance.round_robin import RoundRobin
from eblocks.balance.weighted import Weighted

__all__ = [
    "BALANCER_NAMES",
    "P2C",
    "Balancer",
    "BalancerName",
    "Feedback",
    "Locality",
    "Maglev",
    "P2CBytes",
    "PeakEwma",
    "RandomChoice",
    "RingHash",
    "RoundRobin",
    "Ticket",
    "Weighted",
    "endpoint_key",
    "make_balancer",
]
