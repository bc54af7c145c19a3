"""Configs: the named presets build, YAML files and flags apply on top, bad input is one clear
LaraUserError naming the fix."""

import pytest
from curriculum_testing import REPO

from curriculum.presets import load_train_config, train_preset
from lara.scripts.train_cli import main as train_main
from lara.utils.errors import LaraUserError

OVERLAYS = sorted((REPO / "configs" / "train" / "data").glob("*.yaml"))
MODEL_SIZES = ("tiny", "small", "qwen3vl-2b", "qwen3vl-4b")
# stage -> visual L1 weight: the CPU sizes' own, the Qwen3-VL sizes' the reference's (stage II ends at 0.2)
VISUAL_L1 = {"cpu": {1: 0.1, 2: 0.2, 3: 0.2}, "qwen": {1: 0.1, 2: 0.2, 3: 0.1}}


@pytest.mark.parametrize("stage", [1, 2, 3])
@pytest.mark.parametrize("size", MODEL_SIZES)
def test_every_stage_preset_builds(size, stage):
    cfg = load_train_config(preset=size, stage=stage)
    assert cfg.stage == stage and cfg.output_dir.endswith(f"/{size}/stage{stage}")
    if stage > 1:  # later stages name their predecessor's final checkpoint
        assert cfg.init_from == f"{train_preset(size, stage - 1).output_dir}/final"
    assert all(w > 0 for w in cfg.active_losses().values())  # no preset silently switches a loss off
    assert cfg.loss.visual_l1 == VISUAL_L1["qwen" if size.startswith("qwen") else "cpu"][stage]
    assert (cfg.data.annotation is None) == (stage == 3)  # stage III reads no CoT text


def test_sizes_differ_in_the_model_and_its_training_settings():
    tiny, small, q2b, q4b = (train_preset(size, 1) for size in MODEL_SIZES)
    assert [c.model.vision.image_size for c in (tiny, small, q2b)] == [64, 128, 256]
    assert [(c.optim.backbone_lr, c.batch_size) for c in (tiny, small)] == [(1e-4, 8), (1e-4, 8)]
    assert q2b.model.backbone.gradient_checkpointing and q2b.data.num_workers == 8
    assert (q2b.batch_size * q2b.grad_accum_steps, q4b.batch_size * q4b.grad_accum_steps) == (32, 32)
    assert q4b.model.backbone.hidden_size == 2560 and q4b.model.vision == q2b.model.vision


def test_baseline_is_stage_three_from_scratch_without_reasoning():
    cfg = load_train_config(preset="small", stage="baseline")
    assert (cfg.stage, cfg.from_scratch, cfg.init_from) == (3, True, None)
    assert cfg.output_dir == "outputs/train/small/baseline"
    assert cfg.model.foresight.num_slots == 0  # no <img_next>
    assert cfg.model.latent.canonical_tags == []  # no latent segments
    assert cfg.active_losses() == {"flow": 1.0, "visual_l1": 0.0} and cfg.data.annotation is None  # no CoT
    stage3 = train_preset("small", 3)  # the same backbone, vision tower and expert otherwise
    assert (cfg.model.backbone, cfg.model.vision, cfg.model.expert) == (
        stage3.model.backbone,
        stage3.model.vision,
        stage3.model.expert,
    )
    scratch = ["--init_from", "null", "--from_scratch", "true"]  # any stage III, asked for explicitly
    assert load_train_config(preset="tiny", stage=3, overrides=scratch).from_scratch
    with pytest.raises(LaraUserError, match="or pass --from_scratch true to train it from random init"):
        load_train_config(preset="tiny", stage=3, overrides=["--init_from", "null"])
    with pytest.raises(LaraUserError, match="from_scratch and init_from .* exclude each other"):
        load_train_config(preset="small", stage="baseline", overrides=["--init_from", "runs/x/final"])


def test_no_curriculum_is_stage_three_from_scratch_with_latent_and_foresight_slots():
    cfg = load_train_config(preset="small", stage="no_curriculum")
    stage3 = train_preset("small", 3)
    assert (cfg.stage, cfg.from_scratch, cfg.init_from) == (3, True, None)
    assert cfg.output_dir == "outputs/train/small/no_curriculum" and cfg.data.annotation is None  # no CoT
    assert cfg.model == stage3.model and cfg.loss == stage3.loss  # the stage-III sequence and objective
    assert cfg.model.latent.canonical_tags and cfg.model.foresight.num_slots > 0
    assert load_train_config(preset="qwen3vl-2b", stage="no_curriculum").loss.visual_l1 == 0.1


@pytest.mark.parametrize("overlay", OVERLAYS, ids=lambda p: p.stem)
def test_dataset_overlays_merge(overlay):
    cfg = load_train_config([overlay], preset="qwen3vl-2b", stage=1)
    assert cfg.data.datasets() and cfg.model.backbone.hidden_size == 2048  # a root or a mixture
    assert cfg.optim.backbone_lr < cfg.optim.head_lr


