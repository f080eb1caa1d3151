"""An ONNX model as a lazygrad callable: `load(path_or_model)` gives an OnnxModel, named inputs in, named outputs out.

Every node becomes lazygrad Tensor ops, so the whole graph is one lazy computation that fuses like any lazygrad
code. Initializers are uploaded once, at load; nodes whose inputs are all constant (ConstantOfShape weights, a
reshape's target shape) are evaluated once there too. An op lazygrad lacks fails at load, naming the op and opset.
"""
from __future__ import annotations
import os
import numpy as np
import onnx
import onnx.inliner
import onnx.shape_inference
from onnx import TensorProto, numpy_helper
from lazygrad import dtype as dt
from lazygrad.tensor import Tensor, realize
from lazygrad.onnx.registry import lookup, DOMAINS, Sequence
from lazygrad.onnx import ops  # noqa: F401  (registers the ops)

ONNX_DTYPES = {TensorProto.FLOAT: dt.float32, TensorProto.UINT8: dt.uint8, TensorProto.INT8: dt.int8,
               TensorProto.INT16: dt.int16, TensorProto.INT32: dt.int32, TensorProto.INT64: dt.int64,
               TensorProto.BOOL: dt.bool_, TensorProto.FLOAT16: dt.float16, TensorProto.DOUBLE: dt.float64,
               TensorProto.BFLOAT16: dt.bfloat16}
TO_ONNX = {v: k for k, v in ONNX_DTYPES.items()}
# ONNX's 4- and 2-bit integers, held in a byte: (holding dtype, smallest, largest value)
NARROW_INTS = {TensorProto.INT4: (dt.int8, -8, 7), TensorProto.UINT4: (dt.uint8, 0, 15),
               TensorProto.INT2: (dt.int8, -2, 1), TensorProto.UINT2: (dt.uint8, 0, 3)}
# ONNX's 8- and 4-bit floats, held in float32: (mantissa bits, smallest normal exponent, largest finite value,
# whether it has infinities, whether it has no negative zero (the FNUZ types))
NARROW_FLOATS = {TensorProto.FLOAT8E4M3FN: (3, -6, 448.0, False, False), TensorProto.FLOAT8E4M3FNUZ: (3, -7, 240.0, False, True),
                 TensorProto.FLOAT8E5M2: (2, -14, 57344.0, True, False), TensorProto.FLOAT8E5M2FNUZ: (2, -15, 57344.0, False, True),
                 TensorProto.FLOAT4E2M1: (1, 0, 6.0, False, False)}
NARROW_NUMPY = {"int4": np.int8, "uint4": np.uint8, "int2": np.int8, "uint2": np.uint8, "float8_e4m3fn": np.float32,
                "float8_e4m3fnuz": np.float32, "float8_e5m2": np.float32, "float8_e5m2fnuz": np.float32,
                "float4_e2m1fn": np.float32}
NONDETERMINISTIC = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial", "Bernoulli"}
HOST_KEEP = 4096  # constants of at most this many elements keep a host copy, for ops that read shapes and indices


def dtype_of(elem_type: int, what: str) -> dt.DType:
  """The lazygrad dtype of an ONNX element type (the holding byte for 4- and 2-bit integers), or a TypeError naming
  it and what carried it."""
  if elem_type in ONNX_DTYPES: return ONNX_DTYPES[elem_type]
  if elem_type in NARROW_INTS: return NARROW_INTS[elem_type][0]
  if elem_type in NARROW_FLOATS: return dt.float32
  name = TensorProto.DataType.Name(elem_type) if elem_type in TensorProto.DataType.values() else str(elem_type)
  supported = ", ".join(TensorProto.DataType.Name(k) for k in ONNX_DTYPES)
  raise TypeError(f"{what}: ONNX element type {name} is not supported by lazygrad (supported: {supported})")


def to_tensor(value, what: str, device=None) -> Tensor:
  """A NumPy array (or number, or Tensor) as a Tensor; dtypes lazygrad lacks fail with a message naming `what`."""
  if isinstance(value, Tensor): return value
  arr = np.asarray(value)
  if arr.dtype.name in NARROW_NUMPY: arr = arr.astype(NARROW_NUMPY[arr.dtype.name])  # exact: held in a byte
  if arr.dtype.kind not in "biuf" or arr.dtype in (np.uint16, np.uint32, np.uint64):
    raise TypeError(f"{what}: NumPy dtype {arr.dtype} is not supported by lazygrad (supported: bool, uint8, int8, int16, "
                    f"int32, int64, float16, float32, float64)")
  return Tensor(arr, device=device)


