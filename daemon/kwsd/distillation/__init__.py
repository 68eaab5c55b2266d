"""Stage 2: the encoder learns speech from a pretrained teacher (layer-wise distillation)."""
