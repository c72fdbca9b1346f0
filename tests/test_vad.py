"""Energy voice activity detection: frames within a margin of the utterance's loudest frame."""

from __future__ import annotations

import numpy as np
import pytest

from gmmhmm.errors import InvalidInputError, InvalidParameterError
from gmmhmm.features import FeatureConfig, energy_vad, extract_features, frame_log_energy_db


def test_margin_by_hand():
    db = np.array([-60.0, -31.0, -30.0, -10.0, 0.0, -29.9, -45.0])
    np.testing.assert_array_equal(energy_vad(db, margin_db=30.0), [0, 0, 1, 1, 1, 1, 0])
    np.testing.assert_array_equal(energy_vad(db + 17.0, margin_db=30.0), energy_vad(db, margin_db=30.0))  # level free
    np.testing.assert_array_equal(energy_vad(db, margin_db=np.inf), np.ones(7, dtype=bool))
    assert energy_vad(np.array([3.0]), margin_db=0.0).tolist() == [True]  # the loudest frame always counts
    with pytest.raises(InvalidParameterError, match="margin_db"):
        energy_vad(db, margin_db=-1.0)
    with pytest.raises(InvalidInputError, match="no frames"):
        energy_vad(np.zeros(0), margin_db=30.0)
    # NaN used to make every frame non-speech (NaN compares false), a silent empty mask
    for bad in (np.nan, np.inf):
        with pytest.raises(InvalidInputError, match="NaN or"):
            energy_vad(np.array([-10.0, bad, 0.0]))
    # -inf dB (a log of zero power) is silence, not an error
    np.testing.assert_array_equal(energy_vad(np.array([-np.inf, 0.0])), [False, True])


@pytest.mark.parametrize("energy", ["c0", "log_energy"])
@pytest.mark.parametrize("spectrum", ["power", "magnitude"])
@pytest.mark.parametrize("dct_norm", ["orthonormal", "htk"])
def test_frame_energy_in_db_follows_the_signal_level(tmp_path, energy, spectrum, dct_norm):
    """Noise 20 dB quieter in its second half reads about 20 dB lower, whichever column 0 holds.

    (White noise: c0 follows the mean log level of the mel bands, which
    moves with the total energy only when every band moves with it.)
    """
    import soundfile as sf

    rate = 8000
    t = np.arange(rate) / rate
    x = np.random.default_rng(0).normal(scale=0.2, size=rate) * np.where(t < 0.5, 1.0, 0.1)
    sf.write(tmp_path / "tone.wav", x, rate, subtype="FLOAT")
    fc = FeatureConfig(sample_rate_hz=rate, n_mels=23, energy=energy, spectrum=spectrum, cmvn="none",
                       delta_order=0, dct_norm=dct_norm)
    db = frame_log_energy_db(extract_features(tmp_path / "tone.wav", fc), fc)
    loud, quiet = np.median(db[5:40]), np.median(db[60:95])
    assert loud - quiet == pytest.approx(20.0, abs=0.5)
    np.testing.assert_array_equal(energy_vad(db, margin_db=10.0)[5:95], np.arange(5, 95) < 50)


def test_frame_energy_needs_energy_in_column_zero():
    with pytest.raises(InvalidParameterError, match="energy"):
        frame_log_energy_db(np.zeros((3, 13)), FeatureConfig(energy="none"))
