"""Dependency aliases, so route signatures say what they use and tests can override it."""

from typing import Annotated

from fastapi import Depends, Request

from kiosk.config import KioskConfig
from kiosk.runtime.services import KioskServices


def get_services(request: Request) -> KioskServices:
    services: KioskServices = request.app.state.services  # Starlette's app.state is untyped
    return services


def get_config(request: Request) -> KioskConfig:
    return get_services(request).config


ServicesDep = Annotated[KioskServices, Depends(get_services)]
ConfigDep = Annotated[KioskConfig, Depends(get_config)]
