"""Data layer: files in the formats of HTK, Kaldi and the corpora; knows no models."""
