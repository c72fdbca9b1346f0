"""`gmmhmm lm`: Kaldi text or plain sentences -> ARPA file, through the command line."""

from __future__ import annotations

import math

import pytest

from gmmhmm.cli import main
from gmmhmm.lm import estimate, read_arpa

SENTENCES = [["a", "b"], ["a"], ["b", "b", "a"]]


@pytest.fixture
def texts(tmp_path):
    kaldi = tmp_path / "text"
    kaldi.write_text("".join(f"utt{i} {' '.join(s)}\n" for i, s in enumerate(SENTENCES)))
    plain = tmp_path / "plain.txt"
    plain.write_text("<s> a b </s>\n\na\nb b a\n")  # <s>/</s> and blank lines are tolerated
    return kaldi, plain


@pytest.mark.parametrize("method", ["witten-bell", "kneser-ney"])
@pytest.mark.parametrize("order", [2, 3])
def test_cli_writes_the_estimated_model(tmp_path, texts, method, order, capsys):
    kaldi, plain = texts
    expected = estimate(SENTENCES, order=order, method=method)
    out = tmp_path / "lm.arpa"
    assert main(["lm", str(kaldi), "-o", str(out), "--order", str(order), "--method", method]) == 0
    assert read_arpa(out).ngrams == expected.ngrams
    out2 = tmp_path / "plain.arpa"
    assert main(["lm", str(plain), "-o", str(out2), "--order", str(order), "--method", method, "--no-ids"]) == 0
    assert read_arpa(out2).ngrams == expected.ngrams
    assert f"{order}-gram {method}" in capsys.readouterr().err


def test_cli_defaults_vocab_and_perplexity(tmp_path, texts, capsys):
    kaldi, _ = texts
    lexicon = tmp_path / "lexicon.txt"
    lexicon.write_text("# comment lines are no words\na AH\nb B IY\nc S IY\nc(2) K\n;;; nor cmudict's\n")
    out = tmp_path / "lm.arpa.gz"
    assert main(["lm", str(kaldi), "-o", str(out), "--vocab", str(lexicon), "--ppl", str(kaldi)]) == 0
    model = read_arpa(out)
    assert model.order == 2 and model.vocab == ["</s>", "<s>", "a", "b", "c"]
    ppl = model.perplexity(SENTENCES)
    printed = capsys.readouterr().out
    assert f"file {kaldi}: 3 sentences, 6 words, 0 OOVs" in printed
    assert f"ppl= {ppl.ppl:.6g}" in printed and math.isfinite(ppl.ppl)


def test_cli_kaldi_text_with_an_empty_utterance(tmp_path, texts):
    # Kaldi text spells an utterance without words as its id alone; like a blank line of plain
    # text, it is an empty sentence and skipped (as SRILM does), not an error
    kaldi, _ = texts
    kaldi.write_text(kaldi.read_text() + "utt9\nutt10 \n")
    out = tmp_path / "lm.arpa"
    assert main(["lm", str(kaldi), "-o", str(out), "--ppl", str(kaldi)]) == 0
    assert read_arpa(out).ngrams == estimate(SENTENCES).ngrams


def test_cli_refuses_to_write_the_model_over_an_input(tmp_path, texts, capsys):
    # as every other command: -o naming an input (the text, --vocab, a --ppl file) would destroy it
    kaldi, plain = texts
    before = kaldi.read_text()
    for extra in ([], ["--ppl", str(plain)], ["--vocab", str(plain)]):
        target = kaldi if not extra else plain
        assert main(["lm", str(kaldi), "-o", str(target)] + extra) == 1
        assert "is also an input" in capsys.readouterr().err
    assert kaldi.read_text() == before and plain.read_text().startswith("<s> a b </s>")


def test_an_unreadable_ppl_text_fails_before_the_model_is_written(tmp_path, texts, capsys):
    """A missing --ppl file failed the run (exit 1) after the ARPA file had replaced the user's."""
    kaldi, _ = texts
    out = tmp_path / "lm.arpa"
    out.write_text("an earlier model\n")
    assert main(["lm", str(kaldi), "-o", str(out), "--ppl", str(tmp_path / "missing.txt")]) == 1
    assert "cannot read text file" in capsys.readouterr().err
    assert out.read_text() == "an earlier model\n"


