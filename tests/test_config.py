"""Typed config loading: conversion, unknown keys, ranges, cross-field rules, --set overrides."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from motion_vqvae.config_loader import AgentConfig, ConfigLoader, default_config_path, save_config


def test_shipped_yaml_sets_every_key_and_matches_defaults() -> None:
    raw = yaml.safe_load(default_config_path().read_text())["agent"]["config"]
    fields = {f.name for f in dataclasses.fields(AgentConfig)}
    assert set(raw) == fields, "motion_vqvae/configs/agent.yaml must list every key exactly once"
    assert ConfigLoader().config == AgentConfig()


def test_values_are_converted_to_declared_types(tmp_path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text(
        "agent:\n  config:\n    lr: 2e-4\n    batch_size: '64'\n    causal: 'false'\n    real_dof: null\n"
    )
    cfg = ConfigLoader(path).config
    assert cfg.lr == pytest.approx(2e-4) and isinstance(cfg.lr, float)
    assert cfg.batch_size == 64 and cfg.causal is False and cfg.real_dof is None


def test_unknown_key_names_the_closest_valid_one() -> None:
    with pytest.raises(KeyError, match="did you mean 'nb_code'"):
        AgentConfig.from_dict({"nb_codes": 256})


@pytest.mark.parametrize(
    ("values", "error", "match"),
    [
        ({"lr": "fast"}, TypeError, "key 'lr'.*'fast'"),
        ({"batch_size": 0}, ValueError, "key 'batch_size'.*minimum 1"),
        ({"vq_act": "tanh"}, ValueError, "relu"),
        ({"quantizer": "magic"}, ValueError, "ema_reset"),
        ({"window_size": 30}, ValueError, "multiple of"),
        ({"code_dim": 32}, ValueError, "output_emb_width"),
        ({"sim_to_real_idx": [0, 0]}, ValueError, "duplicate"),
        ({"real_dof": 3, "sim_to_real_idx": [0, 5]}, ValueError, "real_dof=3"),
        ({"causal": "maybe"}, TypeError, "true/false"),
    ],
)
def test_bad_values_fail_with_key_value_and_allowed(values, error, match) -> None:
    with pytest.raises(error, match=match):
        AgentConfig.from_dict(values)


def test_command_line_overrides_and_saved_config_round_trip(tmp_path) -> None:
    cfg = ConfigLoader(overrides=["lr=5e-4", "val_clips=[a, b]", "causal=false"]).config
    assert cfg.lr == pytest.approx(5e-4) and cfg.val_clips == ["a", "b"] and not cfg.causal
    save_config(cfg, tmp_path / "config.yaml")
    assert ConfigLoader(tmp_path / "config.yaml").config == cfg
    with pytest.raises(ValueError, match="key=value"):
        ConfigLoader(overrides=["lr"])


def test_wrong_layout_is_explained(tmp_path) -> None:
    path = tmp_path / "flat.yaml"
    path.write_text("lr: 1e-3\n")
    with pytest.raises(KeyError, match="agent: config"):
        ConfigLoader(path)
