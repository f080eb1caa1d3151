"""lazygrad.onnx: a sample of onnx's node tests per op family, one light model, models exported from torch, the loader's
errors and the CLI. The whole BackendTest suite is `make onnx-test` (tests/onnx_backend.py)."""
import importlib
import io
import subprocess
import sys
import warnings
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
import lazygrad as lg  # noqa: E402
from lazygrad.onnx import load, backend  # noqa: E402
from onnx import helper, TensorProto  # noqa: E402

# one or two of onnx's node tests per op family: (the case module, the test names)
NODE_SAMPLES = {
  "add": ["test_add_bcast"], "div": ["test_div_uint8"], "pow": ["test_pow_types_int32_float32"],
  "gemm": ["test_gemm_all_attributes"], "matmul": ["test_matmul_4d"], "einsum": ["test_einsum_batch_matmul"],
  "reducesum": ["test_reduce_sum_negative_axes_keepdims_random", "test_reduce_sum_empty_axes_input_noop"],
  "reducemax": ["test_reduce_max_do_not_keepdims_random"], "argmax": ["test_argmax_negative_axis_keepdims_random_select_last_index"],
  "cumsum": ["test_cumsum_1d_reverse_exclusive"], "topk": ["test_top_k_smallest"],
  "slice": ["test_slice_neg_steps"], "gather": ["test_gather_negative_indices"], "gathernd": ["test_gathernd_example_int32_batch_dim1"],
  "scatternd": ["test_scatternd_max"], "pad": ["test_reflect_pad"], "expand": ["test_expand_dim_changed"],
  "reshape": ["test_reshape_negative_extended_dims"], "split": ["test_split_variable_parts_2d_opset18"],
  "nonzero": ["test_nonzero_example"], "where": ["test_where_long_example"], "onehot": ["test_onehot_negative_indices"],
  "conv": ["test_conv_with_autopad_same"], "convtranspose": ["test_convtranspose_pads"],
  "maxpool": ["test_maxpool_2d_ceil", "test_maxpool_with_argmax_2d_precomputed_strides"],
  "averagepool": ["test_averagepool_2d_pads_count_include_pad"], "batch_normalization": ["test_batchnorm_epsilon"],
  "layernormalization": ["test_layer_normalization_4d_axis1"], "lrn": ["test_lrn"],
  "resize": ["test_resize_upsample_sizes_cubic", "test_resize_downsample_scales_linear",
             "test_resize_downsample_sizes_cubic_antialias"],
  "lstm": ["test_lstm_with_peepholes"], "gru": ["test_gru_defaults"], "rnn": ["test_rnn_seq_length"],
  "cast": ["test_cast_FLOAT16_to_FLOAT"],
  "quantizelinear": ["test_quantizelinear_axis"], "dequantizelinear": ["test_dequantizelinear"],
  "softmax": ["test_softmax_axis_1"], "if_": ["test_if"],
  "flexattention": ["test_flexattention_score_mod"],  # an op run as the function onnx defines it by
}


def _node_cases():
  warnings.filterwarnings("ignore", category=RuntimeWarning)
  from onnx.backend.test.case import node
  for module in NODE_SAMPLES: importlib.import_module(f"onnx.backend.test.case.node.{module}")
  by_name = {tc.name: tc for tc in node._NodeTestCases}
  return [by_name[name] for names in NODE_SAMPLES.values() for name in names]


@pytest.mark.parametrize("case", _node_cases(), ids=lambda tc: tc.name)
def test_node_sample(case):
  from onnx.backend.test.runner import Runner, _normalize_tensor
  rep = backend.prepare(case.model, "CPU")
  for inputs, expected in case.data_sets:
    outs = rep.run([_normalize_tensor(x) for x in inputs])
    Runner.assert_similar_outputs([_normalize_tensor(x) for x in expected], outs, rtol=case.rtol, atol=case.atol)


