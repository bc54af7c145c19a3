"""The `lara rl` loop: rollouts in LIBERO -> GRPO update -> checkpoint, iteration by iteration.

Output directory:
    config.yaml                 the resolved RLConfig
    iterations.jsonl            one record per finished iteration (successes, informative groups,
                                KL, clip fraction, noise scale / temperature, wall times)
    rollout_weights.safetensors the trained parameters the rollout workers load (rewritten per update)
    checkpoints/step_000003/    curriculum.checkpointing's atomic layout, step = iterations done:
        model/                  the whole policy (save_pretrained): `lara eval --policy` reads it
        state/trainable.safetensors, state/optimizer.pt
        trainer_state.json      stage 4 (RL), iterations, config fingerprint
    final/                      the last iteration's checkpoint

Exact resume: every random draw of iteration i is a pure function of (seed, i) (the layouts, each
rollout's noise seed, the update's minibatch order), so the checkpoint needs only the trained
weights, the optimizer state and the iteration count. The reference policy of the KL term is
always the starting checkpoint (`cfg.policy`), also after a resume. Log records of iterations a
killed run finished after its last checkpoint are dropped on resume and written again.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import yaml

from curriculum import checkpointing as ckpt
from curriculum.rl.config import RLConfig
from curriculum.rl.layouts import Layout, load_layouts, pick_layouts
from curriculum.rl.scorers import BackboneFlowScorer, ChunkUnits, ExpertScorer, TokenScorer, flow_units
from curriculum.rl.update import UpdateSettings, grpo_update
from envs.protocol import parse_task_ids
from envs.rollout_driver import RolloutDriver
from envs.rollouts import RolloutPool, RolloutSettings, RolloutSpec, task_ids_by_name
from lara.checkpoint import checkpoint_config, resolve_checkpoint_dir
from lara.inference_plan import check_rl_kind
from lara.utils.atomic import atomic_write_text
from lara.utils.errors import LaraUserError
from lara.utils.jsonl import append_jsonl, read_jsonl, repair_jsonl

log = logging.getLogger(__name__)
RL_STAGE = 4  # the curriculum's fourth stage, in trainer_state.json
LOG_FILE = "iterations.jsonl"
WEIGHTS_FILE = "rollout_weights.safetensors"


@dataclass
class RLResult:
    out: Path
    final_dir: Path
    iterations: int
    records: list[dict] = field(default_factory=list)


def rollout_seed(seed: int, iteration: int, group: int, member: int) -> int:
    return int(np.random.default_rng([seed, iteration, group, member]).integers(2**62))


def _trainable(policy, cfg: RLConfig) -> tuple[dict[str, torch.nn.Parameter], list[str]]:
    """What the update trains, and the LoRA-wrapped module names (empty without LoRA).
    Flow: the expert (+ LoRA adapters). Tokens: the LoRA adapters, or without LoRA the decoder
    (its tied embedding table stays frozen, as in SFT)."""
    lora_modules: list[str] = []
    if cfg.lora.enabled:
        from peft.tuners.lora import LoraLayer

        from curriculum.lora import apply_lora

        apply_lora(policy, cfg.lora)
        lora_modules = [n for n, m in policy.named_modules() if isinstance(m, LoraLayer)]
    named = {}
    for name, p in policy.named_parameters():
        if cfg.lora.enabled:
            train = "lora_" in name or (cfg.kind == "flow" and name.startswith("expert."))
        else:
            train = (
                name.startswith("expert.")
                if cfg.kind == "flow"
                else (name.startswith("vlm.") and p.requires_grad)
            )
        p.requires_grad_(train)
        if train:
            named[name] = p
    if not named:
        raise LaraUserError(f"--kind {cfg.kind}: the policy has no trainable parameters for it")
    return named, lora_modules


def _save_weights(named: dict, path: Path) -> None:
    from safetensors.torch import save_file

    tmp = path.with_name(f".{path.name}.tmp")
    save_file({k: v.detach().contiguous().cpu() for k, v in named.items()}, str(tmp))
    tmp.replace(path)


def _rollout_weights(policy, named: dict, lora_modules: list[str], path: Path) -> None:
    """The weights rollout workers load into their plain (LoRA-free) policy: the trained
    parameters, with LoRA merged into its base layers under their plain names."""
    if not lora_modules:
        _save_weights(named, path)
        return
    from curriculum.lora import merged_lora

    with merged_lora(policy):
        params = dict(policy.named_parameters())
        merged = {k: v for k, v in params.items() if k.startswith("expert.") and k in named}
        merged.update({k: v for k, v in params.items() if any(k.startswith(m + ".") for m in lora_modules)})
        _save_weights(merged, path)


def _rewards(results: list[dict], cfg: RLConfig) -> torch.Tensor:
    r = [float(x["success"]) - cfg.step_cost * x["steps"] for x in results]
    return torch.tensor(r).view(cfg.groups, cfg.group_size)  # (groups, G), results are group-major


def _units(policy, results: list[dict], cached_features: bool):
    """The update's units: cached backbone features (frozen backbone) or the recorded chunks."""
    chunks = [c for r in results for c in r["chunks"]]
    counts = [len(r["chunks"]) for r in results]
    return (flow_units(policy, chunks) if cached_features else ChunkUnits(chunks)), counts, chunks


