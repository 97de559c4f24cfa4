"""What is benchmarked: jobs and their PEP 723 metadata, suites, the device, the run's context."""
