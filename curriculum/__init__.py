"""The training layer: the three-stage LaRA curriculum on accelerate, offline validation
(`curriculum.offline`) and GRPO fine-tuning (`curriculum.rl`). Imports every layer below it.

    lara train --preset tiny --stage 1 --dataset <dataset>                 one stage
    lara train --curriculum tiny --out outputs/tiny --dataset <dataset>  all three
    accelerate launch --config_file configs/accelerate/ddp_cpu.yaml -m lara.scripts.cli train --preset ...
    lara bench train [--preset qwen3vl-2b --batch_size 16 --gradient_checkpointing true]

Modules (one concept each): `config` (typed stage config nesting the model's LaraConfig, YAML
overlays, validation), `presets` (the named training presets: size x stage), `schedules` (LR, latent
probability, loss weights: pure functions of the step), `trainer` (the loop), `checkpointing`
(atomic, complete checkpoints; resume), `sampler` (resumable data order), `builders` (policy/dataset
registries and the trainer's contract), `lara_adapter` (LaraPolicy and the LeRobot sample dataset
behind them), `lora`, `memory`, `synthetic`, `bench_train`, `runner` (stages in order; the `lara
train` command is lara/scripts/train_cli.py).
"""