def _resume_point(cfg: RLConfig) -> Path | None:
    # the newest by iteration: a run extended past its final/ (more --iterations) writes step_*
    # checkpoints newer than final/, which curriculum's latest_checkpoint would rank below it
    found = ckpt.list_checkpoints(cfg.out)
    if ckpt.latest_checkpoint(cfg.out) is not None:
        found.append(ckpt.latest_checkpoint(cfg.out))
    if not found:
        return None
    existing = max(found, key=lambda c: ckpt.read_trainer_state(c).step)
    if not cfg.resume:
        raise LaraUserError(
            f"{cfg.out} already holds an RL run ({existing.name}); pass --resume true to "
            "continue it, or choose a new --out"
        )
    ckpt.check_resumable(existing, cfg.fingerprint(), cfg.identity(), RL_STAGE)
    return existing


def rollout_pool(settings: RolloutSettings, cfg: RLConfig, policy) -> RolloutDriver | RolloutPool:
    """The rollouts' engine (local processes or Ray actors). `--policy_in driver` (default): the
    learner's `policy` itself samples every rollout's chunks, batched over simulator servers;
    `workers`: each worker loads its own copy of the policy at `settings.policy_dir` and reloads the
    weights file the loop writes after each update."""
    if cfg.policy_in == "driver":
        return RolloutDriver(
            settings, cfg.workers, policy, cfg.backend, cfg.ray_address, cfg.slots_per_worker
        )
    from lara.modeling_lara import LaraPolicyBuilder

    builder = LaraPolicyBuilder(settings.policy_dir, settings.execute_steps)
    return RolloutPool(settings, cfg.workers, builder, cfg.backend, cfg.ray_address)


