"""TokenSpec: the one description of a tokenizer's token structure (sim2real.token_spec)."""

import json
import math

import numpy as np
import pytest

from sim2real.token_spec import TokenSpec


def spec(**kw):
    base = dict(
        kind="vq", num_levels=1, nb_code=384, fsq_levels=None, parts=("body",), frames_per_token=4, fps=30.0
    )
    base.update(kw)
    return TokenSpec(**base)


def test_single_level_is_plain_ints():
    s = spec()
    assert s.is_single and s.num_streams == 1 and s.stream_sizes == (384,)
    assert s.check_tokens([0, 383]).dtype == np.int64
    with pytest.raises(ValueError, match=r"\[0, 383\]"):
        s.check_tokens([384])
    with pytest.raises(ValueError, match="shape"):
        s.check_tokens([[1, 2]])


def test_rvq_with_parts_orders_streams_part_major():
    s = spec(kind="rvq", num_levels=3, nb_code=512, parts=("upper", "lower"))
    assert s.num_streams == 6
    assert s.stream_names[:4] == ("upper/L0", "upper/L1", "upper/L2", "lower/L0")
    assert s.stream_index("lower", 1) == 4
    assert math.isclose(s.bits_per_second(), 6 * 9 * 30 / 4)
    assert math.isclose(s.bits_per_second(levels=1), 2 * 9 * 30 / 4)
    with pytest.raises(ValueError, match=r"\[1, 3\]"):
        s.bits_per_second(levels=4)
    tokens = s.check_tokens(np.zeros((5, 6), np.int32))
    assert tokens.shape == (5, 6) and tokens.dtype == np.int64
    with pytest.raises(ValueError, match="S=6"):
        s.check_tokens(np.zeros((5, 5), np.int64))
    assert s.check_tokens(np.zeros((2, 5, 6), np.int64), batched=True).shape == (2, 5, 6)


def test_fsq_digits_round_trip_and_mixed_radix_order():
    s = spec(kind="fsq", nb_code=8 * 5 * 5 * 5, fsq_levels=(8, 5, 5, 5))
    index = np.arange(s.nb_code)
    digits = s.fsq_digits(index)
    assert digits.shape == (1000, 4) and digits.max(axis=0).tolist() == [7, 4, 4, 4]
    assert s.fsq_digits(5 * 5 * 5).tolist() == [1, 0, 0, 0]  # first digit most significant
    np.testing.assert_array_equal(s.fsq_index(digits), index)
    with pytest.raises(ValueError, match="prod"):
        spec(kind="fsq", nb_code=999, fsq_levels=(8, 5, 5, 5))


def test_dict_round_trip_is_json_and_strict():
    s = spec(kind="rvq", num_levels=4, nb_code=512, parts=("upper", "lower"), fps=60.0)
    data = json.loads(json.dumps(s.to_dict()))
    assert TokenSpec.from_dict(data) == s
    with pytest.raises(ValueError, match="unknown keys"):
        TokenSpec.from_dict({**data, "levels": 2}, source="manifest.json")
    with pytest.raises(ValueError, match="manifest.json"):
        TokenSpec.from_dict({**data, "fps": float("nan")}, source="manifest.json")
    with pytest.raises(ValueError, match="one level"):
        spec(kind="vq", num_levels=2)