@pytest.mark.parametrize("content, args, message", [
    (None, [], "cannot read text file"),
    ("utt1\n", [], "no training sentences"),  # an utterance without words is an empty sentence
    ("utt1 a\nutt1 b\n", [], "appears twice"),
    ("", [], "is empty"),
    ("\n\n", ["--no-ids"], "no training sentences"),
    ("a <s> b\n", ["--no-ids"], "is not a word"),
])
def test_cli_bad_text_exits_1_with_a_message(tmp_path, content, args, message, capsys):
    text = tmp_path / "text"
    if content is not None:
        text.write_text(content)
    out = tmp_path / "lm.arpa"
    code = main(["lm", str(text), "-o", str(out)] + args)
    err = capsys.readouterr().err
    assert code == 1 and message in err and "gmmhmm lm: error" in err
    assert not out.exists()


@pytest.mark.parametrize("args", [["--order", "7"], ["--method", "good-turing"], []])
def test_cli_usage_errors_exit_2(tmp_path, texts, args):
    argv = ["lm", str(texts[0])] + args
    if args:
        argv += ["-o", str(tmp_path / "lm.arpa")]
    assert main(argv) == 2


def test_cli_reads_a_sphinx_transcription(tmp_path, capsys):
    """Bug: CMU Sphinx transcription lines '<s> words </s> (utt-id)' (AN4's etc/*.transcription)
    stopped the command with "'</s>' is not a word"; with --no-ids the id after </s> is dropped."""
    from pathlib import Path

    from test_lm_estimate import an4_sentences  # noqa: PLC0415 - fails loudly if AN4 is missing

    transcription = Path(__file__).resolve().parents[2] / "shared" / "data" / "an4" / "etc" / "an4_train.transcription"
    out = tmp_path / "lm.arpa"
    assert main(["lm", str(transcription), "--no-ids", "-o", str(out), "--ppl", str(transcription)]) == 0
    assert read_arpa(out).ngrams == estimate(an4_sentences("train")).ngrams
    assert f"{len(an4_sentences('train'))} sentences" in capsys.readouterr().out
    plain = tmp_path / "plain.txt"  # a '(...)' word is an id only right after </s>
    plain.write_text("a (b)\n<s> a </s> (utt1)\n")
    assert main(["lm", str(plain), "--no-ids", "-o", str(out)]) == 0
    assert read_arpa(out).ngrams == estimate([["a", "(b)"], ["a"]]).ngrams


def test_cli_words_with_unicode_spaces_are_one_word(tmp_path):
    """Kaldi text and SRILM split words on spaces and tabs only: U+00A0 / U+3000 inside (or at the
    end of) a word leave it one word, in the text, the vocabulary and the --ppl file."""
    odd = [["new\u00a0york", "a"], ["\u6771\u4eac\u3000\u99c5", "end\u00a0"]]
    kaldi = tmp_path / "text"
    kaldi.write_text("".join(f"utt{i}\t{' '.join(s)}\n" for i, s in enumerate(odd)), encoding="utf-8")
    plain = tmp_path / "plain.txt"
    plain.write_text("".join(" \t".join(s) + "\r\n" for s in odd), encoding="utf-8")
    vocab = tmp_path / "words.txt"
    vocab.write_text("x\u00a0y X\n", encoding="utf-8")
    expected = estimate(odd, vocab=["x\u00a0y"])
    for path, extra in ((kaldi, []), (plain, ["--no-ids"])):
        out = tmp_path / "lm.arpa"
        assert main(["lm", str(path), "-o", str(out), "--vocab", str(vocab), "--ppl", str(path)] + extra) == 0
        assert read_arpa(out).ngrams == expected.ngrams


def test_cli_kaldi_text_with_tabs_between_words(tmp_path):
    """Kaldi text is ``utt-id word...`` with fields split on spaces and tabs alike: a tab between
    two words (not only after the id) keeps every word, and the id is the first field alone."""
    kaldi = tmp_path / "text"
    kaldi.write_text("utt1 a\tb c\nutt2\tb\ta\n", encoding="utf-8")
    out = tmp_path / "lm.arpa"
    assert main(["lm", str(kaldi), "-o", str(out)]) == 0
    assert read_arpa(out).ngrams == estimate([["a", "b", "c"], ["b", "a"]]).ngrams