def test_light_squeezenet():
  """One of onnx's nine light models against its stored output (all nine: make onnx-test)."""
  import os
  from onnx import numpy_helper
  data = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")
  model = load(os.path.join(data, "light_squeezenet.onnx"))
  x = (np.arange(3 * 224 * 224) / (3 * 224 * 224)).astype(np.float32).reshape(1, 3, 224, 224)  # the suite's input
  expected = numpy_helper.to_array(onnx.load_tensor(os.path.join(data, "light_squeezenet_output_0.pb")))
  out = model(x)[model.output_names[0]].numpy()
  np.testing.assert_allclose(out, expected, rtol=1e-3, atol=1e-7)


def _export(module, *args, **kwargs) -> bytes:
  torch = pytest.importorskip("torch")
  f = io.BytesIO()
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    torch.onnx.export(module.eval(), args, f, dynamo=False, **kwargs)
  return f.getvalue()


def test_torch_export_cnn():
  torch = pytest.importorskip("torch")
  torch.manual_seed(0)
  net = torch.nn.Sequential(
    torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
    torch.nn.Conv2d(8, 16, 3, stride=2, padding=1, groups=2), torch.nn.GELU(), torch.nn.AdaptiveAvgPool2d(1),
    torch.nn.Flatten(), torch.nn.Linear(16, 10), torch.nn.LogSoftmax(-1))
  net[1].running_mean.uniform_(-0.5, 0.5)
  net[1].running_var.uniform_(0.5, 2.0)
  x = torch.randn(2, 3, 16, 16)
  model = load(_export(net, x, input_names=["image"], output_names=["logp"]))
  with torch.no_grad(): expected = net(x).numpy()
  np.testing.assert_allclose(model(image=x.numpy())["logp"].numpy(), expected, rtol=1e-4, atol=1e-5)


class TinyTransformer:
  @staticmethod
  def make():
    torch = pytest.importorskip("torch")

    class Net(torch.nn.Module):
      def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(50, 32)
        self.pos = torch.nn.Parameter(torch.randn(1, 12, 32) * 0.1)
        layer = torch.nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, batch_first=True)
        self.encoder = torch.nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = torch.nn.Linear(32, 50)

      def forward(self, tokens):
        h = self.embed(tokens) + self.pos[:, :tokens.shape[1]]
        mask = torch.nn.Transformer.generate_square_subsequent_mask(tokens.shape[1])
        return self.head(self.encoder(h, mask=mask, is_causal=True))
    return Net()


def test_torch_export_transformer():
  torch = pytest.importorskip("torch")
  torch.manual_seed(0)
  net = TinyTransformer.make().eval()
  tokens = torch.randint(0, 50, (2, 12))
  model = load(_export(net, tokens, input_names=["tokens"], output_names=["logits"]))
  with torch.no_grad(): expected = net(tokens).numpy()
  np.testing.assert_allclose(model(tokens.numpy())["logits"].numpy(), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("length", [None, 5, 9])
def test_dft_inverse_onesided_is_numpys_irfft(length):
  """IRFFT (inverse=1, onesided=1): the half spectrum is cut or zero-padded to length // 2 + 1, then mirrored."""
  z = np.random.default_rng(2).standard_normal((3, 6, 2)).astype(np.float32)
  inits = [helper.make_tensor("axis", TensorProto.INT64, [], [1])]
  if length: inits.append(helper.make_tensor("length", TensorProto.INT64, [], [length]))
  node = helper.make_node("DFT", ["z", "length" if length else "", "axis"], ["y"], inverse=1, onesided=1)
  graph = helper.make_graph([node], "irfft", [helper.make_tensor_value_info("z", TensorProto.FLOAT, [3, 6, 2])],
                            [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
  model = load(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)]))
  expected = np.fft.irfft(z[..., 0] + 1j * z[..., 1], n=length, axis=1)[..., None]
  np.testing.assert_allclose(model(z)["y"].numpy(), expected, rtol=1e-5, atol=1e-6)


