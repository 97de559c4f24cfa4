"""One run: plan keys, schedule jobs, run each (proc is the one place that starts subprocesses), summarize."""
