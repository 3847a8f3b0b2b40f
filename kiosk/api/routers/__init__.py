"""The web app's routers: one module per group of routes, named for its paths.

kiosk/api/factory.py includes every one of them, in one place.
"""
