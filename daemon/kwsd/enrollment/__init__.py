"""Keywords a user adds: templates of encoder frame features, matched by subsequence DTW.

trim (find the spoken phrase) -> checks (is the example usable) -> features (the bundle's
encoder through the daemon's streaming code) -> dtw (template vs window) -> detector (scores
per hop for the decision) -> negatives (threshold for a false-alarm target) -> store (on disk,
with the encoder it was made for) -> enroll (all of it, in seconds).
"""
