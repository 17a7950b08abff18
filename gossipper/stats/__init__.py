"""Counters and their views: screen, summary, JSON, CSV."""
