"""Measuring any model (`kwsd eval`): files through the daemon's streaming path, scored, plotted."""