class Node:
  """One graph node: its op function (picked by opset at load), attributes and input and output names."""

  def __init__(self, proto: onnx.NodeProto, graph: Graph):
    self.graph, self.op_type, self.domain = graph, proto.op_type, DOMAINS.get(proto.domain, proto.domain)
    self.name = proto.name or f"{proto.op_type}#{len(graph.nodes)}"
    self.inputs, self.outputs = list(proto.input), list(proto.output)
    self.opset = graph.opsets.get(self.domain, graph.opsets.get("", 1) if self.domain == "" else 1)
    self.fn = lookup(self.domain, self.op_type, self.opset)
    self.attrs = {a.name: self._attribute(a) for a in proto.attribute}

  def _attribute(self, a: onnx.AttributeProto):
    v = onnx.helper.get_attribute_value(a)
    if a.type == onnx.AttributeProto.STRING: return v.decode()
    if a.type == onnx.AttributeProto.STRINGS: return [s.decode() for s in v]
    if a.type == onnx.AttributeProto.TENSOR: return numpy_helper.to_array(v)
    if a.type == onnx.AttributeProto.GRAPH: return Graph(v, self.graph.opsets, self.graph.device, outer=self.graph)
    if a.type == onnx.AttributeProto.INTS: return list(v)
    if a.type == onnx.AttributeProto.FLOATS: return list(v)
    return v

  @property
  def where(self) -> str: return f"{self.op_type} (opset {self.opset}, node {self.name!r})"

  def attr(self, name: str, default=None):
    return self.attrs.get(name, default)

  def host(self, t: Tensor | None) -> np.ndarray | None:
    """A (small) input's values on the host: shapes, axes, indices. Constants have theirs from load; others are read."""
    if t is None: return None
    return self.graph.host_value(t)

  @property
  def device(self): return self.graph.device

  @property
  def n_outputs(self) -> int:
    return len(self.outputs)

  def output_used(self, i: int) -> bool:
    return i < len(self.outputs) and self.outputs[i] != ""


