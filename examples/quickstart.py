"""A first look at lazygrad: tensors, autograd and fused kernels, fitting sin(x) with a two-layer MLP."""
import math
import time
import lazygrad as lg

lg.manual_seed(0)
x = lg.linspace(-math.pi, math.pi, 256).reshape(256, 1)
y = x.sin()

# parameters of a 1-64-1 MLP
w1 = (lg.randn(1, 64) * 1.0).requires_grad_()
b1 = lg.zeros(64, requires_grad=True)
w2 = (lg.randn(64, 1) * 0.1).requires_grad_()
b2 = lg.zeros(1, requires_grad=True)
params = [w1, b1, w2, b2]

start, kernels = time.perf_counter(), lg.kernel_count()
for step in range(301):
  pred = (x @ w1 + b1).tanh() @ w2 + b2
  loss = ((pred - y) ** 2).mean()
  loss.backward()
  with lg.no_grad():
    for p in params:
      p.assign(p - 0.02 * p.grad)
      p.grad = None
  lg.realize(loss, *params)  # one schedule: forward, backward and the update, fused into a few kernels
  if step % 100 == 0: print(f"step {step:3d}  loss {loss.item():.5f}")

elapsed = time.perf_counter() - start
print(f"device {x.device}: 301 steps in {elapsed:.2f} s, {(lg.kernel_count() - kernels) / 301:.0f} kernels per step")
print(f"sin(1.0) = {math.sin(1.0):.4f}, the network says {((lg.Tensor([[1.0]]) @ w1 + b1).tanh() @ w2 + b2).item():.4f}")
