"""Scorers that wrap other scorers: fallback chains and max-passage scoring of long texts."""
