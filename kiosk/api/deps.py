"""Dependency aliases, so route signatures say what they use and tests can override it."""

from typing import Annotated

from fastapi import Depends, Request

from kiosk.config import KioskConfig
from kiosk.runtime.services import KioskServices


def get_services(request: Request) -> KioskServices:
    return request.app.state.services


def get_config(request: Request) -> KioskConfig:
    return request.app.state.services.config


ServicesDep = Annotated[KioskServices, Depends(get_services)]
ConfigDep = Annotated[KioskConfig, Depends(get_config)]
