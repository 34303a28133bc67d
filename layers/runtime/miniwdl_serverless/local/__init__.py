"""The embedded local mode: moto as AWS, a local Batch executor (see embedded.py)."""
