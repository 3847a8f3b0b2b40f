"""The local web app: the caregiver's touchscreen page and the JSON/SSE API behind it."""
