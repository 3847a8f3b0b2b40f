"""Development tools for face calibration: the labelled photo set and threshold sweeps."""
