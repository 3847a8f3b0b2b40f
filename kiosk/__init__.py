"""The kiosk application: check-in rules, local web UI, CLI."""

from pathlib import Path

__version__ = "0.1.0"

# The touchscreen's Jinja2 pages and plain-JS assets, shared by the web app and `kiosk export`.
TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"
