"""Measuring samples: point metrics against known shapes, and the judge that scores images. Arrays in, numbers out."""
