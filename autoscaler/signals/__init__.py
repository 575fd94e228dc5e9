"""Signals beside the forecast: each gives a node count of its own, and the highest wins.

One module per kind (like KEDA's one file per scaler), each with its settings model and
the pure rule from the observed value to a count: `queue_depth`, `gpu_utilization`,
`latency`, `node_count`. `settings` joins them into the config's union, `weigh` is the
pure rule that combines their counts (called by autoscaler/policy.py), and `observe`
reads them from the metrics source in the tick's observe step. This package's
__init__ imports nothing, so the config schema and the policy can each import the one
module they need without a cycle.
"""
