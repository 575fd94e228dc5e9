"""gpu-bench: measure what one GPU node serves under a latency target, as a capacity profile.

Importing the package imports nothing heavy: torch and matplotlib load only where a
benchmark runs, so the daemon can read profiles (gpu_bench.profile) without them.
"""