def test_stft_of_a_complex_signal_is_torchs():
  torch = pytest.importorskip("torch")
  z = np.random.default_rng(4).standard_normal((2, 40, 2)).astype(np.float32)
  window = np.hanning(8).astype(np.float32)
  node = helper.make_node("STFT", ["z", "step", "window"], ["y"], onesided=0)
  graph = helper.make_graph([node], "stft", [helper.make_tensor_value_info("z", TensorProto.FLOAT, z.shape)],
                            [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                            [helper.make_tensor("step", TensorProto.INT64, [], [3]),
                             helper.make_tensor("window", TensorProto.FLOAT, [8], window.tolist())])
  y = load(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))(z)["y"].numpy()
  expected = torch.stft(torch.from_numpy(z[..., 0] + 1j * z[..., 1]), 8, 3, window=torch.from_numpy(window), center=False,
                        onesided=False, return_complex=True).numpy().transpose(0, 2, 1)
  np.testing.assert_allclose(y[..., 0] + 1j * y[..., 1], expected, rtol=1e-5, atol=1e-5)


def test_non_max_suppression_matches_onnx_reference():
  """30 boxes per batch given by any two corners, scores with ties, a score threshold and a limit of 7 per class."""
  from onnx.reference import ReferenceEvaluator
  rng = np.random.default_rng(0)
  xy, wh = rng.random((2, 30, 2)) * 10, rng.random((2, 30, 2)) * 4 * rng.choice([-1, 1], (2, 30, 2))
  boxes, scores = np.concatenate([xy, xy + wh], -1).astype(np.float32), rng.random((2, 3, 30)).round(1).astype(np.float32)
  node = helper.make_node("NonMaxSuppression", ["boxes", "scores", "limit", "iou", "score"], ["selected"])
  graph = helper.make_graph([node], "nms", [helper.make_tensor_value_info("boxes", TensorProto.FLOAT, boxes.shape),
                                            helper.make_tensor_value_info("scores", TensorProto.FLOAT, scores.shape)],
                            [helper.make_tensor_value_info("selected", TensorProto.INT64, None)],
                            [helper.make_tensor("limit", TensorProto.INT64, [1], [7]),
                             helper.make_tensor("iou", TensorProto.FLOAT, [1], [0.2]),
                             helper.make_tensor("score", TensorProto.FLOAT, [1], [0.15])])
  proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
  expected = ReferenceEvaluator(proto).run(None, {"boxes": boxes, "scores": scores})[0]
  np.testing.assert_array_equal(load(proto)(boxes, scores)["selected"].numpy(), expected)


def test_tfidf_vectorizer_counts_skip_grams_and_weights_pool_entries():
  """1-, 2- and 3-grams with skips up to 1; TFIDF weights follow the pool's order (indexes permuted): onnxruntime's
  output for this case (onnx's reference reads the weights by output index instead)."""
  x = np.array([[1, 2, 1, 2, 3, 1, 3, 2], [3, 3, 1, 2, 2, 1, 1, 2]], np.int64)
  node = helper.make_node("TfIdfVectorizer", ["x"], ["y"], mode="TFIDF", min_gram_length=1, max_gram_length=3,
                          max_skip_count=1, ngram_counts=[0, 2, 6], ngram_indexes=[4, 0, 1, 2, 3],
                          pool_int64s=[1, 3, 1, 2, 3, 1, 1, 1, 2], weights=[0.5, 2, 3, 4, 5])
  graph = helper.make_graph([node], "tfidf", [helper.make_tensor_value_info("x", TensorProto.INT64, x.shape)],
                            [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
  model = load(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 9)]))
  np.testing.assert_array_equal(model(x)["y"].numpy(), [[4, 9, 4, 0, 1.5], [4, 12, 8, 5, 1.5]])


