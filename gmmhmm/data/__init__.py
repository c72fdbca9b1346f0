"""Data layer: Kaldi data directories and pronunciation lexicons (knows no models).

* :mod:`.datadir`  ``wav.scp`` / ``text`` / ``utt2spk`` / ``spk2utt`` / ``segments``: :class:`DataDir`
* :mod:`.lexicon`  HTK, Kaldi, Sphinx and cmudict lexicons with alternate pronunciations: :class:`Lexicon`
"""

from .datadir import DataDir, Segment, read_table, write_table
from .lexicon import DIGIT_WORDS, Lexicon, parse_transcripts, read_transcripts

__all__ = ["DIGIT_WORDS", "DataDir", "Lexicon", "Segment", "parse_transcripts", "read_table", "read_transcripts",
           "write_table"]
