"""The curriculum trainer: one stage, on accelerate (single process, DDP, FSDP, DeepSpeed).

One optimizer step = `grad_accum_steps` micro-batches inside `accelerator.accumulate`, which
scales each micro-batch loss by 1/N and synchronizes (DDP all-reduce) only on the last one; the
trainer asserts that the last micro-batch really was a sync step, so accumulation cannot
silently degrade into N small updates. The micro-batches of a step are fetched and prepared up
front (`curriculum.batches.prepare_step`): loss terms summed over a varying number of items (CE
tokens) are divided by the step-wide count, so accumulation and DDP give the update of one big
batch. Everything that varies with time (LR, latent probability, loss weights) is a pure
function of the global step (curriculum.schedules), and everything else a resume needs is in the
checkpoint (curriculum.checkpointing).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedDataParallelKwargs, DistributedType, set_seed

from curriculum import checkpointing as ckpt
from curriculum import engines, precision
from curriculum.batches import MicroBatches, prepare_step, to_device
from curriculum.builders import build_dataset, build_policy, normalize_metrics, resolve_init_from
from curriculum.config import TrainConfig, training_identity
from curriculum.lora import apply_lora, merged_lora
from curriculum.memory import PeakMemory
from curriculum.precision import resolved_mixed_precision
from curriculum.schedules import (
    ema_update_due,
    loss_weight,
    lr_multiplier,
    stage_latent_probability,
    stage_visual_l1,
)
from lara.utils.errors import LaraUserError

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    output_dir: Path
    final_dir: Path
    step: int
    samples_per_s: float  # all processes, measured over the steps this invocation ran
    peak_memory_bytes: int  # this process: CUDA max allocated, or peak RSS growth on CPU
    peak_total_memory_bytes: int  # CUDA max allocated, or the process's peak RSS on CPU
    history: list[dict] = field(default_factory=list)  # per step: step, loss, metrics, p, lr


# -- schedule values at a step -------------------------------------------------------------------
def latent_probability_at(cfg: TrainConfig, step: int) -> float:
    lat = cfg.latent
    return stage_latent_probability(
        cfg.stage,
        step,
        total_steps=cfg.steps,
        kind=lat.kind,
        start_fraction=lat.start_fraction,
        end_fraction=lat.end_fraction,
        num_segments=lat.num_segments,
    )


def loss_weights_at(cfg: TrainConfig, step: int) -> dict[str, float]:
    """The stage's loss weights at `step`: the only source of them (the policy gets them every step)."""
    weights = cfg.active_losses()
    if "visual_l1" in weights:
        weight = stage_visual_l1(
            cfg.stage,
            latent_probability_at(cfg, step),
            weight=weights["visual_l1"],
            first_level_weight=cfg.loss.visual_l1_first_level,
            num_levels=cfg.latent.num_segments,
        )
        weights["visual_l1"] = loss_weight(step, weight=weight, warmup_steps=cfg.loss.visual_l1_warmup_steps)
    return weights


# -- set-up --------------------------------------------------------------------------------------
def build_accelerator(cfg: TrainConfig) -> Accelerator:
    mixed = resolved_mixed_precision(cfg)
    accelerator = Accelerator(
        # On a machine without CUDA, processes started by `accelerate launch --multi_gpu` (torchrun)
        # join a gloo process group (MULTI_CPU); `--cpu --num_processes N` would start one process.
        cpu=not torch.cuda.is_available(),
        mixed_precision=mixed,
        gradient_accumulation_steps=cfg.grad_accum_steps,
        step_scheduler_with_optimizer=False,  # we step the scheduler once per optimizer step
        kwargs_handlers=[
            DistributedDataParallelKwargs(find_unused_parameters=cfg.ddp_find_unused_parameters)
        ],
    )
    if not torch.cuda.is_available() and engines.fsdp_requested() and accelerator.num_processes > 1:
        engines.promote_to_fsdp_on_cpu(accelerator, mixed)  # accelerate has no CPU FSDP of its own
    return accelerator


def _sharded(accelerator: Accelerator) -> bool:
    return accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED)


