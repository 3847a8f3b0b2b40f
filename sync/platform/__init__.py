"""The reference county platform (FastAPI + SQLAlchemy), sharing only sync.wire with the kiosk."""

from sync.platform.app import create_platform_app
from sync.platform.keys import load_or_create_platform_key

__all__ = ["create_platform_app", "load_or_create_platform_key"]
