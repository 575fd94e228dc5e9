"""What every layer shares and nothing else: durations, clocks, atomic writes, the
strict settings base and the plain-http rule. It imports no other package of the project."""
