"""Robot descriptions and joint maps: the shipped G1 YAMLs, real data through the maps, and loud failures."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import joblib
import numpy as np
import pytest
import yaml

from sim2real import JointMap, RobotDescription, load_robot, remap_columns
from sim2real.robot import ROBOTS_DIR

REPO_ROOT = Path(__file__).resolve().parents[1]
WRISTS = [f"{side}_wrist_{axis}_joint" for side in ("left", "right") for axis in ("roll", "pitch", "yaw")]


def _meta_names(folder: Path) -> list[str]:
    return json.loads((folder / "meta.json").read_text())["dof_names"]


@pytest.fixture(scope="module")
def g1_29() -> RobotDescription:
    return load_robot("g1_29dof")


@pytest.fixture(scope="module")
def g1_23() -> RobotDescription:
    return load_robot("g1_23dof")


def _write_robot(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "robot.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _small_robot(**joint_extras: dict) -> dict:
    """A 3-joint robot whose real order is reversed and has one extra, unmapped slot."""
    joints = {n: {"lower": -1.0, "upper": 2.0, "velocity": 10.0} for n in ("a", "b", "c", "d")}
    for name, extra in joint_extras.items():
        joints[name] = {**joints[name], **extra}
    return {
        "name": "toy",
        "sim_joint_names": ["a", "b", "c"],
        "real_joint_names": ["d", "c", "b", "a"],
        "joints": joints,
    }


# ------------------------------------------------------------------------------------------- shipped YAMLs
def test_g1_29dof_matches_data_and_mjcf(g1_29: RobotDescription, g1_moves_dir: Path, unitree_g1_xml: Path):
    assert list(g1_29.sim_joint_names) == _meta_names(g1_moves_dir)
    assert g1_29.real_joint_names == g1_29.sim_joint_names  # SDK motor order = MJCF order on the G1
    assert g1_29.joint_map().is_identity
    hinges = [j for j in ET.parse(unitree_g1_xml).getroot().iter("joint") if j.get("type") != "free"]
    assert [j.get("name") for j in hinges] == list(g1_29.sim_joint_names)
    lower, upper, velocity = g1_29.sim_limits()
    ranges = np.array([[float(v) for v in j.get("range").split()] for j in hinges])
    np.testing.assert_array_equal(lower, ranges[:, 0])
    np.testing.assert_array_equal(upper, ranges[:, 1])
    assert np.all((velocity >= 20.0) & (velocity <= 37.0))
    assert g1_29.mjcf == (REPO_ROOT / "motion_vqvae" / "assets" / "g1_29dof.xml").resolve()


def test_g1_23dof_leaves_the_wrist_slots_unmapped(
    g1_23: RobotDescription, g1_29: RobotDescription, asap_dir: Path
):
    assert list(g1_23.sim_joint_names) == _meta_names(asap_dir)
    assert g1_23.real_joint_names == g1_29.real_joint_names
    jmap = g1_23.joint_map()
    assert (jmap.num_sim, jmap.real_dof) == (23, 29)
    unmapped = [g1_23.real_joint_names[j] for j in np.flatnonzero(jmap.real_to_sim_idx < 0)]
    assert unmapped == WRISTS
    np.testing.assert_array_equal(g1_23.real_limits()[0], g1_29.real_limits()[0])


def test_available_names_and_unknown_name(g1_29: RobotDescription):
    assert {"g1_29dof", "g1_23dof"} <= set(p.stem for p in ROBOTS_DIR.glob("*.yaml"))
    assert load_robot(ROBOTS_DIR / "g1_29dof.yaml").sim_joint_names == g1_29.sim_joint_names
    with pytest.raises(KeyError, match="unknown robot 'h1'.*g1_23dof"):
        load_robot("h1")
    with pytest.raises(FileNotFoundError, match="nowhere.yaml"):
        load_robot("nowhere.yaml")


# ------------------------------------------------------------------------------------------- real data
def test_g1_moves_to_23_dof_and_back(g1_moves_dir: Path, g1_23: RobotDescription):
    names29 = _meta_names(g1_moves_dir)
    dof29 = np.loadtxt(g1_moves_dir / "B_Fence1.csv", delimiter=",")[:, 7:]
    dof23 = remap_columns(dof29, names29, g1_23.sim_joint_names)
    keep = [i for i, n in enumerate(names29) if n not in WRISTS]
    np.testing.assert_array_equal(dof23, dof29[:, keep])
    real = g1_23.joint_map().sim_to_real(dof23)
    wrist_cols = [names29.index(n) for n in WRISTS]
    assert np.all(real[:, wrist_cols] == 0.0) and np.any(dof29[:, wrist_cols] != 0.0)
    np.testing.assert_array_equal(real[:, keep], dof29[:, keep])


def test_asap_23_dof_to_the_29_motor_robot(asap_dir: Path, g1_23: RobotDescription):
    clip = next(iter(joblib.load(sorted(asap_dir.glob("*.pkl"))[0]).values()))
    dof23 = np.asarray(clip["dof"], dtype=np.float64)
    jmap = g1_23.joint_map()
    real = jmap.sim_to_real(dof23)
    assert real.shape == (len(dof23), 29)
    wrists = [jmap.real_joint_names.index(n) for n in WRISTS]
    assert np.all(real[:, wrists] == 0.0)
    np.testing.assert_array_equal(real[:, jmap.sim_to_real_idx], dof23)
    np.testing.assert_array_equal(jmap.real_to_sim(real), dof23)
    # By name gives the same columns as the index map.
    np.testing.assert_array_equal(remap_columns(dof23, g1_23.sim_joint_names, jmap.real_joint_names), real)


# ------------------------------------------------------------------------------------------- maps
def test_permutation_sign_offset_and_inverse(tmp_path: Path):
    robot = load_robot(_write_robot(tmp_path, _small_robot(b={"sign": -1, "offset": 0.5})))
    jmap = robot.joint_map()
    np.testing.assert_array_equal(jmap.sim_to_real_idx, [3, 2, 1])
    np.testing.assert_array_equal(jmap.real_to_sim_idx, [-1, 2, 1, 0])
    x = np.array([[0.1, 0.2, 0.3], [1.0, -1.0, 2.0]])
    np.testing.assert_allclose(jmap.sim_to_real(x), [[0.0, 0.3, 0.3, 0.1], [0.0, 2.0, 1.5, 1.0]])
    np.testing.assert_allclose(jmap.real_to_sim(jmap.sim_to_real(x)), x, atol=1e-15)
    np.testing.assert_allclose(jmap.sim_to_real(x, velocity=True)[:, 2], -x[:, 1])  # no offset on rates
    np.testing.assert_allclose(jmap.real_to_sim(jmap.sim_to_real(x, velocity=True), velocity=True), x)
    lower, upper, _ = robot.real_limits()  # b: sign -1 and offset 0.5 turn [-1, 2] into [-1.5, 1.5]
    np.testing.assert_allclose([lower[2], upper[2]], [-1.5, 1.5])
    assert JointMap(jmap.sim_to_real_idx, 4, default=7.0).sim_to_real(x)[0, 0] == 7.0


def test_dict_round_trip_is_plain_json(g1_23: RobotDescription):
    jmap = g1_23.joint_map()
    again = JointMap.from_dict(json.loads(json.dumps(jmap.to_dict())))
    assert again.to_dict() == jmap.to_dict()
    with pytest.raises(KeyError, match="unknown keys \\['nb_code'\\]"):
        JointMap.from_dict({**jmap.to_dict(), "nb_code": 1})
    with pytest.raises(KeyError, match="real_dof"):
        JointMap.from_dict({"sim_to_real_idx": [0]})


def test_from_config_identity_default_and_override(g1_23: RobotDescription):
    ident = JointMap.from_config(g1_23, apply_sim_to_real_map=False, real_dof=None)
    assert ident.is_identity and ident.real_dof == 23
    assert JointMap.from_config(g1_23, True).to_dict() == g1_23.joint_map().to_dict()
    # An explicit list from the agent config overrides the YAML: reversed order into 30 slots.
    idx = list(range(22, -1, -1))
    custom = JointMap.from_config(g1_23, True, real_dof=30, sim_to_real_idx=idx)
    assert custom.real_dof == 30
    np.testing.assert_array_equal(custom.sim_to_real(np.arange(23.0))[:23], np.arange(23.0)[::-1])
    assert (
        custom.real_joint_names[0] == g1_23.sim_joint_names[22] and custom.real_joint_names[29] == "slot_29"
    )
    same = JointMap.from_config(g1_23, True, 29, g1_23.joint_map().sim_to_real_idx.tolist())
    assert same.real_joint_names == list(g1_23.real_joint_names)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"real_dof": 29, "sim_to_real_idx": [0] * 23}, ValueError, r"indices \[0\] appear more than once"),
        ({"real_dof": 29, "sim_to_real_idx": list(range(7, 30))}, ValueError, r"indices \[29\] are outside"),
        ({"real_dof": 29, "sim_to_real_idx": list(range(22))}, ValueError, "22 entries, the robot has 23"),
        ({"real_dof": 29, "sim_to_real_idx": [0.5] * 23}, TypeError, "list of integers"),
        ({"real_dof": 0, "sim_to_real_idx": list(range(23))}, ValueError, "positive integer"),
        ({"real_dof": 30}, ValueError, "real_dof 30 disagrees"),
    ],
)
def test_from_config_refuses_bad_index_lists(
    g1_23: RobotDescription, kwargs: dict, error: type, message: str
):
    with pytest.raises(error, match=message):
        JointMap.from_config(g1_23, True, **kwargs)


def test_from_config_refuses_contradictions(g1_23: RobotDescription):
    with pytest.raises(ValueError, match="apply_sim_to_real_map is false.*real_dof is 29"):
        JointMap.from_config(g1_23, False, real_dof=29)
    with pytest.raises(TypeError, match="true or false"):
        JointMap.from_config(g1_23, "yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="shape"):
        JointMap([0, 1], 2, sign=[1.0])
    with pytest.raises(ValueError, match="must be 1 or -1"):
        JointMap([0, 1], 2, sign=[1.0, 0.5])
    with pytest.raises(ValueError, match="expected 2 sim joints"):
        JointMap.identity(2).sim_to_real(np.zeros(3))


def test_remap_columns_refuses_ambiguous_names():
    with pytest.raises(ValueError, match=r"src_names lists \['a'\]"):
        remap_columns(np.zeros((2, 2)), ["a", "a"], ["a"])
    with pytest.raises(ValueError, match="2 source names"):
        remap_columns(np.zeros((2, 3)), ["a", "b"], ["a"])
    with pytest.raises(ValueError, match="no joint name is shared"):
        remap_columns(np.zeros((2, 2)), ["a", "b"], ["x", "y"])
    np.testing.assert_array_equal(
        remap_columns(np.array([1.0, 2.0]), ["a", "b"], ["b", "z"], fill=-1), [2.0, -1.0]
    )


# ------------------------------------------------------------------------------------------- YAML errors
@pytest.mark.parametrize(
    ("edit", "error", "message"),
    [
        (lambda d: d.update(sim_to_real_idx=[0]), KeyError, r"unknown keys \['sim_to_real_idx'\]"),
        (lambda d: d["joints"]["a"].update(vel=3), KeyError, r"joints.a: unknown keys \['vel'\]"),
        (lambda d: d["joints"]["a"].pop("velocity"), KeyError, r"joints.a: missing \['velocity'\]"),
        (lambda d: d["joints"].pop("d"), KeyError, r"no limits for \['d'\]"),
        (lambda d: d["joints"].update(e=d["joints"]["a"]), KeyError, r"lists \['e'\], which are in neither"),
        (lambda d: d.update(sim_joint_names=["a", "b", "a"]), ValueError, r"'sim_joint_names' lists \['a'\]"),
        (lambda d: d["joints"]["a"].update(lower="2e-4x"), TypeError, "joints.a.lower: expected a number"),
        (lambda d: d["joints"]["a"].update(lower=3.0), ValueError, "joints.a: lower"),
        (lambda d: d["joints"]["a"].update(sign=2), ValueError, "sign must be 1 or -1"),
        (
            lambda d: d["joints"]["d"].update(offset=0.1),
            ValueError,
            "only apply to joints in sim_joint_names",
        ),
        (lambda d: d.pop("joints"), KeyError, "missing key 'joints'"),
        (lambda d: d.update(real_joint_names=[]), TypeError, "'real_joint_names' must be a non-empty list"),
    ],
)
def test_bad_robot_yaml_names_file_and_key(tmp_path: Path, edit, error: type, message: str):
    data = _small_robot()
    edit(data)
    path = _write_robot(tmp_path, data)
    with pytest.raises(error, match=message) as info:
        load_robot(path)
    assert str(path.resolve()) in str(info.value)


def test_yaml_numbers_written_as_strings_are_converted(tmp_path: Path):
    data = _small_robot(a={"velocity": "2e1"})
    assert load_robot(_write_robot(tmp_path, data)).joints["a"].velocity == 20.0


# ------------------------------------------------------------------------------------------- isolation
def test_sim2real_imports_without_torch_scipy_or_motion_vqvae():
    code = textwrap.dedent(
        """
        import sys
        BLOCKED = {"torch", "scipy", "motion_vqvae"}

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ImportError(f"blocked import of {name}")
                return None

        sys.meta_path.insert(0, Block())
        import numpy as np
        import sim2real
        jmap = sim2real.load_robot("g1_23dof").joint_map()
        assert jmap.sim_to_real(np.ones(23)).sum() == 23.0
        assert not BLOCKED & {m.split(".")[0] for m in sys.modules}
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
