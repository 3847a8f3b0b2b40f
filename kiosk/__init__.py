"""The kiosk application: check-in rules, local web UI, CLI."""

__version__ = "0.1.0"
