"""The xyzw quaternion helpers against scipy, with the numerically hard corners: angles near 0 and near pi."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation, Slerp

from motion_vqvae.rotations import (
    expmap_to_quat,
    matrix_to_quat,
    quat_make_continuous,
    quat_mul,
    quat_normalize,
    quat_rotate,
    quat_slerp,
    quat_to_6d,
    quat_to_expmap,
    quat_to_matrix,
    quat_yaw,
    sixd_to_quat,
)

RNG = np.random.default_rng(0)


def _axes(n: int) -> np.ndarray:
    v = RNG.normal(size=(n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _same_rotation(q1: np.ndarray, q2: np.ndarray, atol: float) -> None:
    """q and -q are the same rotation: compare after aligning signs."""
    sign = np.where(np.sum(q1 * q2, axis=-1, keepdims=True) < 0, -1.0, 1.0)
    np.testing.assert_allclose(q1, sign * q2, rtol=0, atol=atol)


SMALL_ANGLES = np.geomspace(1e-9, 1e-4, 40)
NEAR_PI = np.pi - np.concatenate([np.geomspace(1e-7, 1e-12, 20), [0.0]])


def test_expmap_to_quat_near_zero_keeps_relative_precision():
    r = _axes(len(SMALL_ANGLES)) * SMALL_ANGLES[:, None]
    q = expmap_to_quat(r)
    ref = Rotation.from_rotvec(r).as_quat()  # xyzw, w >= 0
    # The vector part is ~angle/2: an absolute tolerance would hide an acos-style loss of digits.
    np.testing.assert_allclose(q[:, :3], ref[:, :3], rtol=1e-12, atol=0)
    np.testing.assert_allclose(q[:, 3], ref[:, 3], rtol=0, atol=1e-15)
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-15)


def test_quat_to_expmap_near_zero_keeps_relative_precision():
    r = _axes(len(SMALL_ANGLES)) * SMALL_ANGLES[:, None]
    q = Rotation.from_rotvec(r).as_quat()
    np.testing.assert_allclose(quat_to_expmap(q), r, rtol=1e-10, atol=0)
    # Either sign of the quaternion is the same rotation, hence the same exp-map.
    np.testing.assert_allclose(quat_to_expmap(-q), r, rtol=1e-10, atol=0)


def test_expmap_round_trip_near_pi():
    axes = _axes(len(NEAR_PI))
    r = axes * NEAR_PI[:, None]
    q = expmap_to_quat(r)
    _same_rotation(q, Rotation.from_rotvec(r).as_quat(), atol=1e-14)
    back = quat_to_expmap(q)
    np.testing.assert_allclose(np.linalg.norm(back, axis=1), NEAR_PI, rtol=0, atol=1e-12)
    # Below pi the axis is unique; at exactly pi, r and -r are the same rotation.
    below = NEAR_PI < np.pi
    np.testing.assert_allclose(back[below], r[below], rtol=0, atol=1e-12)
    at_pi = ~below
    flipped = np.minimum(
        np.abs(back[at_pi] - r[at_pi]).max(axis=1), np.abs(back[at_pi] + r[at_pi]).max(axis=1)
    )
    assert flipped.max() < 1e-12


def test_quat_to_expmap_near_pi_with_either_sign_of_w():
    """Near pi, w ~ 0 may arrive with either sign; both must give an angle <= pi matching scipy's."""
    r = _axes(len(NEAR_PI)) * NEAR_PI[:, None]
    q = Rotation.from_rotvec(r).as_quat()
    for qq in (q, -q):
        back = quat_to_expmap(qq)
        assert np.all(np.linalg.norm(back, axis=1) <= np.pi + 1e-12)
        _same_rotation(Rotation.from_rotvec(back).as_quat(), q, atol=1e-14)