def test_deform_conv_matches_onnx_reference():
  """Strides, dilations, asymmetric pads, 2 groups, 2 offset groups, offsets reaching outside the input, mask, bias."""
  from onnx.reference import ReferenceEvaluator
  rng = np.random.default_rng(0)
  feeds = {"x": rng.standard_normal((2, 4, 7, 6)), "w": rng.standard_normal((6, 2, 3, 2)),
           "offset": rng.standard_normal((2, 2 * 6 * 2, 4, 5)) * 2, "b": rng.standard_normal(6),
           "mask": rng.random((2, 2 * 6, 4, 5))}
  feeds = {k: v.astype(np.float32) for k, v in feeds.items()}
  node = helper.make_node("DeformConv", list(feeds), ["y"], strides=[2, 1], dilations=[1, 2], pads=[1, 0, 2, 1], group=2,
                          offset_group=2)
  graph = helper.make_graph([node], "deform",
                            [helper.make_tensor_value_info(k, TensorProto.FLOAT, v.shape) for k, v in feeds.items()],
                            [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
  proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 22)])
  expected = ReferenceEvaluator(proto).run(None, feeds)[0]
  np.testing.assert_allclose(load(proto)(**feeds)["y"].numpy(), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", ["avg", "max"])
def test_roi_align_matches_onnx_reference(mode):
  """ROIs partly outside the image, on two images, an adaptive sampling grid (sampling_ratio 0) and a spatial scale."""
  from onnx.reference import ReferenceEvaluator
  rng = np.random.default_rng(0)
  xy = rng.random((5, 2)) * 20 - 3
  feeds = {"x": rng.standard_normal((2, 3, 9, 11)).astype(np.float32),
           "rois": np.concatenate([xy, xy + rng.random((5, 2)) * 14], 1).astype(np.float32),
           "batch": np.array([0, 1, 1, 0, 1], np.int64)}
  node = helper.make_node("RoiAlign", list(feeds), ["y"], mode=mode, output_height=3, output_width=4, spatial_scale=0.5)
  graph = helper.make_graph([node], "roi", [helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
                                            for k, v in feeds.items()], [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
  proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 22)])
  expected = ReferenceEvaluator(proto).run(None, feeds)[0]
  np.testing.assert_allclose(load(proto)(**feeds)["y"].numpy(), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("is_sorted", [0, 1])
def test_unique_along_an_axis_is_numpys(is_sorted):
  x = np.array([[1, 0, 1, 1, 2], [0, 3, 0, 0, 1], [1, 0, 1, 1, 2]], np.float32)  # columns 0, 2 and 3 are equal
  node = helper.make_node("Unique", ["x"], ["y", "indices", "inverse", "counts"], axis=-1, sorted=is_sorted)
  graph = helper.make_graph([node], "unique", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
                            [helper.make_tensor_value_info(o, TensorProto.FLOAT if o == "y" else TensorProto.INT64, None)
                             for o in ["y", "indices", "inverse", "counts"]])
  got = load(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)]))(x)
  y, first, inverse, counts = np.unique(x, axis=1, return_index=True, return_inverse=True, return_counts=True)
  if not is_sorted:  # in order of first occurrence
    order = np.argsort(first)
    y, first, inverse, counts = y[:, order], first[order], np.argsort(order)[inverse.reshape(-1)], counts[order]
  for name, want in zip(["y", "indices", "inverse", "counts"], [y, first, inverse.reshape(-1), counts]):
    np.testing.assert_array_equal(got[name].numpy(), want, err_msg=name)


def test_local_functions_are_inlined():
  """A model calling its own function (with an attribute) runs the function's body."""
  scale = helper.make_node("Constant", [], ["s"], value_float=0.0)
  scale.attribute[0].ref_attr_name = "alpha"
  body = [helper.make_node("Add", ["a", "b"], ["t"]), scale, helper.make_node("Mul", ["t", "s"], ["y"])]
  fn = helper.make_function("custom", "AddScale", ["a", "b"], ["y"], body, [helper.make_opsetid("", 17)], ["alpha"])
  graph = helper.make_graph([helper.make_node("AddScale", ["x", "x"], ["y"], domain="custom", alpha=3.0)], "calls",
                            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
                            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])])
  proto = helper.make_model(graph, functions=[fn], opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("custom", 1)])
  x = np.array([1, -2, 0.5], np.float32)
  np.testing.assert_allclose(load(proto)(x)["y"].numpy(), (x + x) * 3)


