"""The cache keys of every recipe stage under the shipped configs, pinned: a stage's model,
tuning or fold results are read back only under the key they were written with, so a change of
key (e.g. in the code that picks the settings of the systems up to a stage) silently retrains
or re-decodes every experiment. The values were computed by the code before the systems'
settings were gathered by one shared function (gmmhmm.recipe.chain_settings)."""

from __future__ import annotations

import copy

import pytest

from gmmhmm.recipe import load_config

from conftest import REPO_ROOT, load_script

AN4 = {
    "mono_nodev": "52cde1d6c070c96c",
    "mono": "5005720ee60c2e62",
    "tri1_nodev": "6a244ad42eb58f12",
    "tri1": "bd8900afc747ae32",
    "tri2_nodev": "8169c1f28f108995",
    "tri2": "66262cce535ce1e3",
    "tri3_nodev": "6d2dab62eac05c9e",
    "tri3": "34c3997653ab0295",
    "mono-tune": "8efe081bce2aa225",
    "tri1-tune": "e256a66a49b15d8d",
    "tri2-tune": "1c31b1ab017217e1",
    "tri3-tune": "d5ffcc5e7440c012",
}

CATHY_PHONES = {
    "mono_nodev": "8ec53d171567cdb4",
    "mono": "f9691e0575d0b596",
    "tri1_nodev": "54e60009be2669cf",
    "tri1": "cd4daa4dbb252f18",
    "mono-tune": "393029711adf9a0f",
    "tri1-tune": "eebb07693d69bd84",
}

# training keys of FSDD LOSO's systems for two made-up utterances, and a fold's decoding key
# (penalty 0.5, those training keys); also with [vtln] off, a branch of training_key
FSDD_LOSO = {
    "mono": "4f8d79345d7697ab7499e4eb645f31d4f623597e8f29e934ecbdc7c7838a11e0",
    "tri1": "6e7d3a1bb54e84d8ccacc5d5c618107af492c902114e1515b11664491d8ef67e",
    "tri2": "482fe6cf5e27d36bbabbe996148a0e69dbdcfe129f9e78992ba51b87f0e1e287",
    "tri3": "5204a7023c6d84a281bcedd4b80031fadc1427ddacf6fd14ef545c30974d7956",
    "decode": "72b6cd962c7ddc4101ace893cb56e55de2789a79b3c7fc94bde886a2fa41c60c",
}

FSDD_LOSO_NO_VTLN = {
    "mono": "bfa0c6bbcabc5a1319144514c7a262122e78ef1d7d6cbfa09dd7f2afb0badb31",
    "tri1": "ff90e12ae3e15ad542fbccf3f369b03794c90bafc02019ef945ff51b16e61646",
    "tri2": "63ed0e6bd31c07e63f7346d2aae2a5e093e44db6cef1b3881f6b37b449e4e5f9",
    "tri3": "03257877f0bffe11e42a58ea6d84578fae0c840548102ede7f5d8641ec20d627",
    "decode": "07bfaf6ede3c766d2c8c421251e5884c66a07e319133aab1e94f235b4dbd8c16",
}


@pytest.fixture(scope="module")
def recipes():
    return {name: load_script(f"recipes/{name}.py") for name in ("an4", "cathy_phones", "fsdd_loso")}


def config(name: str) -> dict:
    return load_config(REPO_ROOT / "configs" / f"{name}.toml")


def test_an4_keys(recipes):
    an4, cfg = recipes["an4"], config("an4")
    keys = {f"{s}{suffix}": an4.model_key(cfg, s, suffix) for s in an4.systems(cfg) for suffix in ("_nodev", "")}
    keys |= {f"{s}-tune": an4.tuning_key(cfg, s) for s in an4.systems(cfg)}
    assert keys == AN4


def test_cathy_phones_keys(recipes):
    cathy, cfg = recipes["cathy_phones"], config("cathy_phones")
    names = [n for n, _, _ in cathy.SYSTEMS]
    keys = {f"{n}{suffix}": cathy.model_key(cfg, n, suffix) for n in names for suffix in ("_nodev", "")}
    keys |= {f"{n}-tune": cathy.tuning_key(cfg, n) for n in names}
    assert keys == CATHY_PHONES


@pytest.mark.parametrize("vtln, expected", [(True, FSDD_LOSO), (False, FSDD_LOSO_NO_VTLN)])
def test_fsdd_loso_keys(recipes, vtln, expected):
    loso, cfg = recipes["fsdd_loso"], copy.deepcopy(config("fsdd_loso"))
    assert cfg["vtln"]["enabled"]
    cfg["vtln"]["enabled"] = vtln
    utts = ["3_theo_7", "0_jackson_0"]
    keys = {s: loso.training_key(cfg, s, utts) for s in loso.an4_systems(cfg)}
    info = {s: {"training_key": k} for s, k in keys.items()}
    assert keys | {"decode": loso.decoding_key(cfg, {"word_insertion_penalty": 0.5}, info)} == expected
