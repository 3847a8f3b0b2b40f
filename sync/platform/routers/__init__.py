"""The platform's routes, one module per domain; app.py includes them all."""
