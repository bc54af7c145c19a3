"""The action expert's Euler integration as one captured unit (inference only).

`ActionExpert.sample` is the reference: readable, module by module, ~100 small ops per Euler
step (diffusers' `Attention` also inspects its processor's signature on every call). At inference
a chunk's cost on a small model is that op overhead, not arithmetic. `ExpertRuntime.sample`
computes the same integration as one function of plain tensors:

- per weight version (cached until a parameter changes in place or moves): the fused Q/K/V
  matrices of the self-attention blocks and, per (steps, batch), the timestep conditioning
  (AdaLN modulations of every block and the output modulation for all steps);
- per chunk, inside the unit: the context keys/values of the cross-attention blocks, the state
  and future tokens, then the N Euler steps x <- x - v / N.

Execution (`inference.compile`, `inference.cuda_graph`): eager by default; `compile` wraps the unit
in `torch.compile` (CPU: Inductor's C++ kernels, needs a C++ compiler; GPU: Triton); `cuda_graph`
records the unit once per input shape on a CUDA device and replays it (one launch per chunk). If
compilation or capture fails, the runtime logs it once and falls back to eager. Results equal the
reference within float tolerance (tests/lara/test_inference_fast.py).
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F

from lara.action_expert import order_tokens

log = logging.getLogger(__name__)


def _layer_norm(x: torch.Tensor) -> torch.Tensor:
    return F.layer_norm(x, x.shape[-1:], eps=1e-6)  # the expert's norms: no affine, eps 1e-6


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    b, t, d = x.shape
    return x.view(b, t, heads, d // heads).transpose(1, 2)  # (B, heads, T, D/heads)


def _block(x, kind, w, mod, kv, mask, heads: int, fixed=None) -> torch.Tensor:
    """One DiT block (as `DiTBlock.forward`, eval mode). x (B, T, D); mod: the step's six (B, 1, D)
    modulations, scales as 1 + scale (see ExpertRuntime._conditioning). `fixed` = (start, end, qkv):
    Q/K/V rows start..end-1 of a self-attention block, computed beforehand (they do not depend on x)."""
    shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = mod
    b, t, d = x.shape
    h = torch.addcmul(shift_msa, _layer_norm(x), scale_msa)  # norm * (1 + scale) + shift
    if kind == "cross":
        o = F.scaled_dot_product_attention(
            _heads(F.linear(h, w["q_w"], w["q_b"]), heads), kv[0], kv[1], attn_mask=mask
        )
    else:
        if fixed is None:
            qkv = F.linear(h, w["qkv_w"], w["qkv_b"])  # (B, T, 3D)
        else:
            start, end, rows = fixed
            var = F.linear(
                torch.cat([h[:, :start], h[:, end:]], dim=1), w["qkv_w"], w["qkv_b"]
            )  # (B, T - F, 3D)
            qkv = torch.cat([var[:, :start], rows, var[:, start:]], dim=1)  # (B, T, 3D)
        q, k, v = qkv.view(b, t, 3, heads, d // heads).permute(2, 0, 3, 1, 4)
        o = F.scaled_dot_product_attention(q, k, v)  # (B, heads, T, D/heads)
    x = torch.addcmul(x, gate_msa, F.linear(o.transpose(1, 2).reshape(b, t, d), w["o_w"], w["o_b"]))
    h = torch.addcmul(shift_mlp, _layer_norm(x), scale_mlp)
    h = F.linear(F.gelu(F.linear(h, w["ff1_w"], w["ff1_b"]), approximate="tanh"), w["ff2_w"], w["ff2_b"])
    return torch.addcmul(x, gate_mlp, h)


def euler_chunk(
    noise,
    context,
    context_mask,
    state,
    mods,
    out_mods,
    future_qkv,
    w: dict,
    heads: int,
    kinds: tuple[str, ...],
    trim: int,
):
    """The captured unit. noise (B, H, A) float32, projected context (B, L, D), context_mask (B, L)
    bool, state (B, S) or None, mods[block][step] and out_mods[step] from `ExpertRuntime._conditioning`
    -> actions (B, H, A). `future_qkv[step]`: the first block's Q/K/V rows of the learned future tokens
    (None when the first block is not self-attention or there are none).
    From block `trim` on (after the last self-attention block) every op is per token (cross-attention
    to the context, MLP, output norm): only the H action tokens, which the output reads, are carried."""
    n, horizon = len(out_mods), noise.shape[1]
    dtype = context.dtype
    mask = context_mask[:, None, None, :]  # (B, 1, 1, L)
    kvs = [
        None
        if kind != "cross"
        else tuple(_heads(F.linear(context, bw[k + "_w"], bw[k + "_b"]), heads) for k in ("k", "v"))
        for kind, bw in zip(kinds, w["blocks"])
    ]  # (B, heads, L, D/heads) each
    # tokens that do not depend on x, in the expert's order (lara.action_expert.order_tokens)
    state_token = future = None
    if state is not None:
        state_token = (F.linear(state.to(dtype), w["state_w"], w["state_b"]) + w["pos"][-horizon - 1])[
            :, None
        ]  # (B, 1, D)
    if w["future"] is not None:
        future = w["future"].expand(noise.shape[0], -1, -1)  # (B, F, D)
    pos = w["pos"][-horizon:]  # (H, D)
    start = int(state is not None)  # the future tokens' first row
    x = noise
    for i in range(n):
        actions = F.linear(x.to(dtype), w["in_w"], w["in_b"]) + pos  # (B, H, D)
        tokens = order_tokens(state_token, future, actions)  # (B, T, D)
        for j, (kind, bw, kv, mod) in enumerate(zip(kinds, w["blocks"], kvs, mods)):
            if j == trim:
                tokens = tokens[:, -horizon:]  # (B, H, D)
            fixed = (
                None if j or future_qkv is None else (start, start + future_qkv[i].shape[1], future_qkv[i])
            )
            tokens = _block(tokens, kind, bw, mod[i], kv, mask, heads, fixed)
        shift, scale = out_mods[i]  # (B, 1, D) each, scale as 1 + scale
        tokens = torch.addcmul(shift, _layer_norm(tokens[:, -horizon:]), scale)  # (B, H, D)
        x = x - F.linear(tokens, w["out_w"], w["out_b"]).float() / n
    return x


class ExpertRuntime:
    """`sample(context, mask, state, num_steps, noise)` like `ActionExpert.sample`, captured."""

    def __init__(self, expert, compile: bool = False, cuda_graph: bool = False) -> None:
        self.expert = expert
        self.compile, self.cuda_graph = compile, cuda_graph
        self.heads = expert.cfg.num_heads
        self.kinds = tuple("cross" if blk.cross else "self" for blk in expert.blocks)
        self.trim = max((j + 1 for j, kind in enumerate(self.kinds) if kind == "self"), default=0)
        self._key = None
        self._params: list[torch.Tensor] = list(expert.parameters())
        self._weights: dict = {}
        self._cond: dict = {}
        self._graphs: dict = {}
        self._fn = euler_chunk
        self._failed: set[str] = set()

    # ------------------------------------------------------------------ cached constants
    def _version(self) -> tuple:
        """Changes when an expert parameter is updated in place (optimizer, load_state_dict), moved or
        replaced (the parameter list is re-read on refresh; iterating modules every call costs more
        than a small chunk's arithmetic)."""
        w = self.expert.action_in.weight
        return (w.data_ptr(), w.dtype, sum(p._version for p in self._params))

    def _refresh(self) -> None:
        key = self._version()
        if key == self._key:
            return
        e = self.expert
        self._params = list(e.parameters())
        key = self._version()
        blocks = []
        for blk in e.blocks:
            at = blk.attn
            bw = {
                "q_w": at.to_q.weight,
                "q_b": at.to_q.bias,
                "o_w": at.to_out[0].weight,
                "o_b": at.to_out[0].bias,
                "ff1_w": blk.ff.net[0].proj.weight,
                "ff1_b": blk.ff.net[0].proj.bias,
                "ff2_w": blk.ff.net[2].weight,
                "ff2_b": blk.ff.net[2].bias,
            }
            if blk.cross:
                bw.update(k_w=at.to_k.weight, k_b=at.to_k.bias, v_w=at.to_v.weight, v_b=at.to_v.bias)
            else:  # one (3D, D) projection instead of three
                bw["qkv_w"] = torch.cat([at.to_q.weight, at.to_k.weight, at.to_v.weight])
                bw["qkv_b"] = torch.cat([at.to_q.bias, at.to_k.bias, at.to_v.bias])
            blocks.append(bw)
        dtype = e.action_in.weight.dtype
        self._weights = {
            "blocks": blocks,
            "in_w": e.action_in.weight,
            "in_b": e.action_in.bias,
            "pos": e.pos,
            "future": None if e.future is None else e.future.to(dtype)[None],
            "state_w": None if e.state_in is None else e.state_in.weight,
            "state_b": None if e.state_in is None else e.state_in.bias,
            "out_w": e.action_out.weight,
            "out_b": e.action_out.bias,
        }
        self._cond.clear()
        self._graphs.clear()
        self._key = key

    def _conditioning(self, n: int, b: int, device) -> tuple[list, list, list | None]:
        """Timestep conditioning for the uniform grid t = 1, 1 - 1/N, ...: it depends on the step
        count only, not on the observation. Per block and step the six AdaLN modulations as (B, 1, D)
        (scales as 1 + scale), per step the output (shift, 1 + scale), and per step the first block's
        Q/K/V of the learned future tokens (a function of the weights and the step only)."""
        if (n, b) not in self._cond:
            times = (1.0 - torch.arange(n, device=device, dtype=torch.float32) / n)[:, None].expand(
                n, b
            )  # (N, B)
            e = self.expert
            temb = e.time_embed(e.time_proj(times.flatten() * 1000.0).to(e.action_in.weight.dtype)).view(
                n, b, -1
            )
            ones = torch.tensor([0, 1, 0, 0, 1, 0], dtype=temb.dtype, device=device)[
                :, None
            ]  # (6, 1): +1 on scales
            mods = [
                [tuple((m[i] + ones)[:, :, None].unbind(1)) for i in range(n)]  # six (B, 1, D)
                for m in (blk.modulation(temb) for blk in e.blocks)
            ]  # (N, B, 6, D) each
            shift, scale = e.out_mod(F.silu(temb)).chunk(2, dim=-1)  # (N, B, D) each
            outs = [(shift[i][:, None], 1 + scale[i][:, None]) for i in range(n)]
            future = None
            if self.kinds[0] == "self" and self._weights["future"] is not None:  # the same in every chunk
                w0, fut = (
                    self._weights["blocks"][0],
                    _layer_norm(self._weights["future"].expand(b, -1, -1)),
                )  # (B, F, D)
                future = [
                    F.linear(torch.addcmul(mods[0][i][0], fut, mods[0][i][1]), w0["qkv_w"], w0["qkv_b"])
                    for i in range(n)
                ]  # (B, F, 3D) per step
            self._cond[(n, b)] = (mods, outs, future)
        return self._cond[(n, b)]

    # ------------------------------------------------------------------ execution
    def _fallback(self, what: str, err: Exception) -> None:
        log.warning("expert %s failed (%s: %s); falling back to eager", what, type(err).__name__, err)
        self._failed.add(what)

    def sample(self, context, context_mask, state, num_steps: int | None = None, noise=None) -> torch.Tensor:
        """context (B, L, D) projected, context_mask (B, L) bool, state (B, S) normalized or None
        -> (B, H, A)."""
        e = self.expert
        if e.state_in is not None and state is None:
            raise ValueError(
                "the expert is configured with a state token (expert.use_state) but got no state"
            )
        n = num_steps or e.cfg.num_inference_steps
        b = context.shape[0]
        if noise is None:  # the same draw as ActionExpert.sample
            noise = torch.randn(b, e.chunk_size, e.action_dim, device=context.device)
        with torch.inference_mode():
            self._refresh()
            cond = self._conditioning(n, b, context.device)
            args = (noise.float(), context, context_mask, state if e.state_in is not None else None, *cond)
            if self.cuda_graph and context.device.type == "cuda" and "cuda_graph" not in self._failed:
                try:
                    return self._replay(*args)
                except Exception as err:  # noqa: BLE001 - any capture error: eager still works
                    self._fallback("cuda_graph", err)
            if self.compile and "compile" not in self._failed:
                try:
                    return self._compiled()(*args, self._weights, self.heads, self.kinds, self.trim)
                except Exception as err:  # noqa: BLE001 - e.g. no C++ compiler for Inductor
                    self._fallback("compile", err)
            return euler_chunk(*args, self._weights, self.heads, self.kinds, self.trim)

    def _compiled(self):
        if self._fn is euler_chunk:
            self._fn = torch.compile(euler_chunk, dynamic=False)
        return self._fn

    def _replay(self, noise, context, context_mask, state, mods, out_mods, future_qkv) -> torch.Tensor:
        """CUDA graph of the unit per input shape: static buffers are filled, the graph replayed."""
        key = (tuple(context.shape), context.dtype, len(out_mods), state is None)
        fn = self._compiled() if self.compile and "compile" not in self._failed else euler_chunk
        if key not in self._graphs:
            static = [t.clone() for t in (noise, context, context_mask)] + [
                None if state is None else state.clone()
            ]
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):  # warm-up off the capture stream (compilation, allocator)
                for _ in range(2):
                    fn(*static, mods, out_mods, future_qkv, self._weights, self.heads, self.kinds, self.trim)
            torch.cuda.current_stream().wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                out = fn(
                    *static, mods, out_mods, future_qkv, self._weights, self.heads, self.kinds, self.trim
                )
            if (
                len(self._graphs) >= 4
            ):  # each graph holds its memory pool; a few shapes (e.g. step counts) at a time
                self._graphs.pop(next(iter(self._graphs)))
            self._graphs[key] = (graph, static, out)
        graph, static, out = self._graphs[key]
        for buf, value in zip(static, (noise, context, context_mask, state)):
            if buf is not None:
                buf.copy_(value)
        graph.replay()
        return out.clone()
