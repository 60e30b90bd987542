"""cnnfast.torch: the PyTorch front end against PyTorch's own conv2d and pooling.

Custom-op registration (opcheck), float64 gradcheck on small random geometries,
outputs and gradients equal to torch.nn.functional's (float32 / float64, contiguous
and channels_last), the nn modules and convert(), torch.compile, and a converted
MNIST CNN that learns.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

import cnnfast.torch as ct  # noqa: E402
from cnnfast.torch import nn as cnn  # noqa: E402

OPS = torch.ops.cnnfast
TOL = {torch.float32: dict(rtol=1e-4, atol=1e-4), torch.float64: dict(rtol=1e-10, atol=1e-10)}
# (x shape, weight shape, stride, padding, dilation): strides, asymmetric kernels,
# 'same' with even kernels, dilations
CONV_CASES = [
    ((2, 3, 9, 8), (4, 3, 3, 3), 1, 1, 1),
    ((2, 3, 9, 8), (4, 3, 3, 2), (2, 1), (1, 0), (1, 2)),
    ((1, 2, 7, 7), (3, 2, 4, 4), 1, "same", 1),
    ((2, 2, 8, 9), (3, 2, 2, 3), 1, "same", (3, 2)),
    ((2, 4, 10, 10), (2, 4, 3, 3), 3, 2, 1),
    ((1, 1, 6, 6), (5, 1, 5, 5), 1, "valid", 1),
]
# (x shape, kernel_size, stride, padding)
POOL_CASES = [
    ((2, 3, 8, 8), 2, None, 0),
    ((2, 3, 9, 7), 3, 2, 1),
    ((1, 2, 7, 9), (3, 2), (1, 2), (1, 1)),
    ((2, 1, 5, 5), 2, 1, 1),
]


def _layout(t, channels_last: bool):
    return t.contiguous(memory_format=torch.channels_last) if channels_last else t


def _grads(y, inputs, g):
    return torch.autograd.grad(y, [t for t in inputs if t is not None], g)


# ---------------------------------------------------------------------------
# optional dependency
# ---------------------------------------------------------------------------


# child interpreters start in the tests' directory: the repository root's cnnfast/ has
# no compiled extension
_HERE = os.path.dirname(os.path.abspath(__file__))


def test_import_cnnfast_does_not_import_torch():
    code = "import sys, cnnfast; cnnfast.conv2d; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=_HERE)


def test_without_torch_the_import_error_names_the_extra():
    code = ("import sys; sys.modules['torch'] = None\n"
            "try:\n    import cnnfast.torch\nexcept ImportError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True, cwd=_HERE).stdout
    assert 'pip install "cnnfast[torch]"' in out


# ---------------------------------------------------------------------------
# custom-op registration
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("channels_last", [False, True])
def test_opcheck_conv(channels_last):
    torch.manual_seed(0)
    x = _layout(torch.randn(2, 3, 7, 6, dtype=torch.float64), channels_last).requires_grad_()
    w = torch.randn(4, 3, 3, 2, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, requires_grad=True)
    torch.library.opcheck(OPS.conv2d.default, (x, w, b, [1, 2], [1, 0, 1, 1], [1, 1]))
    torch.library.opcheck(OPS.conv2d.default, (x, w, None, [2, 1], [0, 1, 0, 0], [2, 1]))
    dy = torch.randn(2, 4, 7, 6, dtype=torch.float64)
    for need in ([True, True], [False, True], [True, False]):
        torch.library.opcheck(OPS.conv2d_backward.default,
                              (dy, x.detach(), w.detach(), [1, 1], [1, 1, 0, 1], [1, 1], *need))


@pytest.mark.parametrize("mode,divisor", [("max", 0), ("min", 0), ("avg", 0), ("avg", 9)])
def test_opcheck_pool(mode, divisor):
    torch.manual_seed(0)
    for channels_last in (False, True):
        x = _layout(torch.randn(2, 3, 7, 8), channels_last).requires_grad_()
        args = ([3, 3], [2, 2], [1, 1], mode, divisor)
        torch.library.opcheck(OPS.pool2d.default, (x, *args))
        y, idx = OPS.pool2d(x.detach(), *args)
        torch.library.opcheck(OPS.pool2d_backward.default,
                              (torch.randn_like(y), x.detach(), idx, *args))


# ---------------------------------------------------------------------------
# gradients (float64 finite differences)
# ---------------------------------------------------------------------------


def test_gradcheck_conv_random_geometries():
    rng = np.random.default_rng(1)
    for _ in range(6):
        kh, kw = (int(v) for v in rng.integers(1, 4, 2))
        dh, dw = (int(v) for v in rng.integers(1, 3, 2))
        same = rng.random() < 0.3
        s = (1, 1) if same else tuple(int(v) for v in rng.integers(1, 3, 2))
        pad = "same" if same else tuple(int(v) for v in rng.integers(0, 3, 2))
        h, w = (int(v) for v in rng.integers(kh * dh + 1, kh * dh + 5, 1).repeat(2))
        c, f = (int(v) for v in rng.integers(1, 4, 2))
        x = torch.randn(2, c, h, w + 1, dtype=torch.float64, requires_grad=True)
        k = torch.randn(f, c, kh, kw, dtype=torch.float64, requires_grad=True)
        b = torch.randn(f, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(
            lambda x, k, b, s=s, pad=pad, d=(dh, dw): ct.conv2d(x, k, b, s, pad, d), (x, k, b))


@pytest.mark.parametrize("fn", [ct.max_pool2d, ct.min_pool2d, ct.avg_pool2d])
def test_gradcheck_pool(fn):
    torch.manual_seed(2)
    for shape, k, s, p in POOL_CASES:
        # distinct values: max/min are differentiable away from ties
        x = (torch.randperm(int(np.prod(shape)), dtype=torch.float64).reshape(shape) / 7
             ).requires_grad_()
        assert torch.autograd.gradcheck(lambda x, k=k, s=s, p=p: fn(x, k, s, p), (x,))
    x = torch.randn(1, 2, 6, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda x: ct.avg_pool2d(x, 3, 2, 1, count_include_pad=False), (x,))
    assert torch.autograd.gradcheck(lambda x: ct.avg_pool2d(x, 3, 1, 1, divisor_override=5), (x,))


# ---------------------------------------------------------------------------
# against PyTorch
# ---------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:Using padding='same'")  # PyTorch's, on even kernels
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_matches_torch(case, channels_last, dtype):
    xs, ws, s, p, d = case
    torch.manual_seed(3)
    x = _layout(torch.randn(xs, dtype=dtype), channels_last).requires_grad_()
    w = torch.randn(ws, dtype=dtype, requires_grad=True)
    b = torch.randn(ws[0], dtype=dtype, requires_grad=True)
    y = ct.conv2d(x, w, b, s, p, d)
    ref = F.conv2d(x, w, b, s, p, d)
    torch.testing.assert_close(y, ref, **TOL[dtype])
    # the layout follows the input's memory: NHWC in (channels_last, or any single
    # channel tensor), channels_last out
    nhwc = x.is_contiguous(memory_format=torch.channels_last)
    assert y.is_contiguous(memory_format=torch.channels_last if nhwc
                           else torch.contiguous_format)
    g = torch.randn_like(ref)
    for got, want in zip(_grads(y, (x, w, b), g), _grads(ref, (x, w, b), g)):
        torch.testing.assert_close(got, want, **TOL[dtype])


def test_conv2d_input_grad_only_or_weight_grad_only():
    torch.manual_seed(4)
    x = torch.randn(2, 3, 6, 6)
    w = torch.randn(4, 3, 3, 3, requires_grad=True)
    (dw,) = torch.autograd.grad(ct.conv2d(x, w, padding=1).sum(), w)
    torch.testing.assert_close(dw, torch.autograd.grad(F.conv2d(x, w, padding=1).sum(), w)[0])
    x.requires_grad_()
    w.requires_grad_(False)
    y = ct.conv2d(x, w, padding=1)
    (dx,) = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close(dx, torch.autograd.grad(F.conv2d(x, w, padding=1).sum(), x)[0])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("case", POOL_CASES)
def test_pooling_matches_torch(case, channels_last, dtype):
    shape, k, s, p = case
    torch.manual_seed(5)
    x = _layout(torch.randn(shape, dtype=dtype), channels_last).requires_grad_()
    pairs = [
        (ct.max_pool2d(x, k, s, p), F.max_pool2d(x, k, s, p)),
        (ct.min_pool2d(x, k, s, p), -F.max_pool2d(-x, k, s, p)),
        (ct.avg_pool2d(x, k, s, p), F.avg_pool2d(x, k, s, p)),
        (ct.avg_pool2d(x, k, s, p, count_include_pad=False),
         F.avg_pool2d(x, k, s, p, count_include_pad=False)),
        (ct.avg_pool2d(x, k, s, p, divisor_override=3), F.avg_pool2d(x, k, s, p,
                                                                     divisor_override=3)),
    ]
    for y, ref in pairs:
        torch.testing.assert_close(y, ref, **TOL[dtype])
        g = torch.randn_like(ref)
        torch.testing.assert_close(_grads(y, (x,), g)[0], _grads(ref, (x,), g)[0], **TOL[dtype])
    y, idx = ct.max_pool2d(x, k, s, p, return_indices=True)
    _, ref_idx = F.max_pool2d(x, k, s, p, return_indices=True)
    assert idx.dtype == torch.int64 and torch.equal(idx, ref_idx)


def test_max_pool_ties_and_nan():
    # ties: the first cell of the window in row-major order, as in PyTorch
    x = torch.tensor([[[[1.0, 1.0], [1.0, 0.0]]]], requires_grad=True)
    y, idx = ct.max_pool2d(x, 2, return_indices=True)
    assert idx.item() == F.max_pool2d(x, 2, return_indices=True)[1].item() == 0
    # NaN: NaN in both; the index is the first NaN here, the last in PyTorch (documented)
    x = torch.tensor([[[[float("nan"), 1.0], [float("nan"), 0.0]]]])
    y, idx = ct.max_pool2d(x, 2, return_indices=True)
    assert torch.isnan(y).all() and idx.item() == 0
    assert F.max_pool2d(x, 2, return_indices=True)[1].item() == 2


def test_unbatched_input():
    torch.manual_seed(6)
    x, w = torch.randn(3, 8, 8), torch.randn(4, 3, 3, 3)
    torch.testing.assert_close(ct.conv2d(x, w, padding="same"), F.conv2d(x, w, padding="same"))
    torch.testing.assert_close(ct.max_pool2d(x, 2), F.max_pool2d(x, 2))
    torch.testing.assert_close(ct.avg_pool2d(x, 3, 1, 1), F.avg_pool2d(x, 3, 1, 1))


def test_errors_name_the_argument():
    x, w = torch.randn(1, 4, 8, 8), torch.randn(4, 2, 3, 3)
    with pytest.raises(ValueError, match="groups=2"):
        ct.conv2d(x, w, groups=2)
    with pytest.raises(ValueError, match="strided"):
        ct.conv2d(x, torch.randn(2, 4, 3, 3), stride=2, padding="same")
    with pytest.raises(TypeError, match="same dtype"):
        ct.conv2d(x, torch.randn(2, 4, 3, 3, dtype=torch.float64))
    with pytest.raises(TypeError, match="float32 or float64"):
        ct.max_pool2d(x.half(), 2)
    with pytest.raises(ValueError, match="at most half"):
        ct.max_pool2d(x, 2, padding=2)
    with pytest.raises(ValueError, match="ceil_mode"):
        ct.avg_pool2d(x, 2, ceil_mode=True)
    with pytest.raises(ValueError, match="dilation"):
        ct.max_pool2d(x, 2, dilation=2)


def test_torch_compile_fullgraph():
    torch.manual_seed(7)
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    w = torch.randn(4, 3, 3, 3, requires_grad=True)
    b = torch.randn(4, requires_grad=True)

    def fn(x, w, b):
        h = torch.relu(ct.conv2d(x, w, b, padding="same"))
        return ct.avg_pool2d(ct.max_pool2d(h, 2), 2, 1, 1).sum()

    compiled = torch.compile(fn, fullgraph=True, backend="aot_eager")
    got = compiled(x, w, b)
    want = fn(x, w, b)
    torch.testing.assert_close(got, want)
    for a, r in zip(torch.autograd.grad(got, (x, w, b)), torch.autograd.grad(want, (x, w, b))):
        torch.testing.assert_close(a, r)


# ---------------------------------------------------------------------------
# modules and convert()
# ---------------------------------------------------------------------------


def test_conv2d_module_state_dict_round_trip():
    torch.manual_seed(8)
    ref = torch.nn.Conv2d(3, 5, (3, 2), stride=(2, 1), padding=1, dilation=(1, 2))
    mine = cnn.Conv2d(3, 5, (3, 2), stride=(2, 1), padding=1, dilation=(1, 2))
    assert set(mine.state_dict()) == {"weight", "bias"}
    mine.load_state_dict(ref.state_dict())
    x = torch.randn(2, 3, 9, 9)
    torch.testing.assert_close(mine(x), ref(x))
    back = torch.nn.Conv2d(3, 5, (3, 2))
    back.load_state_dict(mine.state_dict())
    assert torch.equal(back.weight, ref.weight) and torch.equal(back.bias, ref.bias)


def test_modules_default_init_and_refusals():
    torch.manual_seed(9)
    a = torch.nn.Conv2d(2, 3, 3, bias=False)
    torch.manual_seed(9)
    b = cnn.Conv2d(2, 3, 3, bias=False)
    assert torch.equal(a.weight, b.weight) and b.bias is None
    x = torch.randn(1, 2, 6, 6)
    torch.testing.assert_close(cnn.MaxPool2d(3, 2, 1)(x), torch.nn.MaxPool2d(3, 2, 1)(x))
    torch.testing.assert_close(cnn.AvgPool2d(3, 1, 1, count_include_pad=False)(x),
                               torch.nn.AvgPool2d(3, 1, 1, count_include_pad=False)(x))
    torch.testing.assert_close(cnn.MinPool2d(2)(x), -torch.nn.MaxPool2d(2)(-x))
    with pytest.raises(ValueError, match="groups"):
        cnn.Conv2d(2, 4, 3, groups=2)
    with pytest.raises(ValueError, match="padding_mode"):
        cnn.Conv2d(2, 4, 3, padding_mode="reflect")
    with pytest.raises(ValueError, match="ceil_mode"):
        cnn.MaxPool2d(2, ceil_mode=True)


def test_convert_swaps_in_place_and_warns_for_the_rest():
    torch.manual_seed(10)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(2, 4, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(4, 4, 3, padding=1, groups=2),
        torch.nn.Sequential(torch.nn.MaxPool2d(2), torch.nn.MaxPool2d(2, ceil_mode=True)),
        torch.nn.AvgPool2d(1),
    )
    x = torch.randn(2, 2, 8, 8)
    want = model(x)
    weight = model[0].weight
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert ct.convert(model) is model
    messages = [str(w.message) for w in caught]
    assert len(messages) == 2
    assert any("2 (Conv2d)" in m and "groups=2" in m for m in messages)
    assert any("3.1 (MaxPool2d)" in m and "ceil_mode" in m for m in messages)
    assert type(model[0]) is cnn.Conv2d and model[0].weight is weight
    assert type(model[2]) is torch.nn.Conv2d
    assert type(model[3][0]) is cnn.MaxPool2d and type(model[3][1]) is torch.nn.MaxPool2d
    assert type(model[4]) is cnn.AvgPool2d
    torch.testing.assert_close(model(x), want)
    assert set(model.state_dict()) == {"0.weight", "0.bias", "2.weight", "2.bias"}


@pytest.mark.parametrize("channels_last", [False, True])
def test_fused_conv_relu_max_pool_matches_torch(channels_last):
    torch.manual_seed(12)
    x = _layout(torch.randn(2, 3, 9, 8, dtype=torch.float64), channels_last).requires_grad_()
    w = torch.randn(4, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, requires_grad=True)
    for pad, pool, stride in ((1, 2, None), ("same", 3, 2), (0, 2, 1)):
        y = ct.functional.conv2d_relu_max_pool2d(x, w, b, 1, pad, 1, pool, stride)
        ref = F.max_pool2d(F.relu(F.conv2d(x, w, b, 1, pad)), pool, stride)
        torch.testing.assert_close(y, ref, **TOL[torch.float64])
        g = torch.randn_like(ref)
        for got, want in zip(_grads(y, (x, w, b), g), _grads(ref, (x, w, b), g)):
            torch.testing.assert_close(got, want, **TOL[torch.float64])
    xs = torch.randn(1, 2, 6, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda x, w, b: ct.functional.conv2d_relu_max_pool2d(x, w, b, 1, 1, 1, 2),
        (xs, w[:, :2].detach().clone().requires_grad_(), b))
    torch.library.opcheck(OPS.conv2d_relu_max_pool2d.default,
                          (x, w, b, [1, 1], [1, 1, 1, 1], [1, 1], [2, 2], [2, 2]))


def _fusable_model():
    nn = torch.nn
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(4, 4, 3), nn.ReLU(), nn.MaxPool2d(2, padding=1),
                         nn.Conv2d(4, 4, 1), nn.ReLU(), nn.MaxPool2d(1), nn.Flatten())


def test_convert_fuses_by_default_keeping_values_gradients_and_state_dict():
    nn = torch.nn
    torch.manual_seed(13)
    model = _fusable_model()
    reference = copy.deepcopy(model)
    x = torch.randn(2, 1, 12, 12)
    keys = list(model.state_dict())
    model[6].register_forward_hook(lambda m, i, o: None)  # a hooked conv stays whole
    assert ct.convert(model) is model
    assert type(model[0]) is cnn.Conv2dReLUMaxPool2d
    assert type(model[1]) is type(model[2]) is nn.Identity
    assert type(model[3]) is cnn.Conv2d  # the padded pooling is not fused
    assert type(model[6]) is cnn.Conv2d and type(model[7]) is nn.ReLU
    assert list(model.state_dict()) == keys
    want, got = reference(x), model(x)
    torch.testing.assert_close(got, want)
    g = torch.randn_like(want)
    want.backward(g)
    got.backward(g)
    for (name, p), q in zip(model.named_parameters(), reference.parameters()):
        torch.testing.assert_close(p.grad, q.grad, msg=name)


def test_convert_without_fusion_swaps_layer_for_layer():
    torch.manual_seed(13)
    model = _fusable_model()
    ct.convert(model, fuse=False)
    assert [type(m).__name__ for m in model][:3] == ["Conv2d", "ReLU", "MaxPool2d"]
    assert type(model[0]) is cnn.Conv2d and type(model[2]) is cnn.MaxPool2d


def test_converted_mnist_cnn_learns():
    nn = torch.nn
    torch.manual_seed(11)
    model = nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Dropout(0.25), nn.Linear(3136, 128), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(128, 10),
    )
    ct.convert(model)
    # each Conv2d - ReLU - MaxPool2d run fused into one module
    assert sum(type(m).__module__ == "cnnfast.torch.nn" for m in model) == 2
    # separable synthetic task: class c lights up a 7x7 block of its own
    n = 32
    labels = torch.arange(n) % 10
    x = 0.1 * torch.rand(n, 1, 28, 28)
    for i, c in enumerate(labels.tolist()):
        r, col = divmod(c, 4)
        x[i, 0, 7 * r:7 * r + 7, 7 * col:7 * col + 7] += 1.0
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    model.train()
    for _ in range(30):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), labels)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[0] > 2.0 and np.mean(losses[-5:]) < 0.5 * losses[0], losses
    model.eval()
    with torch.no_grad():
        assert (model(x).argmax(1) == labels).float().mean() >= 0.9
