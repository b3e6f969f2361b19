"""Shared types and contracts: flow schema, errors, verdicts, alerts, actions, paths."""
