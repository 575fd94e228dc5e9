"""autoscaler/config: the config schema, loading it from YAML, and validating it."""