class Graph:
  """A GraphProto ready to run: constants uploaded, nodes bound to their op functions."""

  def __init__(self, proto: onnx.GraphProto, opsets: dict[str, int], device=None, outer: Graph | None = None):
    self.opsets, self.device, self.outer, self.name = opsets, device, outer, proto.name
    self.consts: dict[str, Tensor] = {}
    self._host: dict[int, tuple[Tensor, np.ndarray]] = {}  # id(tensor) -> (tensor, its values), for constants
    self._run_host: dict[int, tuple[Tensor, np.ndarray]] = {}
    for init in proto.initializer:
      arr = numpy_helper.to_array(init)
      self.consts[init.name] = self._constant(arr, f"initializer {init.name!r}")
    self.inputs = [vi for vi in proto.input if vi.name not in self.consts]
    # each named value's declared ONNX element type, where known: a 4-bit value is held in a byte, and CastLike,
    # QuantizeLinear and the outputs need to know what it stands for
    self.declared = {vi.name: vi.type.tensor_type.elem_type for vi in [*proto.input, *proto.output, *proto.value_info]
                     if vi.type.HasField("tensor_type")}
    self.declared.update({i.name: i.data_type for i in proto.initializer})
    self.outputs = [vi.name for vi in proto.output]
    self.nodes: list[Node] = []
    for p in proto.node: self.nodes.append(Node(p, self))
    missing = sorted({f"{n.op_type} (opset {n.opset}{', domain ' + n.domain if n.domain else ''})"
                      for n in self._all_nodes() if n.fn is None})
    if missing:
      raise NotImplementedError(f"lazygrad.onnx does not support the ONNX op{'s' if len(missing) > 1 else ''} "
                                f"{', '.join(missing)} in graph {self.name!r}")
    if outer is None: self._fold_constants()
    realize(*self.consts.values())

  def _all_nodes(self):
    for n in self.nodes:
      yield n
      for a in n.attrs.values():
        if isinstance(a, Graph): yield from a._all_nodes()

  def _constant(self, arr: np.ndarray, what: str) -> Tensor:
    t = to_tensor(arr, what, self.device)
    if arr.size <= HOST_KEEP: self._host[id(t)] = (t, arr)
    return t

  def _fold_constants(self):
    """Run once, at load, every node whose inputs are all constants, keeping its outputs as constants."""
    kept = []
    for n in self.nodes:
      if (n.op_type not in NONDETERMINISTIC and all(i == "" or i in self.consts for i in n.inputs)
          and not any(isinstance(a, Graph) for a in n.attrs.values())):
        outs = self._call(n, [self.consts[i] if i else None for i in n.inputs])
        if all(isinstance(o, Tensor) or o is None for o in outs):
          for name, o in zip(n.outputs, outs):
            if name and o is not None:
              self.consts[name] = o
              if id(o) in self._run_host: self._host[id(o)] = self._run_host[id(o)]
          continue
      kept.append(n)
    self._run_host = {}
    self.nodes = kept

  def host_value(self, t: Tensor) -> np.ndarray:
    for cache in (self._host, self._run_host):
      if id(t) in cache: return cache[id(t)][1]
    if self.outer is not None:
      g = self.outer
      while g is not None:
        if id(t) in g._host: return g._host[id(t)][1]
        g = g.outer
    arr = t.numpy()
    self._run_host[id(t)] = (t, arr)
    return arr

  def set_host(self, t: Tensor, arr: np.ndarray) -> Tensor:
    """Record values a node knows on the host (a Shape's output) so later shape arithmetic needs no read-back."""
    self._run_host[id(t)] = (t, arr)
    return t

  def _call(self, n: Node, args: list) -> list:
    try: out = n.fn(n, *args)
    except Exception as e:
      if getattr(e, "_onnx_node", False): raise
      err = type(e)(f"{n.where}: {e}") if type(e) in (ValueError, TypeError, NotImplementedError, RuntimeError,
                                                        IndexError) else RuntimeError(f"{n.where}: {type(e).__name__}: {e}")
      err._onnx_node = True
      raise err from e
    outs = list(out) if isinstance(out, tuple) else [out]
    if len(outs) < len(n.outputs): outs += [None] * (len(n.outputs) - len(outs))
    return outs

  def run(self, feeds: dict, scope: dict | None = None) -> list:
    """Outputs in the graph's order, from `feeds` (name -> Tensor) and, for a subgraph, the enclosing scope's values."""
    env = dict(scope) if scope else {}
    env.update(self.consts)
    env.update(feeds)
    saved, self._run_host = self._run_host, {}
    try:
      for n in self.nodes:
        args = []
        for i in n.inputs:
          if i == "": args.append(None)
          elif i in env: args.append(env[i])
          else: raise KeyError(f"{n.where}: input {i!r} is not computed by any earlier node, initializer or graph input")
        n.scope = env
        for name, o in zip(n.outputs, self._call(n, args)):
          if name: env[name] = o
      return [env[o] for o in self.outputs]
    finally:
      self._run_host = saved


def _inline_functions(proto: onnx.ModelProto) -> onnx.ModelProto:
  """The model with each call of a function replaced by the function's body (onnx's inliner): its own local functions,
  and top-level ops the registry lacks that onnx defines as a function of other ops (FlexAttention), whose body may
  depend on the node's input types (then known from shape inference)."""
  opsets = {DOMAINS.get(o.domain, o.domain): o.version for o in proto.opset_import}
  local = {(f.domain, f.name) for f in proto.functions}

  def schema_of(node):
    domain = DOMAINS.get(node.domain, node.domain)
    if (node.domain, node.op_type) in local or lookup(domain, node.op_type, opsets.get(domain, 1)): return None
    try: schema = onnx.defs.get_schema(node.op_type, opsets.get(domain, 1), node.domain)
    except onnx.defs.SchemaError: return None
    return schema if schema.has_function or schema.has_context_dependent_function else None

  if not proto.functions and not any(schema_of(nd) for nd in proto.graph.node): return proto
  proto = onnx.ModelProto.FromString(proto.SerializeToString())
  try: typed = onnx.shape_inference.infer_shapes(proto)
  except Exception: typed = proto  # the types of graph inputs and declared values still serve
  types = {vi.name: vi.type for vi in (*typed.graph.input, *typed.graph.value_info, *typed.graph.output)}
  for init in proto.graph.initializer:
    types.setdefault(init.name, onnx.helper.make_tensor_type_proto(init.data_type, list(init.dims)))
  for k, node in enumerate(proto.graph.node):
    schema = schema_of(node)
    if schema is None: continue
    domain = DOMAINS.get(node.domain, node.domain)
    if schema.has_function:
      body = onnx.FunctionProto.FromString(schema.get_function_with_opset_version(opsets.get(domain, 1)))
    elif all(i in types for i in node.input if i):
      body = onnx.FunctionProto.FromString(schema.get_context_dependent_function(
        node.SerializeToString(), [types[i].SerializeToString() if i else b"" for i in node.input]))
    else: continue  # its input types are unknown: the load error names the op
    if not all(lookup(DOMAINS.get(b.domain, b.domain), b.op_type, opsets.get(DOMAINS.get(b.domain, b.domain), 1))
               for b in body.node): continue  # a body op is missing too (Bernoulli's RandomUniformLike): name this op
    body.domain, body.name = "lazygrad.inlined", f"{node.op_type}_{k}"  # context-dependent bodies differ per node
    node.domain, node.op_type = body.domain, body.name
    proto.functions.append(body)
  if not any(o.domain == "lazygrad.inlined" for o in proto.opset_import):
    proto.opset_import.append(onnx.helper.make_opsetid("lazygrad.inlined", 1))
  return onnx.inliner.inline_local_functions(proto)


