"""The benchmark (``scripts/bench``): a customer at the counter never waits behind a bulk order.

Runs giftsync as built and a baseline reproducing the seed (``giftsync.bench.baseline``) against
the twins with realistic latency and limits, on the same workload, and reports redemption
latency, bulk-request time, requests per redemption and per card, 429s, and the daemon's
memory and CPU. Not part of the product; see README "Performance".
"""
