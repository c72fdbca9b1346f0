"""Re-export of :mod:`gmmhmm.data.lexicon` (the lexicon lives in the data layer)."""

from ..data.lexicon import (DIGIT_WORDS, FORMATS, SILENCE, Lexicon, parse_transcripts,  # noqa: F401
                            read_transcripts)
