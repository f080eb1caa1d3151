"""python -m lazygrad.onnx model.onnx [--bench]: a model's inputs and outputs; with --bench, its latency on random
inputs, beside onnxruntime's where that is installed."""
from __future__ import annotations
import argparse
import statistics
import time
import numpy as np
import onnx
from onnx import TensorProto


def _shape(vi) -> list:
  return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in vi.type.tensor_type.shape.dim]


def _type(vi) -> str:
  t = vi.type.tensor_type.elem_type
  name = TensorProto.DataType.Name(t).lower() if t else "?"
  return {"float": "float32", "double": "float64"}.get(name, name)


def random_inputs(model, inputs, seed: int = 0) -> dict[str, np.ndarray]:
  """Random data for each input; a symbolic dim is 1."""
  from onnx.helper import tensor_dtype_to_np_dtype
  rng = np.random.default_rng(seed)
  feeds = {}
  for vi in inputs:
    shape = [d if isinstance(d, int) and d > 0 else 1 for d in _shape(vi)]
    npd = tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type)
    if npd.kind == "f": feeds[vi.name] = rng.standard_normal(shape).astype(npd)
    elif npd.kind == "b": feeds[vi.name] = rng.random(shape) < 0.5
    else: feeds[vi.name] = rng.integers(0, 10, shape).astype(npd)
  return feeds


def _time(fn, runs: int, warmup: int) -> float:
  for _ in range(warmup): fn()
  times = []
  for _ in range(runs):
    t = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t)
  return statistics.median(times)


def bench(path: str, runs: int = 20, warmup: int = 3) -> dict[str, float]:
  """Median latency in seconds of one call with random inputs: lazygrad (jitted), and onnxruntime where installed."""
  import lazygrad as lg
  from lazygrad.onnx import load
  model = load(path)
  feeds = random_inputs(model.proto, model.inputs)
  tensors = [lg.tensor(feeds[n]).realize() for n in model.input_names]
  step = lg.jit(model.forward)

  def run_lazygrad():
    out = step(*tensors)
    (out if isinstance(out, lg.Tensor) else out[0]).numpy()
  result = {"lazygrad": _time(run_lazygrad, runs, warmup)}
  try:
    import onnxruntime as ort
  except ImportError:
    return result
  sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
  result["onnxruntime"] = _time(lambda: sess.run(None, feeds), runs, warmup)
  return result


def main(argv=None):
  ap = argparse.ArgumentParser(prog="python -m lazygrad.onnx", description=__doc__)
  ap.add_argument("model", help="an .onnx file")
  ap.add_argument("--bench", action="store_true", help="time it on random inputs (beside onnxruntime if installed)")
  ap.add_argument("--runs", type=int, default=20)
  args = ap.parse_args(argv)
  proto = onnx.load(args.model, load_external_data=False)
  inits = {i.name for i in proto.graph.initializer}
  opsets = ", ".join(f"{o.domain or 'ai.onnx'} {o.version}" for o in proto.opset_import)
  print(f"{args.model}: {len(proto.graph.node)} nodes, {len(inits)} initializers, opset {opsets}")
  for vi in proto.graph.input:
    if vi.name not in inits: print(f"input  {vi.name}: {_type(vi)} {_shape(vi)}")
  for vi in proto.graph.output: print(f"output {vi.name}: {_type(vi)} {_shape(vi)}")
  if args.bench:
    times = bench(args.model, args.runs)
    line = f"latency (median of {args.runs}): lazygrad {times['lazygrad'] * 1e3:.2f} ms"
    if "onnxruntime" in times:
      line += f", onnxruntime {times['onnxruntime'] * 1e3:.2f} ms ({times['onnxruntime'] / times['lazygrad']:.2f}x lazygrad's speed)"
    else: line += " (onnxruntime is not installed)"
    print(line)


if __name__ == "__main__":
  main()
