"""Streamed activation collection and probes, with controls by default."""
