"""Check-in: the rules, slot schedule, event bus to the screen, headcount and /metrics."""
