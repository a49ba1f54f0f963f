"""Virtual keys: who may call the proxy, which models, how much and how fast.

The store keeps only a hash of each key; budgets and rate limits are counted in the
shared store (SQL, or Redis when REDIS_URL is set) so they hold across every worker
and instance.
"""
