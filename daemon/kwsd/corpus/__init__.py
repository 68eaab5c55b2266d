"""Stage 1 of making a model: the audio it learns from (synthetic speech, augmentation)."""
