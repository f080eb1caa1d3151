"""torch.nn.functional's names, each one piece of code shared with the Tensor methods and nn modules."""
from lazygrad.tensor import Tensor


def relu(x: Tensor) -> Tensor: return x.relu()
def sigmoid(x: Tensor) -> Tensor: return x.sigmoid()
def tanh(x: Tensor) -> Tensor: return x.tanh()
def softmax(x: Tensor, dim: int = -1, dtype=None) -> Tensor: return x.softmax(dim, dtype)
def log_softmax(x: Tensor, dim: int = -1, dtype=None) -> Tensor: return x.log_softmax(dim, dtype)
def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor: return x.linear(weight, bias)
def pad(x: Tensor, pad, mode: str = "constant", value: float = 0.0) -> Tensor:
  if mode != "constant": raise NotImplementedError(f"pad: mode {mode!r} is not supported yet; use mode='constant'")
  return x.pad(pad, value)
