"""Data layer: Kaldi data directories, lexicons, HTK and Kaldi files (knows no models).

* :mod:`.datadir`  ``wav.scp`` / ``text`` / ``utt2spk`` / ``spk2utt`` / ``segments``: :class:`DataDir`,
  :class:`AudioSpan` (a stretch of a recording), :class:`PipedAudio` (a piped wav.scp command),
  :class:`PerturbedAudio` and :func:`perturb_speed` (Kaldi's speed perturbation)
* :mod:`.lexicon`  HTK, Kaldi, Sphinx and cmudict lexicons with alternate pronunciations: :class:`Lexicon`
* :mod:`.htk`      HTK parameter files and master label files
* :mod:`.kaldi_io` Kaldi ark/scp float matrices and CMVN statistics
* :mod:`.inputs`   command-line inputs (data dirs, wav.scp, files, folders) -> :class:`Utterances`
"""

from .datadir import AudioSpan, DataDir, PerturbedAudio, PipedAudio, Segment, perturb_speed, read_table, write_table
from .inputs import AUDIO_SUFFIXES, Utterances, list_utterances
from .lexicon import DIGIT_WORDS, Lexicon, parse_transcripts, read_transcripts

__all__ = ["AUDIO_SUFFIXES", "DIGIT_WORDS", "AudioSpan", "DataDir", "Lexicon", "PerturbedAudio", "PipedAudio", "Segment", "Utterances",
           "list_utterances", "parse_transcripts", "perturb_speed", "read_table", "read_transcripts", "write_table"]
