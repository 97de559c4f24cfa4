"""Where a prepared job's process runs: this machine (local) or a Ray cluster (ray/)."""
