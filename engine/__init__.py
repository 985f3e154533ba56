"""The pure core of RPS Quest: rules, features, policies and simulated players (no I/O)."""
