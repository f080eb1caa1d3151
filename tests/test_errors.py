"""Check that lazygrad rejects bad input eagerly, with clear exceptions and messages."""

import pytest

import lazygrad as lg

# Each `pytest.raises` block holds only the offending call: a lazy library must raise there,
# not later when the result is realized with .numpy().


def test_add_broadcast_mismatch_names_both_shapes():
    a, b = lg.ones(3, 4), lg.ones(5, 6)
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(5, 6\)"):
        a + b


def test_mul_broadcast_mismatch_with_rank_difference():
    a, b = lg.ones(2, 3, 4), lg.ones(3)
    with pytest.raises(ValueError, match=r"\(2, 3, 4\).*\(3,\)"):
        a * b


def test_matmul_shape_mismatch_names_both_shapes():
    a, b = lg.ones(3, 4), lg.ones(5, 6)
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(5, 6\)"):
        a @ b


def test_batched_matmul_inner_dim_mismatch():
    a, b = lg.ones(2, 3, 4), lg.ones(2, 5, 6)
    with pytest.raises(ValueError, match=r"\(2, 3, 4\).*\(2, 5, 6\)"):
        a @ b


# The message names the offending dim and the valid range, which starts at -2 for a 2-D tensor.
@pytest.mark.parametrize("dim, message", [
    (5, r"(?s)(?=.*\b5\b)(?=.*-2\b)"),
    (-3, r"(?s)(?=.*-3\b)(?=.*-2\b)"),
    ((0, 5), r"(?s)(?=.*\b5\b)(?=.*-2\b)"),
], ids=["5", "-3", "(0, 5)"])
def test_reduction_dim_out_of_range(dim, message):
    x = lg.ones(3, 4)
    with pytest.raises(IndexError, match=message):
        x.sum(dim)


@pytest.mark.parametrize("op", ["reshape", "view"])
def test_reshape_to_incompatible_size_names_the_shape(op):
    x = lg.ones(3, 4)
    with pytest.raises((ValueError, RuntimeError), match=r"[(\[]5, 2[)\]]"):
        getattr(x, op)(5, 2)


@pytest.mark.parametrize("index, message", [(10, r"\b10\b"), (-4, r"-4\b"), ((0, 5), r"\b5\b")],
                         ids=["10", "-4", "(0, 5)"])
def test_index_out_of_range(index, message):
    x = lg.ones(3, 5)
    with pytest.raises(IndexError, match=message):
        x[index]


def test_unknown_device_is_named():
    with pytest.raises(ValueError, match="FOO"):
        lg.Tensor([1.0], device="FOO")


def test_item_on_multi_element_tensor():
    x = lg.Tensor([1.0, 2.0, 3.0])
    with pytest.raises((ValueError, RuntimeError), match=r"(?i)element|scalar"):
        x.item()


def test_backward_on_non_scalar_without_gradient():
    x = lg.Tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x * 2
    with pytest.raises(RuntimeError, match="scalar"):
        y.backward()
