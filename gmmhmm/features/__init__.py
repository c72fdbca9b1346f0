"""Speech front end: audio loading, MFCC, deltas, CMVN, feature files.

Plain functions over numpy arrays, librosa-style, with units in argument
names; :class:`FeatureConfig` holds every setting of the pipeline::

    config = FeatureConfig.fsdd()
    X = extract_features("7_jackson_32.wav", config)      # (n_frames, 39)
"""

from .audio import load_audio, resample
from .cmvn import cmvn, cmvn_per_speaker
from .config import FeatureConfig
from .deltas import add_deltas, deltas
from .mfcc import (
    frame_signal,
    hz_to_mel,
    log_mel_spectrogram,
    mel_band_edges_hz,
    mel_filterbank,
    mel_to_hz,
    mfcc,
    window_function,
)
from .pipeline import extract_features, extract_many
from .store import load_features, save_features

__all__ = [
    "FeatureConfig",
    "add_deltas",
    "cmvn",
    "cmvn_per_speaker",
    "deltas",
    "extract_features",
    "extract_many",
    "frame_signal",
    "hz_to_mel",
    "load_audio",
    "load_features",
    "log_mel_spectrogram",
    "mel_band_edges_hz",
    "mel_filterbank",
    "mel_to_hz",
    "mfcc",
    "resample",
    "save_features",
    "window_function",
]