def test_matrix_round_trip_on_every_shepperd_branch():
    # Random rotations plus rotations near pi about x, y and z (each branch of Shepperd's method).
    special = np.concatenate([np.eye(3) * (np.pi - 1e-6), [[0.0, 0.0, 0.0]]])
    r = np.concatenate([Rotation.random(200, random_state=1).as_rotvec(), special])
    q = Rotation.from_rotvec(r).as_quat()
    m = quat_to_matrix(q)
    np.testing.assert_allclose(m, Rotation.from_quat(q).as_matrix(), atol=1e-14)
    back = matrix_to_quat(m)
    assert np.all(back[:, 3] >= 0)
    _same_rotation(back, q, atol=1e-12)
    assert matrix_to_quat(m.reshape(2, -1, 3, 3)).shape == (2, len(q) // 2, 4)


def test_quat_mul_and_rotate_match_scipy():
    a, b = Rotation.random(50, random_state=2), Rotation.random(50, random_state=3)
    _same_rotation(quat_mul(a.as_quat(), b.as_quat()), (a * b).as_quat(), atol=1e-14)
    v = RNG.normal(size=(50, 3))
    np.testing.assert_allclose(quat_rotate(a.as_quat(), v), a.apply(v), atol=1e-13)


def test_6d_round_trip_and_gram_schmidt_on_noisy_input():
    q = Rotation.random(100, random_state=4).as_quat()
    d6 = quat_to_6d(q)
    _same_rotation(sixd_to_quat(d6), q, atol=1e-12)
    # A network never outputs orthonormal columns: scale and perturb, still a unit quaternion close to q.
    noisy = d6 * 1.7 + RNG.normal(scale=1e-3, size=d6.shape)
    out = sixd_to_quat(noisy)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-12)
    _same_rotation(out, q, atol=5e-3)


def test_slerp_matches_scipy_and_takes_shortest_path():
    rots = Rotation.random(2, random_state=5)
    a, b = rots.as_quat()
    t = np.linspace(0.0, 1.0, 11)
    ref = Slerp([0.0, 1.0], rots)(t).as_quat()
    out = quat_slerp(np.broadcast_to(a, (11, 4)), np.broadcast_to(b, (11, 4)), t)
    _same_rotation(out, ref, atol=1e-12)
    # -b is the same rotation: slerp must not take the long way round.
    _same_rotation(quat_slerp(np.broadcast_to(a, (11, 4)), np.broadcast_to(-b, (11, 4)), t), ref, atol=1e-12)


def test_slerp_between_nearly_equal_quaternions_is_finite():
    a = Rotation.from_rotvec([0.3, -0.2, 0.1]).as_quat()
    b = Rotation.from_rotvec([0.3, -0.2, 0.1 + 1e-9]).as_quat()
    out = quat_slerp(a, b, 0.5)
    assert np.all(np.isfinite(out))
    _same_rotation(out, a, atol=1e-9)


def test_make_continuous_removes_sign_flips_only():
    q = Rotation.from_rotvec(np.linspace([0, 0, 0], [0.5, 6.0, -2.0], 200)).as_quat()
    flips = RNG.choice([-1.0, 1.0], size=(200, 1))
    out = quat_make_continuous(q * flips)
    assert np.all(np.sum(out[1:] * out[:-1], axis=1) >= 0)
    np.testing.assert_array_equal(out[0], q[0] * flips[0])  # the first frame's sign is kept
    _same_rotation(out, q, atol=0)
    assert len(quat_make_continuous(q[:1])) == 1


def test_yaw_is_the_heading_of_the_body_x_axis():
    r = Rotation.random(100, random_state=6)
    np.testing.assert_allclose(quat_yaw(r.as_quat()), r.as_euler("ZYX")[:, 0], atol=1e-10)


@pytest.mark.parametrize("scale", [0.0, 2.0])
def test_normalize_keeps_zero_and_scales_to_unit(scale: float):
    q = np.array([[0.0, 0.0, 0.0, 1.0]]) * scale
    out = quat_normalize(q)
    expected = q if scale == 0.0 else np.array([[0.0, 0.0, 0.0, 1.0]])
    np.testing.assert_array_equal(out, expected)