def train_rl(cfg: RLConfig, pool_factory=rollout_pool, layouts: list[Layout] | None = None) -> RLResult:
    """Run (or resume) the RL run `cfg` describes. `pool_factory(settings, cfg, policy)` and
    `layouts` replace the LIBERO workers and the dataset's layouts in tests."""
    from curriculum.lora import merged_lora
    from lara.modeling_lara import LaraPolicy

    out = Path(cfg.out)
    resume_from = _resume_point(cfg)
    state = ckpt.TrainerState(0, RL_STAGE, 0, 0, cfg.fingerprint(), cfg.identity(), 0)
    if resume_from is not None:
        state = ckpt.read_trainer_state(resume_from)
        log.info("resuming %s after iteration %d", resume_from, state.step)
    policy_dir = resolve_checkpoint_dir(cfg.policy)
    check_rl_kind(checkpoint_config(policy_dir), cfg.kind, str(policy_dir))  # what its stage trained
    if layouts is None:
        task_ids = task_ids_by_name(cfg.suite)
        layouts = load_layouts(cfg.dataset, task_ids, parse_task_ids(cfg.tasks, len(task_ids)))

    torch.manual_seed(cfg.seed)
    policy = LaraPolicy.from_pretrained(str(policy_dir), device=cfg.device).eval()
    named, lora_modules = _trainable(policy, cfg)
    if cfg.kind == "tokens":
        scorer = TokenScorer(policy, cfg.temperature)
    elif lora_modules:  # the backbone learns: features are recomputed with gradients
        scorer = BackboneFlowScorer(policy, cfg.noise_scale)
    else:
        scorer = ExpertScorer(policy.expert, cfg.noise_scale)
    optimizer = torch.optim.AdamW(list(named.values()), lr=cfg.lr, weight_decay=cfg.weight_decay)
    if resume_from is not None:
        _load_state(resume_from / "state", policy, optimizer)
    elif state.step == 0:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "config.yaml", yaml.safe_dump(cfg.identity() | {"out": str(out)}))
    records = _sync_log(out / LOG_FILE, state.step)
    if state.step >= cfg.iterations or (
        cfg.max_minutes > 0 and sum(r["wall_s"] for r in records) >= 60 * cfg.max_minutes
    ):
        log.info("%s is complete (%d iterations)", out, state.step)
        return RLResult(out, ckpt.final_dir(out), state.step, records)

    weights = out / WEIGHTS_FILE
    _rollout_weights(policy, named, lora_modules, weights)
    settings = RolloutSettings(
        str(policy_dir),
        cfg.suite,
        cfg.kind,
        cfg.noise_scale,
        cfg.temperature,
        cfg.num_steps,
        cfg.execute_steps,
        cfg.max_steps,
        cfg.camera_size,
    )
    update = UpdateSettings(cfg.clip_eps, cfg.kl_weight, cfg.epochs, cfg.minibatch_units, cfg.grad_clip_norm)
    from tqdm.auto import tqdm

    bar = tqdm(total=cfg.iterations, initial=state.step, desc="lara rl", disable=not cfg.progress, unit="it")
    with pool_factory(settings, cfg, policy) as pool:
        while state.step < cfg.iterations:
            it = state.step
            t0 = time.perf_counter()
            chosen = pick_layouts(layouts, cfg.groups, cfg.seed, it)
            specs = [
                RolloutSpec(lay.task, lay.state, rollout_seed(cfg.seed, it, g, m), g, m)
                for g, lay in enumerate(chosen)
                for m in range(cfg.group_size)
            ]
            with merged_lora(policy):  # a driver's rollouts run this policy as the workers load it
                results = pool.run(specs, str(weights), it)
            t_roll = time.perf_counter() - t0
            rewards = _rewards(results, cfg)
            units, counts, chunks = _units(policy, results, cfg.kind == "flow" and not lora_modules)
            metrics = {"informative_fraction": 0.0, "updated": 0.0}
            if all(c > 0 for c in counts):
                logp = torch.tensor([c["log_prob"] for c in chunks], device=policy.device)
                # minibatch order: a seed no rollout uses (group index = groups)
                gen = torch.Generator().manual_seed(rollout_seed(cfg.seed, it, cfg.groups, cfg.group_size))
                metrics = grpo_update(scorer, units, rewards, counts, optimizer, update, gen, logp)
            else:
                log.warning("iteration %d: a rollout produced no chunk (it crashed at once); no update", it)
            _rollout_weights(policy, named, lora_modules, weights)
            state.step += 1
            state.samples_seen += len(results)
            record = _record(it, results, rewards, metrics, cfg, t_roll, time.perf_counter() - t0, chunks)
            # log first, checkpoint second: a run killed in between redoes the iteration and
            # `_sync_log` drops the record it had written; the other order would lose the record
            append_jsonl(out / LOG_FILE, record)
            records.append(record)
            out_of_time = cfg.max_minutes > 0 and sum(r["wall_s"] for r in records) >= 60.0 * cfg.max_minutes
            last = state.step == cfg.iterations or out_of_time
            if state.step % cfg.save_every == 0 or last:
                target = (
                    ckpt.final_dir(out) if last else ckpt.checkpoints_dir(out) / ckpt.step_name(state.step)
                )
                _save(policy, named, optimizer, state, target, cfg)
            bar.update(1)
            bar.set_postfix(
                success=f"{record['successes']}/{record['rollouts']}",
                informative=f"{record['informative_fraction']:.2f}",
                kl=f"{record.get('kl', 0.0):.4f}",
            )
            if out_of_time:
                log.info("time budget of %.1f min spent after iteration %d", cfg.max_minutes, state.step)
                break
    bar.close()
    return RLResult(out, ckpt.final_dir(out), state.step, records)


