"""torch.signal: window functions (lazygrad.signal.windows)."""
from lazygrad.signal import windows  # noqa: F401
