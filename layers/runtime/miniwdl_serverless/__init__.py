"""miniwdl-serverless: WDL workflows on AWS Batch + EFS, driven by events (core library)."""

__version__ = "0.1.0"
