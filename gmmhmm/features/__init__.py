"""Speech front end: audio loading, MFCC, deltas, CMVN, feature files.

Plain functions over numpy arrays, librosa-style, with units in argument
names; :class:`FeatureConfig` holds every setting of the pipeline::

    config = FeatureConfig.fsdd()
    X = extract_features("7_jackson_32.wav", config)      # (n_frames, 39)

Feature transforms (:mod:`.transforms`): frame splicing, LDA and MLLT
(semi-tied covariance) estimated from additive statistics, and the
:class:`FeatureTransform` a model file stores (Kaldi's tri2b front end).

Speaker CMVN follows Kaldi: statistics per speaker from an explicit utt2spk
map (:func:`compute_cmvn_stats`, stored with :func:`save_cmvn_stats`,
applied with :func:`apply_cmvn`); without a map every utterance is its own
speaker, so a file's features never depend on the other files of a call.
"""

from ..data.datadir import AudioSpan, PerturbedAudio, PipedAudio
from .audio import load_audio, load_source, resample, speed_perturb
from .cmvn import (
    CmvnStats,
    apply_cmvn,
    cmvn,
    cmvn_per_speaker,
    compute_cmvn_stats,
    load_cmvn_stats,
    save_cmvn_stats,
)
from .config import FeatureConfig
from .deltas import add_deltas, deltas
from .mfcc import (
    frame_signal,
    hz_to_mel,
    log_mel_spectrogram,
    mel_band_edges_hz,
    mel_filterbank,
    vtln_warp_freq,
    mel_to_hz,
    mfcc,
    window_function,
)
from .vad import energy_vad, frame_log_energy_db
from .pipeline import extract_features, extract_many
from .store import load_features, save_features
from .transforms import (FeatureTransform, MlltAccumulator, MlltStats, accumulate_lda_stats, accumulate_mllt_stats,
                         estimate_lda, estimate_mllt, splice_frames)

__all__ = [
    "CmvnStats",
    "FeatureConfig",
    "FeatureTransform",
    "MlltAccumulator",
    "MlltStats",
    "accumulate_lda_stats",
    "accumulate_mllt_stats",
    "add_deltas",
    "apply_cmvn",
    "cmvn",
    "cmvn_per_speaker",
    "compute_cmvn_stats",
    "energy_vad",
    "frame_log_energy_db",
    "deltas",
    "estimate_lda",
    "estimate_mllt",
    "extract_features",
    "extract_many",
    "frame_signal",
    "hz_to_mel",
    "AudioSpan",
    "PerturbedAudio",
    "PipedAudio",
    "load_audio",
    "load_source",
    "load_cmvn_stats",
    "load_features",
    "log_mel_spectrogram",
    "mel_band_edges_hz",
    "mel_filterbank",
    "vtln_warp_freq",
    "mel_to_hz",
    "mfcc",
    "resample",
    "save_cmvn_stats",
    "save_features",
    "speed_perturb",
    "splice_frames",
    "window_function",
]