def build_optimizer(
    policy, cfg: TrainConfig, sharded: bool = False
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW over the policy's trainable groups (curriculum.precision: torch's AdamW over fp32
    master weights; the stochastic-rounding AdamW when weights are stored in bf16 on purpose).
    `sharded`: FSDP or DeepSpeed, where bf16 storage is refused."""
    o = cfg.optim
    groups = []
    for group in policy.parameter_groups(o.backbone_lr, o.head_lr):
        params = [p for p in group["params"] if p.requires_grad]
        if params:
            groups.append({**group, "params": params})
    if not groups:
        raise LaraUserError("nothing to train: every parameter is frozen")
    counts = precision.trainable_storage(groups)
    stochastic_rounding = precision.check_storage(counts, sharded)
    log.info("%s", precision.describe(counts, resolved_mixed_precision(cfg)))
    if stochastic_rounding:
        log.info("bf16 weight storage (memory-saving switch): AdamW updates written with stochastic rounding")
    optimizer = precision.adamw(groups, o, stochastic_rounding)
    multiplier = functools.partial(
        lr_multiplier,
        total_steps=cfg.steps,
        warmup_steps=o.warmup_for(cfg.steps),
        min_lr_ratio=o.min_lr_ratio,
    )
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, multiplier)


def _prepare_output(cfg: TrainConfig, accelerator: Accelerator) -> Path | None:
    """The checkpoint to resume from, or None; refuses to train over an existing run."""
    existing = ckpt.latest_checkpoint(cfg.output_dir)
    if existing is None:
        if cfg.resume and accelerator.is_main_process:
            log.info("--resume: no checkpoint in %s yet, starting from step 0", cfg.output_dir)
        return None
    if not cfg.resume:
        raise LaraUserError(
            f"{cfg.output_dir} already holds a run ({existing.name}); pass --resume true to continue it, "
            "or choose a new --output_dir"
        )
    ckpt.check_resumable(existing, cfg.fingerprint(), training_identity(cfg), cfg.stage)
    if existing.name != "final" and not (existing / "state").is_dir():
        raise LaraUserError(
            f"{existing} holds no training state (written with save_state false); it cannot be "
            "resumed: start a new --output_dir (use it as --init_from of the next stage)"
        )
    return existing


# -- the loop ------------------------------------------------------------------------------------
def train(cfg: TrainConfig) -> TrainResult:
    logging.getLogger("accelerate").setLevel(logging.WARNING)  # one line per saved file otherwise
    accelerator = build_accelerator(cfg)
    main = accelerator.is_main_process
    out = Path(cfg.output_dir)
    resume_from = _prepare_output(cfg, accelerator)
    if resume_from is not None and resume_from.name == "final":  # finished: nothing to do
        if main:
            log.info("%s is complete (step %d); nothing to resume", resume_from, cfg.steps)
        accelerator.end_training()
        return TrainResult(out, resume_from, ckpt.read_trainer_state(resume_from).step, 0.0, 0, 0, [])
    init_from = None
    if resume_from is not None:
        init_from = resume_from / "model"
    elif cfg.stage > 1 and not cfg.from_scratch:
        init_from = resolve_init_from(cfg.init_from, cfg.stage)

    set_seed(cfg.seed)  # python, numpy, torch (all ranks alike: identical initial weights)
    dataset, collate = build_dataset(cfg)
    policy = build_policy(cfg, dataset, init_from)
    if cfg.lora.enabled:
        apply_lora(policy, cfg.lora)
    optimizer, scheduler = build_optimizer(policy, cfg, sharded=_sharded(accelerator))
    model, optimizer, scheduler = accelerator.prepare(policy, optimizer, scheduler)
    policy = accelerator.unwrap_model(model)

    state = ckpt.TrainerState(0, cfg.stage, 0, 0, cfg.fingerprint(), training_identity(cfg), 0)
    if resume_from is not None:
        accelerator.load_state(str(resume_from / "state"))  # weights, optimizer, scheduler, RNG
        state = ckpt.read_trainer_state(resume_from)
        if main:
            log.info("resumed %s at step %d", resume_from, state.step)
    else:
        set_seed(cfg.seed + accelerator.process_index)  # per-rank noise / latent draws
        if main:
            out.mkdir(parents=True, exist_ok=True)
            (out / "config.yaml").write_text(cfg.to_yaml())
    batches = MicroBatches(dataset, collate, cfg, accelerator, state.epoch, state.epoch_samples)

    writer = progress = None
    if main:
        from torch.utils.tensorboard import SummaryWriter
        from tqdm.auto import tqdm

        writer = SummaryWriter(str(out / "tensorboard"), flush_secs=30)
        progress = tqdm(
            total=cfg.steps, initial=state.step, disable=not cfg.progress, desc=f"stage {cfg.stage}"
        )

    samples_per_step = cfg.batch_size * cfg.grad_accum_steps * accelerator.num_processes
    history: list[dict] = []
    memory = PeakMemory(accelerator.device)
    start_step, t_start = state.step, time.perf_counter()
    with memory:
        while state.step < cfg.steps:
            step = state.step
            p = latent_probability_at(cfg, step)
            weights = loss_weights_at(cfg, step)
            policy.set_latent_probability(p)
            policy.set_loss_weights(weights)
            model.train()
            losses, metric_sums, metric_counts, grad_norm = [], {}, {}, None
            micro_batches, forward_kwargs = prepare_step(
                policy, [batches.next() for _ in range(cfg.grad_accum_steps)], cfg.stage, accelerator
            )
            for batch in micro_batches:
                batch = to_device(batch, accelerator.device)
                with accelerator.accumulate(model):
                    loss, metrics = model(batch, stage=cfg.stage, **forward_kwargs)
                    if not torch.isfinite(loss):
                        raise FloatingPointError(f"stage {cfg.stage} step {step}: loss is {loss.item()}")
                    accelerator.backward(loss)
                    losses.append(loss.detach().float())
                    for k, v in normalize_metrics(
                        metrics
                    ).items():  # averaged over the micro-batches reporting k
                        metric_sums[k] = metric_sums.get(k, 0.0) + v
                        metric_counts[k] = metric_counts.get(k, 0) + 1
                    if accelerator.sync_gradients:
                        if cfg.optim.grad_clip_norm > 0:
                            grad_norm = accelerator.clip_grad_norm_(
                                model.parameters(), cfg.optim.grad_clip_norm
                            )
                        optimizer.step()
                        scheduler.step()
                        optimizer.zero_grad(set_to_none=True)
            if not accelerator.sync_gradients:  # the last micro-batch must have stepped
                raise RuntimeError("gradient accumulation out of sync: the optimizer did not step")
            if ema_update_due(state.step + 1, cfg.ema_every):
                policy.ema_update()
            state.step += 1
            state.epoch, state.epoch_samples = batches.epoch, batches.start
            state.samples_seen += samples_per_step
            metrics = {k: v / metric_counts[k] for k, v in metric_sums.items()}
            if step == start_step:
                _check_losses_on(cfg, metrics, weights, p)
            record = {
                "step": state.step,
                "time": time.perf_counter(),
                "cpu_time": time.process_time(),  # this process's CPU seconds: step cost on a shared machine
                # over all ranks: each rank's loss is normalized step-wide, so the mean of the ranks'
                # losses is the whole batch's loss (the metrics below are rank 0's)
                "loss": accelerator.reduce(torch.stack(losses).mean(), reduction="mean").item(),
                "latent_probability": p,
                "lr": [g["lr"] for g in optimizer.param_groups],
                **metrics,
            }
            if grad_norm is not None:
                record["grad_norm"] = float(grad_norm)
            history.append(record)
            if main:
                _log(writer, progress, record, weights, state, samples_per_step, t_start, start_step, cfg)
            due = state.step % cfg.save_every == 0 or state.step in cfg.keep_steps
            if due and state.step < cfg.steps:  # the last step goes to final/
                _save(accelerator, policy, cfg, state, ckpt.checkpoints_dir(out) / ckpt.step_name(state.step))
    elapsed = time.perf_counter() - t_start
    _save(accelerator, policy, cfg, state, ckpt.final_dir(out))
    if main:
        progress.close()
        writer.close()
    accelerator.wait_for_everyone()
    steps_run = state.step - start_step
    accelerator.end_training()
    return TrainResult(
        output_dir=out,
        final_dir=ckpt.final_dir(out),
        step=state.step,
        samples_per_s=steps_run * samples_per_step / elapsed if steps_run else 0.0,
        peak_memory_bytes=memory.peak_bytes,
        peak_total_memory_bytes=memory.peak_total_bytes,
        history=history,
    )


def _check_losses_on(
    cfg: TrainConfig, metrics: dict[str, float], weights: dict[str, float], p: float
) -> None:
    """A loss that is configured on must be computed and nonzero (the reference implementation
    once lost its visual loss to a launcher flag without anyone noticing). CoT CE is checked
    only while no segment is latent (p = 0): a batch whose segments all drew latent has none."""
    for term, weight in weights.items():
        if weight == 0 or (term == "cot_ce" and p > 0):
            continue
        value = metrics.get(f"loss/{term}")
        if value is None or not math.isfinite(value) or value == 0.0:
            raise RuntimeError(
                f"stage {cfg.stage}: loss {term!r} is configured on (weight {weight}) but the policy "
                "reported "
                f"{value!r} for 'loss/{term}'; metrics were {sorted(metrics)}"
            )


def _log(writer, progress, record, weights, state, samples_per_step, t_start, start_step, cfg) -> None:
    progress.update(1)
    elapsed = max(time.perf_counter() - t_start, 1e-9)
    throughput = (state.step - start_step) * samples_per_step / elapsed
    terms = {k.split("/", 1)[1]: v for k, v in record.items() if k.startswith("loss/")}
    terms.pop("total", None)
    progress.set_postfix(
        loss=f"{record['loss']:.4f}",
        **{k: f"{v:.3f}" for k, v in terms.items()},
        p=f"{record['latent_probability']:.2f}",
        sps=f"{throughput:.1f}",
    )
    if state.step % cfg.log_every and state.step != cfg.steps:
        return
    s = state.step
    writer.add_scalar("loss/total", record["loss"], s)
    for k, v in record.items():
        if "/" in k:  # loss/<term>, latent/fraction, tokens/..., metrics/<name>
            writer.add_scalar(k, v, s)
    for k, v in weights.items():
        writer.add_scalar(f"loss_weight/{k}", v, s)
    writer.add_scalar("train/latent_probability", record["latent_probability"], s)
    writer.add_scalar("train/samples_per_s", throughput, s)
    if "grad_norm" in record:
        writer.add_scalar("train/grad_norm", record["grad_norm"], s)
    for i, lr in enumerate(record["lr"]):
        writer.add_scalar(f"lr/group_{i}", lr, s)


def _save(accelerator: Accelerator, policy, cfg: TrainConfig, state: ckpt.TrainerState, target: Path) -> None:
    """Write a complete checkpoint into a tmp folder on every rank, then publish it atomically."""
    main = accelerator.is_main_process
    tmp = ckpt.begin(target, main)
    accelerator.wait_for_everyone()
    if cfg.save_state:
        if engines.is_fsdp(accelerator):  # every parameter needs an optimizer entry to load back
            for optimizer in accelerator._optimizers:
                engines.complete_optimizer_state(optimizer)
        accelerator.save_state(str(tmp / "state"))
    # FSDP: the module holds shards; gather the full weights (a collective) and merge LoRA into them
    full = engines.gathered_state_dict(accelerator, model_of(accelerator, policy))
    if main:
        if full is not None:
            full = engines.merge_lora_state_dict(full, engines.lora_scaling(policy))
        with contextlib.nullcontext() if full is not None else merged_lora(policy):  # loads without peft
            with _state_dict_override(policy, full):
                policy.save_pretrained(str(tmp / "model"))
        (tmp / "config.yaml").write_text(cfg.to_yaml())
        ckpt.write_trainer_state(tmp, state)
        ckpt.record_training(tmp / "model", cfg, state)  # the stage that trained it, the episodes it read
    accelerator.wait_for_everyone()
    if main:
        ckpt.commit(tmp, target)
        ckpt.prune(cfg.output_dir, cfg.keep_last, keep_steps=cfg.keep_steps)
    accelerator.wait_for_everyone()


def model_of(accelerator: Accelerator, policy):
    """The prepared (wrapped) model whose unwrapped module is `policy`."""
    for model in accelerator._models:
        if accelerator.unwrap_model(model) is policy:
            return model
    raise RuntimeError("policy was not prepared by this accelerator")


@contextlib.contextmanager
def _state_dict_override(policy, full: dict | None):
    """Under FSDP the module's own state_dict holds shards; the export must see the gathered
    full tensors (tests/curriculum/test_fsdp_gloo.py)."""
    if full is None:
        yield
        return
    policy.state_dict = lambda *args, **kwargs: full  # instance attribute shadows the method
    try:
        yield
    finally:
        del policy.state_dict