def test_col2im_is_torchs_fold():
  torch = pytest.importorskip("torch")
  image, block, stride, dilation, pad = [7, 9], [2, 3], [2, 1], [1, 2], [1, 2]
  grid = [(i + 2 * p - d * (k - 1) - 1) // s + 1 for i, k, s, d, p in zip(image, block, stride, dilation, pad)]
  cols = np.random.default_rng(3).standard_normal((2, 3 * 6, grid[0] * grid[1])).astype(np.float32)
  node = helper.make_node("Col2Im", ["cols", "image", "block"], ["y"], strides=stride, dilations=dilation, pads=pad + pad)
  graph = helper.make_graph([node], "col2im", [helper.make_tensor_value_info("cols", TensorProto.FLOAT, cols.shape)],
                            [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                            [helper.make_tensor("image", TensorProto.INT64, [2], image),
                             helper.make_tensor("block", TensorProto.INT64, [2], block)])
  model = load(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]))
  expected = torch.nn.functional.fold(torch.from_numpy(cols), image, block, dilation, pad, stride).numpy()
  np.testing.assert_allclose(model(cols)["y"].numpy(), expected, rtol=1e-6, atol=1e-6)


def _tiny_model(op_type="Relu", opset=17, **attrs):
  node = helper.make_node(op_type, ["x"], ["y"], **attrs)
  graph = helper.make_graph([node], "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])])
  return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def test_unsupported_op_fails_at_load():
  with pytest.raises(NotImplementedError, match=r"lazygrad.onnx does not support the ONNX op StringNormalizer \(opset 17\)"):
    load(_tiny_model("StringNormalizer"))


def test_input_errors_name_what_was_passed():
  model = load(_tiny_model())
  with pytest.raises(TypeError, match=r"missing input 'x'; the model's inputs are x"): model()
  with pytest.raises(TypeError, match=r"the model has no input 'z'; its inputs are x"): model(z=np.zeros((2, 3), np.float32))
  with pytest.raises(TypeError, match=r"input 'x': NumPy dtype uint32 is not supported"): model(np.zeros((2, 3), np.uint32))


def test_model_is_lazy_and_fuses():
  """Relu then Sigmoid then Add of a constant: one kernel, as the same lazygrad code."""
  nodes = [helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Sigmoid", ["a"], ["b"]),
           helper.make_node("Add", ["b", "c"], ["y"])]
  graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 4])],
                            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 4])],
                            [helper.make_tensor("c", TensorProto.FLOAT, [4], [1, 2, 3, 4])])
  model = load(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
  x = lg.tensor(np.random.default_rng(0).standard_normal((4, 4)).astype(np.float32)).realize()
  y = model(x)["y"]
  before = lg.kernel_count()
  got = y.numpy()
  assert lg.kernel_count() - before == 1
  np.testing.assert_allclose(got, 1 / (1 + np.exp(-np.maximum(x.numpy(), 0))) + np.array([1, 2, 3, 4]), rtol=1e-6)


def test_jit_replays_a_model():
  model = load(_tiny_model("Softmax", axis=1))
  step = lg.jit(model.forward)
  rng = np.random.default_rng(1)
  for _ in range(4):
    x = rng.standard_normal((2, 3)).astype(np.float32)
    out = step(lg.tensor(x)).numpy()
    e = np.exp(x - x.max(1, keepdims=True))
    np.testing.assert_allclose(out, e / e.sum(1, keepdims=True), rtol=1e-5)


def test_cli_prints_inputs_and_outputs(tmp_path):
  path = tmp_path / "tiny.onnx"
  onnx.save(_tiny_model(), str(path))
  out = subprocess.run([sys.executable, "-m", "lazygrad.onnx", str(path)], capture_output=True, text=True, check=True).stdout
  assert "input  x: float32 [2, 3]" in out and "output y: float32 [2, 3]" in out