def test_yaml_and_flags_apply_on_the_preset(tmp_path):
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text("model:\n  chunk_size: 16\n  vision:\n    cameras: [agentview]\nsteps: 7\n")
    flags = ["--model.expert.num_layers", "6", "--steps", "9"]
    cfg = load_train_config([overlay], flags, preset="tiny", stage=2)
    model = cfg.model
    assert (model.chunk_size, model.vision.cameras, model.expert.num_layers) == (16, ["agentview"], 6)
    assert cfg.steps == 9 and cfg.model.vision.image_size == 64  # the flag wins; the rest stays the preset's
    assert cfg.init_from == "outputs/train/tiny/stage1/final"


def test_a_saved_config_yaml_reloads_as_the_same_config(tmp_path):
    cfg = load_train_config([], ["--model.backbone.num_hidden_layers", "3"], preset="small", stage=3)
    (tmp_path / "config.yaml").write_text(cfg.to_yaml())  # what every run writes into its output_dir
    again = load_train_config([tmp_path / "config.yaml"])
    assert again == cfg and again.fingerprint() == cfg.fingerprint()


def test_overrides_and_fingerprint():
    def toy(*flags):
        return load_train_config([], list(flags), preset="toy", stage=1)

    a = toy("--optim.head_lr", "0.5")
    assert a.optim.head_lr == 0.5
    b = toy("--optim.head_lr", "0.5", "--save_every", "3", "--log_every", "1")  # operational: same run
    c = toy("--optim.head_lr", "0.6")
    d = toy("--optim.head_lr", "0.5", "--model.expert.num_layers", "2")  # a model field changes the run
    assert a.fingerprint() == b.fingerprint() != c.fingerprint() != d.fingerprint()


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
        ("latent:\n  kind: linear\n", [], "at random: set --model.latent.selection random"),
        ("model:\n  latent:\n    order: [SUBTASK, MOVE, MOVE]\n", [], "invalid model setting: latent.order"),
        ("model:\n  latent:\n    slot_input: hidden\n", [], "invalid model setting: latent.slot_input"),
        ("", ["--model.backbone.mrope_section", "[8,5,5]"], "invalid model setting: backbone.mrope_section"),
        ("model:\n  slot_mode: learned\n", [], "fields `slot_mode` are not valid for LaraConfig"),
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


def test_unknown_presets_and_missing_files():
    with pytest.raises(LaraUserError, match="config file nowhere.yaml not found"):
        load_train_config(["nowhere.yaml"])
    with pytest.raises(LaraUserError, match=r"no training preset 'huge'; sizes: \[.*'small'.*'tiny'"):
        load_train_config(preset="huge", stage=1)
    with pytest.raises(LaraUserError, match="stage 4: choose one of 1, 2, 3"):
        load_train_config(preset="tiny", stage=4)
    with pytest.raises(LaraUserError, match="give the size too"):
        load_train_config(stage=2)


def test_cli_usage_errors():
    with pytest.raises(LaraUserError, match="give --preset <size> --stage <k>"):
        train_main([])
    with pytest.raises(LaraUserError, match="--preset tiny needs --stage"):
        train_main(["--preset", "tiny"])
    with pytest.raises(LaraUserError, match="no training preset 'nowhere'"):
        train_main(["--curriculum", "nowhere"])
    with pytest.raises(LaraUserError, match="--stages"):
        train_main(["--curriculum", "toy", "--stages", "1,4"])
    with pytest.raises(LaraUserError, match="drop --preset/--stage"):
        train_main(["--curriculum", "toy", "--stage", "2"])


def test_curriculum_runs_all_stages_then_skips_them(tmp_path, caplog):
    import logging

    caplog.set_level(logging.INFO, logger="curriculum.runner")
    args = ["--curriculum", "toy", "--out", str(tmp_path), "--steps", "4"]
    assert train_main(args) == 0
    for k in (1, 2, 3):
        assert (tmp_path / f"stage{k}" / "final" / "model" / "model.safetensors").is_file()
    caplog.clear()
    assert train_main(args) == 0
    assert [r.getMessage().split(":")[0] for r in caplog.records if "skipping" in r.getMessage()] == [
        "stage 1",
        "stage 2",
        "stage 3",
    ]


def test_cli_dataset_and_out_set_the_training_fields(tmp_path):
    import yaml

    out = tmp_path / "run"
    assert (
        train_main(["--preset", "toy", "--stage", "1", "--dataset", "32", "--out", str(out), "--steps", "2"])
        == 0
    )
    assert (out / "final" / "model" / "model.safetensors").is_file()
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["data"]["root"] == "32" and saved["output_dir"] == str(out)
    fields = tmp_path / "fields"  # the training config's own names work alone as before
    args = ["--preset", "toy", "--stage", "1", "--data.root", "16", "--output_dir", str(fields)]
    assert train_main(args) == 0
    assert yaml.safe_load((fields / "config.yaml").read_text())["data"]["root"] == "16"
    with pytest.raises(LaraUserError, match="--out and --output_dir set the same thing"):
        train_main(["--preset", "toy", "--stage", "1", "--out", str(out), "--output_dir", str(out)])
    with pytest.raises(LaraUserError, match="--dataset and --data.root set the same thing"):
        train_main(["--preset", "toy", "--stage", "1", "--dataset", "8", "--data.root", "8"])
