"""Stage 3: the keyword head learns the keywords on encoder features; thresholds calibrated."""
