"""Where a job runs: uv, dependency pins, isolated envs and host-mode layers, env integrity checks."""
