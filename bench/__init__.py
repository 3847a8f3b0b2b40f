"""The benchmark harness: `kiosk bench [--quick] [--only NAME]` (see docs/bench.md)."""
