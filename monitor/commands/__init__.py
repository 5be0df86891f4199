"""Subcommands of `social-monitor`, one module each (see monitor/cli.py)."""
