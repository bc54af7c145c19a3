"""Configs: presets load, bad input is one clear LaraUserError naming the fix."""

import pytest
from curriculum_testing import REPO, TOY

from curriculum.cli import main as train_main
from curriculum.config import load_train_config
from lara.utils.errors import LaraUserError

PRESETS = sorted((REPO / "configs" / "train").glob("*/stage*.yaml"))
OVERLAYS = sorted((REPO / "configs" / "train" / "data").glob("*.yaml"))


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_stage_preset_loads(path):
    cfg = load_train_config([path])
    assert cfg.stage == int(path.stem[-1])
    assert cfg.stage == 1 or cfg.init_from  # later stages name their predecessor
    assert all(w > 0 for w in cfg.active_losses().values())  # no preset silently switches a loss off


@pytest.mark.parametrize("overlay", OVERLAYS, ids=lambda p: p.stem)
def test_dataset_overlays_merge(overlay):
    cfg = load_train_config([REPO / "configs" / "train" / "qwen3vl-2b" / "stage1.yaml", overlay])
    assert cfg.data.root and cfg.model.preset == "qwen3vl-2b" and cfg.optim.backbone_lr < cfg.optim.head_lr


def test_overrides_and_fingerprint():
    a = load_train_config([TOY / "stage1.yaml"], ["--optim.head_lr", "0.5"])
    assert a.optim.head_lr == 0.5
    b = load_train_config([TOY / "stage1.yaml"], ["--optim.head_lr", "0.5", "--save_every", "3", "--log_every", "1"])
    c = load_train_config([TOY / "stage1.yaml"], ["--optim.head_lr", "0.6"])
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()


@pytest.mark.parametrize(
    ("yaml_text", "args", "match"),
    [
        ("stage: 1\nbatchsize: 4\n", [], "fields `batchsize` are not valid"),
        ("stage: 1\noptim:\n  lr: 1\n", [], "fields `lr` are not valid for OptimConfig"),
        ("steps: many\n", [], "`steps`: Couldn't parse 'many' into an int"),
        ("stage: [1\n", [], "not valid YAML"),
        ("- 1\n- 2\n", [], "must hold a mapping"),
        ("", ["--optim.head_lr", "fast"], "`optim.head_lr`: Couldn't parse 'fast' into a float"),
        ("", ["--no_such_flag", "1"], "unrecognized arguments: --no_such_flag"),
        ("stage: 2\n", [], "stage 2 starts from the previous stage's checkpoint: set --init_from"),
        ("stage: 4\n", [], "stage=4: must be 1, 2 or 3"),
        ("latent:\n  kind: exponential\n", [], "latent.kind='exponential'"),
        ("latent:\n  end_fraction: 1.0\n", [], "all-latent"),
        ("latent:\n  num_segments: 3\n", [], "tag_order has one level per tag"),
        ("latent:\n  order: [SUBTASK, SUBTASK]\n  num_segments: 2\n", [], "name each tag once"),
        ("model:\n  slot_mode: hidden\n", [], "model.slot_mode='hidden'"),
        ("stage: 3\ninit_from: x\nloss:\n  flow: 0\n", [], "loss.flow must be > 0"),
        ("mixed_precision: fp8\n", [], "mixed_precision"),
    ],
)
def test_bad_config_is_one_clear_error(tmp_path, yaml_text, args, match):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text)
    with pytest.raises(LaraUserError, match=match) as err:
        load_train_config([path], args)
    assert "\n" not in str(err.value)


def test_missing_config_file():
    with pytest.raises(LaraUserError, match="config file nowhere.yaml not found"):
        load_train_config(["nowhere.yaml"])


def test_cli_usage_errors(tmp_path):
    with pytest.raises(LaraUserError, match="give --config"):
        train_main([])
    with pytest.raises(LaraUserError, match="lacks .*stage1.yaml"):
        train_main(["--curriculum", str(tmp_path)])
    with pytest.raises(LaraUserError, match="--stages"):
        train_main(["--curriculum", str(TOY), "--stages", "1,4"])


def test_curriculum_runs_all_stages_then_skips_them(tmp_path, caplog):
    import logging

    caplog.set_level(logging.INFO, logger="curriculum.cli")
    args = ["--curriculum", str(TOY), "--output_root", str(tmp_path), "--steps", "4"]
    assert train_main(args) == 0
    for k in (1, 2, 3):
        assert (tmp_path / f"stage{k}" / "final" / "model" / "model.safetensors").is_file()
    caplog.clear()
    assert train_main(args) == 0
    assert [r.getMessage().split(":")[0] for r in caplog.records if "skipping" in r.getMessage()] == [
        "stage 1", "stage 2", "stage 3"]
