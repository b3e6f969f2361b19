"""Evaluation: protocols (how data is split), metrics, latency through the artifact, reports and plots."""
