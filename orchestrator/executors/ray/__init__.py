"""The Ray executor: the driver side, the worker side, the portable job spec and source bundles."""