def _record(it, results, rewards, metrics, cfg: RLConfig, t_roll, t_total, chunks) -> dict:
    per_task: dict[str, list[int]] = {}
    for r in results:
        s = per_task.setdefault(str(r["task"]), [0, 0])
        s[0] += int(r["success"])
        s[1] += 1
    lp = [c["log_prob"] for c in chunks]
    n_tok = sum(len(c.get("tokens", ())) for c in chunks)
    record = {
        "iteration": it + 1,
        "successes": int(sum(r["success"] for r in results)),
        "rollouts": len(results),
        "per_task": per_task,
        "errors": sum(r["error"] is not None for r in results),
        "mean_reward": float(rewards.mean()),
        "mean_steps": float(np.mean([r["steps"] for r in results])),
        "chunks": len(chunks),
        "noise_scale": cfg.noise_scale if cfg.kind == "flow" else None,
        "temperature": cfg.temperature if cfg.kind == "tokens" else None,
        # tokens: the sampled tokens' mean negative log-probability (a Monte Carlo entropy estimate);
        # flow: the entropy is fixed by the noise scale, so the mean chunk log-probability is logged instead
        "entropy_per_token": (-sum(lp) / n_tok) if cfg.kind == "tokens" and n_tok else None,
        "mean_chunk_log_prob": float(np.mean(lp)) if lp else None,
        "rollout_s": t_roll,
        "wall_s": t_total,
    }
    record.update({k: v for k, v in metrics.items() if k not in record})
    return record


def _sync_log(path: Path, done: int) -> list[dict]:
    """The log's records of iterations 1..done; later ones (written after the last checkpoint of a
    killed run) are dropped, since this run redoes those iterations."""
    repair_jsonl(path)
    records, dropped = read_jsonl(path)
    if dropped:
        log.warning("%s: %d unreadable lines dropped", path, dropped)
    kept = [r for r in records if r.get("iteration", 0) <= done]
    if len(kept) != len(records) or dropped:
        import json

        atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in kept))
    return kept


def _save(policy, named, optimizer, state: ckpt.TrainerState, target: Path, cfg: RLConfig) -> None:
    from curriculum.lora import merged_lora

    tmp = ckpt.begin(target, True)
    with merged_lora(policy):  # model/ loads without peft; state/ keeps the unmerged adapters
        policy.save_pretrained(str(tmp / "model"))
    (tmp / "state").mkdir()
    _save_weights(named, tmp / "state" / "trainable.safetensors")
    torch.save(optimizer.state_dict(), tmp / "state" / "optimizer.pt")
    atomic_write_text(tmp / "config.yaml", yaml.safe_dump(cfg.identity()))
    ckpt.write_trainer_state(tmp, state)
    ckpt.commit(tmp, target)
    ckpt.prune(cfg.out, cfg.keep_last)


def _load_state(state_dir: Path, policy, optimizer) -> None:
    from safetensors.torch import load_file

    result = policy.load_state_dict(load_file(str(state_dir / "trainable.safetensors")), strict=False)
    if result.unexpected_keys:
        raise LaraUserError(
            f"{state_dir}: trained weights do not fit the policy ({result.unexpected_keys[:3]})"
        )
    optimizer.load_state_dict(torch.load(state_dir / "optimizer.pt", weights_only=True))
