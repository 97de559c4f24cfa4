"""Benchmark orchestrator: isolated uv environments per implementation, a content-addressed result cache."""

__version__ = "0.1.0"