class OnnxModel:
  """A loaded ONNX model. `model(x=array)` or `model(array)` returns {output name: Tensor}, lazily;
  `model.forward(*inputs)` returns the outputs as a tuple (a Tensor where there is one), for `@lg.jit`."""

  def __init__(self, proto: onnx.ModelProto, device=None):
    proto = _inline_functions(proto)
    self.proto = proto
    opsets = {DOMAINS.get(o.domain, o.domain): o.version for o in proto.opset_import}
    self.graph = Graph(proto.graph, opsets, device)
    self.input_names = [vi.name for vi in self.graph.inputs]
    self.output_names = list(self.graph.outputs)

  @property
  def inputs(self): return self.graph.inputs

  def _feeds(self, args, kwargs) -> dict:
    if len(args) > len(self.input_names):
      raise TypeError(f"the model takes {len(self.input_names)} inputs ({', '.join(self.input_names)}), got {len(args)}")
    feeds = dict(zip(self.input_names, args))
    for k, v in kwargs.items():
      if k not in self.input_names:
        raise TypeError(f"the model has no input {k!r}; its inputs are {', '.join(self.input_names)}")
      if k in feeds: raise TypeError(f"input {k!r} given twice (by position and by name)")
      feeds[k] = v
    out = {}
    for vi in self.graph.inputs:
      if vi.name not in feeds:
        raise TypeError(f"missing input {vi.name!r}; the model's inputs are {', '.join(self.input_names)}")
      v = feeds[vi.name]
      if v is None or isinstance(v, Tensor): out[vi.name] = v  # None: an empty optional
      elif isinstance(v, list): out[vi.name] = Sequence(to_tensor(x, f"input {vi.name!r}", self.graph.device) for x in v)
      else: out[vi.name] = to_tensor(v, f"input {vi.name!r}", self.graph.device)
    return out

  def __call__(self, *args, **kwargs) -> dict:
    return dict(zip(self.output_names, self.graph.run(self._feeds(args, kwargs))))

  def forward(self, *args, **kwargs):
    outs = self.graph.run(self._feeds(args, kwargs))
    return outs[0] if len(outs) == 1 else tuple(outs)


def load(path_or_model, device=None) -> OnnxModel:
  """An OnnxModel from a file path, bytes, or an onnx.ModelProto; it runs on `device` (LAZYGRAD_DEVICE by default)."""
  if isinstance(path_or_model, onnx.ModelProto): proto = path_or_model
  elif isinstance(path_or_model, (bytes, bytearray)): proto = onnx.load_model_from_string(bytes(path_or_model))
  elif isinstance(path_or_model, (str, os.PathLike)):
    if not os.path.exists(path_or_model): raise FileNotFoundError(f"lazygrad.onnx.load: no such file {str(path_or_model)!r}")
    proto = onnx.load(path_or_model)
  else:
    raise TypeError(f"lazygrad.onnx.load: expected a path, bytes or an onnx.ModelProto, got {type(path_or_model).__name__}")
  return OnnxModel(proto, device)
