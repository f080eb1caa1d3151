"""ONNX's attention family: Attention (opsets 23-25: masks, causal and sliding-window bias, KV cache, grouped KV heads,
softcap), RotaryEmbedding and RMSNormalization, as lazygrad Tensor ops."""
from __future__ import annotations
import math
from lazygrad.tensor import Tensor, cat, stack
from lazygrad import dtype as dt
from lazygrad.onnx.registry import op


def _heads(x: Tensor, n_heads: int) -> Tensor:
  """(B, S, H*D) -> (B, H, S, D)."""
  b, s, hidden = x.shape
  return x.reshape(b, s, n_heads, hidden // n_heads).transpose(1, 2)


@op("Attention", since=23)
def attention(n, q, k, v, mask=None, past_k=None, past_v=None, nonpad_kv_seqlen=None):
  three_d = q.ndim == 3
  if three_d:
    q, k, v = _heads(q, n.attr("q_num_heads")), _heads(k, n.attr("kv_num_heads")), _heads(v, n.attr("kv_num_heads"))
  scale = n.attr("scale")
  scale = math.sqrt(1 / math.sqrt(q.shape[3]) if scale is None else scale)  # applied to both Q and K, as ONNX does
  present_k = cat([past_k, k], 2) if past_k is not None else k
  present_v = cat([past_v, v], 2) if past_v is not None else v
  sq, skv = q.shape[2], present_k.shape[2]
  i = Tensor.arange(sq, device=q.device).reshape(sq, 1)
  j = Tensor.arange(skv, device=q.device).reshape(1, skv)
  bias = Tensor.zeros(sq, skv, dtype=q.dtype, device=q.device)
  if mask is not None:
    if mask.shape[-1] < skv:  # a short mask covers the first keys; the rest are masked
      mask = mask.pad((0, skv - mask.shape[-1]), False if mask.dtype is dt.bool_ else -math.inf)
    bias = bias + (mask.where(0.0, -math.inf).cast(q.dtype) if mask.dtype is dt.bool_ else mask.cast(q.dtype))
  # the query at row i sits at position i + offset among the keys
  if nonpad_kv_seqlen is not None and past_k is None:
    offset = (nonpad_kv_seqlen.cast(dt.int64) - sq).reshape(-1, 1, 1, 1)
  else: offset = past_k.shape[2] if past_k is not None else 0
  diff = i + offset - j
  allowed = None
  if n.attr("is_causal", 0): allowed = diff >= 0
  left, right = n.attr("left_window_size", -1), n.attr("right_window_size", -1)
  if left >= 0: allowed = (diff <= left) if allowed is None else allowed & (diff <= left)
  if right >= 0: allowed = (-diff <= right) if allowed is None else allowed & (-diff <= right)
  if allowed is not None: bias = bias + allowed.where(0.0, -math.inf).cast(q.dtype)
  if nonpad_kv_seqlen is not None:
    live = j.reshape(1, 1, 1, skv) < nonpad_kv_seqlen.cast(dt.int64).reshape(-1, 1, 1, 1)
    bias = bias + live.where(0.0, -math.inf).cast(q.dtype)
  kk, vv = present_k, present_v
  if q.shape[1] != kk.shape[1]:  # grouped KV heads: each serves q_heads / kv_heads query heads
    reps = q.shape[1] // kk.shape[1]
    kk, vv = kk.repeat_interleave(reps, 1), vv.repeat_interleave(reps, 1)
  scores = (q * scale) @ (kk.transpose(2, 3) * scale)
  softcap = n.attr("softcap", 0.0)
  if softcap and softcap > 0: scores = (scores / softcap).tanh() * softcap
  qk_out = scores
  with_bias = scores + bias
  mode = n.attr("qk_matmul_output_mode", 0)
  if mode == 2: qk_out = with_bias
  precision = n.attr("softmax_precision")
  if precision is not None:
    from lazygrad.onnx.model import dtype_of
    with_bias = with_bias.cast(dtype_of(precision, n.where))
  row_max = with_bias.amax(-1, keepdim=True)
  dead = row_max == -math.inf  # a row whose every key is masked gives zeros
  e = (with_bias - dead.where(0.0, row_max)).exp()
  total = e.sum(-1, keepdim=True)
  probs = e / (total == 0).where(1.0, total)
  probs = (bias.amax(-1, keepdim=True) == -math.inf).where(0.0, probs).cast(q.dtype)
  if mode == 3: qk_out = probs
  y = probs @ vv
  if three_d: y = y.transpose(1, 2).reshape(y.shape[0], sq, -1)
  return y, present_k, present_v, qk_out.cast(q.dtype)


@op("RMSNormalization", since=23)
def rms_normalization(n, x, scale):
  axis = n.attr("axis", -1) % x.ndim
  axes = tuple(range(axis, x.ndim))
  from lazygrad.onnx.model import dtype_of
  stash = dtype_of(n.attr("stash_type", 1), n.where)
  xf = x.cast(stash)
  inv = ((xf * xf).mean(axes, keepdim=True) + n.attr("epsilon", 1e-5)).rsqrt()
  return (xf * inv).cast(x.dtype) * scale


@op("RotaryEmbedding", since=23)
def rotary_embedding(n, x, cos_cache, sin_cache, position_ids=None):
  interleaved = n.attr("interleaved", 0)
  four_d = x.ndim == 4  # (B, H, S, D); else (B, S, H*D)
  if four_d: xs = x.transpose(1, 2)  # (B, S, H, D)
  else:
    heads = n.attr("num_heads")
    xs = x.reshape(x.shape[0], x.shape[1], heads, -1)
  d = xs.shape[-1]
  rot = n.attr("rotary_embedding_dim", 0) or d
  if position_ids is not None: cos, sin = cos_cache[position_ids], sin_cache[position_ids]  # (B, S, rot/2)
  else: cos, sin = cos_cache, sin_cache
  cos, sin = cos.unsqueeze(-2), sin.unsqueeze(-2)  # (B, S, 1, rot/2)
  part, rest = xs[..., :rot], xs[..., rot:]
  if interleaved:
    a, b = part[..., 0::2], part[..., 1::2]
    ra, rb = a * cos - b * sin, b * cos + a * sin
    out = cat([ra.unsqueeze(-1), rb.unsqueeze(-1)], -1)
    out = out.reshape(*part.shape)
  else:
    a, b = part[..., :rot // 2], part[..., rot // 2:]
    out = cat([a * cos - b * sin, b * cos + a * sin], -1)
  y = cat([out, rest], -1) if rest.shape[-1] else out
  return y.transpose(1, 2) if four_d else y.reshape(x.shape)


@op("LinearAttention", since=27)
def linear_attention(n, q, k, v, past_state=None, decay=None, beta=None):
  """A recurrent state S (d_k x d_v per KV head), updated per time step: decayed (gated rules), corrected toward the
  step's value (delta rules), plus k v^T; each query reads q S * scale."""
  rule = n.attr("update_rule", "gated_delta")
  hq, hkv = n.attr("q_num_heads"), n.attr("kv_num_heads")
  gating, delta = rule in ("gated", "gated_delta"), rule in ("delta", "gated_delta")
  b, t, _ = q.shape
  q4, k4, v4 = (_heads(x, h).float() for x, h in ((q, hq), (k, hkv), (v, hkv)))
  dk, dv = q4.shape[-1], v4.shape[-1]
  if gating:
    g = decay.reshape(b, t, hkv, 1) if decay.shape[-1] == hkv else decay.reshape(b, t, hkv, dk)
    g = g.transpose(1, 2).float().exp()  # (B, H, T, 1 or d_k)
  if delta: bt = beta.reshape(b, t, beta.shape[-1], 1).transpose(1, 2).float()
  state = past_state.float() if past_state is not None else Tensor.zeros(b, hkv, dk, dv, device=q.device)
  scale = n.attr("scale", 0.0) or 1 / math.sqrt(dk)
  outs = []
  for i in range(t):
    kt, vt = k4[:, :, i], v4[:, :, i]
    if gating: state = state * g[:, :, i].unsqueeze(-1)
    if delta: vt = bt[:, :, i] * (vt - (state * kt.unsqueeze(-1)).sum(-2))
    state = state + kt.unsqueeze(-1) * vt.unsqueeze(-2)
    read = state.repeat_interleave(hq // hkv, 1) if hq != hkv else state
    outs.append((q4[:, :, i].unsqueeze(-1) * read).sum(-2) * scale)  # (B, Hq, d_v)
  y = stack(outs, 2).transpose(1, 2).reshape(b, t, hq * dv).cast(q.dtype)
  return y, state.cast(past_state.dtype if past_state is not None else q.dtype)


@op("CausalConvWithState", since=27)
def causal_conv_with_state(n, x, w, bias=None, past_state=None):
  import lazygrad.nn.functional as F
  act = n.attr("activation", "none")
  if act not in ("none", "silu", "swish"): raise NotImplementedError(f"CausalConvWithState: activation {act!r}")
  b, c, _ = x.shape
  k = w.shape[2]
  pad = past_state if past_state is not None else Tensor.zeros(b, c, k - 1, dtype=x.dtype, device=x.device)
  padded = cat([pad, x], 2)
  y = F.conv1d(padded, w, bias, groups=c)
  if act != "none": y = (y.float() * y.float().sigmoid()).cast(x.dtype)
  return y, padded[:, :, padded.shape[2] - (k - 1):]
