"""Contrastive image-text pretraining of a small open_clip model on a generated, captioned corpus."""
