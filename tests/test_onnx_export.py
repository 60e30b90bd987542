"""ONNX export (issue 18, point 4): the exported graph computes what ``predict`` computes.

Every model is exported once and run with batch sizes 1 and 3 through the same file
(symbolic batch) by ``onnx.reference.ReferenceEvaluator`` and, where installed, by
ONNX Runtime's CPU provider; both must match ``model.predict`` within 1e-5. The models
are small (the machine is shared) but cover every mapped layer, both data formats,
"same" padding with odd sizes and stride 2 (the asymmetric-pad case), dilation,
explicit pads, padded average / max / min pooling, and each activation.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="onnx is not installed (pip install cnnfast[onnx])")
from onnx.reference import ReferenceEvaluator  # noqa: E402

from cnnfast import utils  # noqa: E402
from cnnfast.layers import (  # noqa: E402
    Activation,
    AveragePooling2D,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    Input,
    Layer,
    MaxPooling2D,
    MinPooling2D,
)
from cnnfast.models import Sequential  # noqa: E402
from cnnfast.onnx import export, to_onnx  # noqa: E402
from cnnfast.tutorial import build_tutorial_model  # noqa: E402

try:
    import onnxruntime as ort
except ImportError:  # the runtime half of the checks skips, the graph half still runs
    ort = None

TOL = 1e-5
README = Path(__file__).resolve().parents[1] / "README.md"
# largest |onnx - predict| seen per runtime, reported by test_report_max_differences
MAX_DIFF: dict[str, float] = {"reference": 0.0, "onnxruntime": 0.0}

CF = "channels_first"


def _randomize(model: Sequential, seed: int) -> Sequential:
    """Non-zero biases too (they start at zero), so a dropped or misplaced bias shows."""
    rng = np.random.default_rng(seed)
    model.set_weights([rng.standard_normal(w.shape) * 0.3 for w in model.get_weights()])
    return model


def _models() -> dict[str, callable]:
    """Name -> a function building the model (fresh layers for every test)."""
    return {
        # odd sizes, "same", stride 2: pads (0, 1) / (1, 1), the extra pixel bottom/right
        "last_same_stride2": lambda: Sequential([
            Conv2D(4, 3, strides=2, padding="same", activation="relu", input_shape=(7, 9, 2)),
            MaxPooling2D(2, padding="same"),
            Flatten(),
            Dense(5, activation="softmax"),
        ]),
        "last_even_same_stride2": lambda: Sequential([
            Conv2D(3, (3, 4), strides=2, padding="same", input_shape=(8, 6, 1)),
            MaxPooling2D(3, strides=2, padding="same"),
            Flatten(),
            Dense(3),
        ]),
        "last_dilation_avgpool": lambda: Sequential([
            Conv2D(3, 3, dilation_rate=2, padding="same", activation="tanh",
                   input_shape=(9, 8, 2)),
            AveragePooling2D(3, strides=2, padding="same"),
            Flatten(),
            Dense(4, activation="sigmoid"),
        ]),
        "last_minpool_activation_dropout": lambda: Sequential([
            Input((8, 7, 1)),
            Conv2D(3, (2, 3), padding="valid", use_bias=False),
            MinPooling2D(3, strides=2, padding="same"),
            Activation("relu"),
            Flatten(),
            Dropout(0.5),
            Dense(3, use_bias=False),
        ]),
        "last_explicit_pads": lambda: Sequential([
            Conv2D(2, 3, strides=(2, 1), dilation_rate=(1, 2), padding=((1, 2), (0, 1)),
                   input_shape=(7, 7, 2)),
            AveragePooling2D(3, strides=2, padding=((1, 2), (0, 1))),
            MaxPooling2D(2, strides=1, padding=((0, 1), (1, 0))),
            Flatten(),
            Dense(3),
        ]),
        "first_every_layer": lambda: Sequential([
            Conv2D(4, 3, strides=2, padding="same", activation="relu", data_format=CF,
                   input_shape=(2, 7, 9)),
            MaxPooling2D(2, padding="same", data_format=CF),
            AveragePooling2D(2, strides=1, padding="same", data_format=CF),
            MinPooling2D(2, strides=1, padding="same", data_format=CF),
            Conv2D(3, 2, dilation_rate=2, padding="same", data_format=CF),
            Flatten(data_format=CF),
            Dense(4),
            Activation("softmax"),
        ]),
        # a channels_first Flatten after channels_last layers: cnnfast moves axis 1 (H)
        "mixed_formats": lambda: Sequential([
            Conv2D(3, 3, padding="same", input_shape=(5, 6, 2)),
            Conv2D(2, 2, data_format=CF),
            Flatten(data_format=CF),
            Dense(3),
        ]),
        # softmax of a convolution runs over cnnfast's last axis (channels / width)
        "conv_softmax_last": lambda: Sequential([
            Conv2D(4, 3, activation="softmax", input_shape=(5, 5, 2)),
            Flatten(),
        ]),
        "conv_softmax_first": lambda: Sequential([
            Conv2D(4, 3, activation="softmax", data_format=CF, input_shape=(2, 5, 5)),
            Flatten(data_format=CF),
        ]),
        # Dense straight on a 4-D tensor: MatMul over cnnfast's last axis
        "dense_on_feature_map": lambda: Sequential([
            Conv2D(3, 3, strides=2, padding="same", activation="sigmoid",
                   input_shape=(5, 6, 2)),
            Dense(4, activation="softmax"),
            Dense(2),
            Flatten(),
        ]),
        "pooling_only": lambda: Sequential([
            Input((5, 7, 3)),
            MaxPooling2D(2, padding="same"),
            MinPooling2D(2, strides=1, padding="same"),
            AveragePooling2D(3, strides=2, padding="same"),
        ]),
        "dense_only_each_activation": lambda: Sequential([
            Dense(6, activation="relu", input_shape=(5,)),
            Activation("tanh"),
            Activation("sigmoid"),
            Activation("linear"),
            Dense(4, activation="linear"),
            Activation("relu"),
            Dense(3, activation="tanh"),
            Activation("softmax"),
        ]),
    }


def _inputs(model: Sequential, n: int, seed: int) -> np.ndarray:
    shape = (n,) + model.input_shape[1:]
    return np.random.default_rng(seed).standard_normal(shape).astype(model.dtype)


def _check_runs(model: Sequential, path: Path, batches=(1, 3)) -> None:
    """ReferenceEvaluator and onnxruntime reproduce predict for each batch size."""
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    ref = ReferenceEvaluator(str(path))
    sess = (ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            if ort is not None and model.dtype == np.float32 else None)
    for i, n in enumerate(batches):
        x = _inputs(model, n, seed=100 + i)
        want = model.predict(x)
        got = ref.run(None, {"input": x})[0]
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=TOL, atol=TOL)
        MAX_DIFF["reference"] = max(MAX_DIFF["reference"], float(np.abs(got - want).max()))
        if sess is not None:
            got = sess.run(None, {"input": x})[0]
            assert got.dtype == want.dtype and got.shape == want.shape
            np.testing.assert_allclose(got, want, rtol=TOL, atol=TOL)
            MAX_DIFF["onnxruntime"] = max(MAX_DIFF["onnxruntime"],
                                          float(np.abs(got - want).max()))


def _op_types(path: Path) -> list[str]:
    return [node.op_type for node in onnx.load(str(path)).graph.node]


def test_tutorial_model(tmp_path):
    utils.set_random_seed(0)
    model = _randomize(build_tutorial_model(), 0)
    path = tmp_path / "mnist.onnx"
    assert export(model, path) == path
    _check_runs(model, path)
    # one transpose in (NHWC -> NCHW), one back before Flatten; Dropout left out
    assert _op_types(path) == ["Transpose", "Conv", "Relu", "MaxPool", "Conv", "Relu",
                               "MaxPool", "Transpose", "Flatten", "Gemm", "Relu", "Gemm",
                               "Softmax", "Identity"]


@pytest.mark.parametrize("name", sorted(_models()))
def test_small_models(tmp_path, name):
    utils.set_random_seed(1)
    model = _randomize(_models()[name](), 1)
    path = export(model, tmp_path / f"{name}.onnx")
    _check_runs(model, path)


def test_channels_first_model_transposes_only_for_flatten(tmp_path):
    model = _randomize(_models()["first_every_layer"](), 2)
    path = export(model, tmp_path / "cf.onnx")
    ops = _op_types(path)
    # no layout change for the NCHW operators; Keras's flatten order needs one
    assert ops.count("Transpose") == 1 and ops[ops.index("Transpose") + 1] == "Flatten"
    assert ops.count("Neg") == 2  # min pooling as Neg -> MaxPool -> Neg
    # unit-stride max/min pooling with uneven pads: an explicit -inf Pad (see onnx.py)
    assert ops.count("Pad") == 1


def test_same_pads_are_explicit_and_bottom_right(tmp_path):
    model = _models()["last_same_stride2"]()
    graph = to_onnx(model).graph
    conv = next(n for n in graph.node if n.op_type == "Conv")
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in conv.attribute}
    # 7 rows, k 3, s 2: total pad 2 -> (1, 1); 9 columns: total 2 -> (1, 1)
    assert attrs["pads"] == [1, 1, 1, 1] and "auto_pad" not in attrs
    pool = next(n for n in graph.node if n.op_type == "MaxPool")
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in pool.attribute}
    # 4x5 input, pool 2 stride 2: rows need no pad, columns one on the right
    assert attrs["pads"] == [0, 0, 0, 1]
    conv = next(n for n in to_onnx(_models()["last_even_same_stride2"]()).graph.node
                if n.op_type == "Conv")
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in conv.attribute}
    # 8 rows, k 3, s 2: total 1 -> (0, 1), the odd pixel at the bottom; 6 columns, k 4:
    # total 2 -> (1, 1). ONNX order: [top, left, bottom, right]
    assert attrs["pads"] == [0, 1, 1, 1]


def test_average_pool_excludes_pads(tmp_path):
    model = _models()["pooling_only"]()
    avg = next(n for n in to_onnx(model).graph.node if n.op_type == "AveragePool")
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in avg.attribute}
    assert attrs["count_include_pad"] == 0


def test_symbolic_and_fixed_batch(tmp_path):
    model = _models()["last_same_stride2"]()
    dim = to_onnx(model).graph.input[0].type.tensor_type.shape.dim[0]
    assert dim.dim_param and not dim.HasField("dim_value")
    fixed = to_onnx(model, batch_size=2).graph
    assert fixed.input[0].type.tensor_type.shape.dim[0].dim_value == 2
    assert fixed.output[0].type.tensor_type.shape.dim[0].dim_value == 2
    path = export(model, tmp_path / "b2.onnx", batch_size=2)
    _check_runs(model, path, batches=(2,))


@pytest.mark.parametrize("opset", [13, 17, 21])
def test_opsets(tmp_path, opset):
    model = _randomize(_models()["first_every_layer"](), 3)
    path = export(model, tmp_path / f"o{opset}.onnx", opset=opset)
    assert onnx.load(str(path)).opset_import[0].version == opset
    _check_runs(model, path, batches=(2,))


def test_float64_model(tmp_path):
    # ONNX Runtime's CPU provider has no double Conv: the reference evaluator checks it
    model = _randomize(_models()["last_dilation_avgpool"](), 4)
    model64 = Sequential([Input(model.input_shape[1:])], dtype="float64")
    for layer in _models()["last_dilation_avgpool"]().layers:
        model64.add(layer)
    model64.set_weights(model.get_weights())
    path = export(model64, tmp_path / "f64.onnx")
    assert onnx.load(str(path)).graph.input[0].type.tensor_type.elem_type == \
        onnx.TensorProto.DOUBLE
    _check_runs(model64, path)


class _Doubler(Layer):
    def forward(self, x, training=False):
        return 2 * x


class _MyDense(Dense):
    pass


def test_unsupported_layer_is_named(tmp_path):
    model = Sequential([Dense(3, input_shape=(4,)), _Doubler(name="doubler")])
    with pytest.raises(ValueError, match=r"'doubler' \(_Doubler\)"):
        export(model, tmp_path / "x.onnx")
    model = Sequential([_MyDense(3, input_shape=(4,), name="mine")])
    with pytest.raises(ValueError, match="'mine'.*subclasses"):
        to_onnx(model)
    assert not (tmp_path / "x.onnx").exists()


def test_custom_activation_is_refused():
    from cnnfast.activations import Activation as ActivationFn

    class Swish(ActivationFn):
        name = "relu"  # a borrowed name must not pass for ReLU

        def forward(self, x, out=None):
            return x / (1 + np.exp(-x))

    model = Sequential([Dense(3, activation=Swish(), input_shape=(4,), name="swishy")])
    with pytest.raises(ValueError, match="'swishy'.*activation"):
        to_onnx(model)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="not built"):
        to_onnx(Sequential([Dense(3)]))
    with pytest.raises(TypeError, match="Sequential"):
        to_onnx(object())
    model = _models()["pooling_only"]()
    for opset in (12, 10_000, "17", True):
        with pytest.raises(ValueError, match="opset"):
            to_onnx(model, opset=opset)
    for batch in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="batch_size"):
            to_onnx(model, batch_size=batch)


def test_failed_export_leaves_previous_file(tmp_path):
    path = tmp_path / "m.onnx"
    export(_models()["pooling_only"](), path)
    before = path.read_bytes()
    with pytest.raises(ValueError):
        export(Sequential([Dense(2, input_shape=(3,)), _Doubler()]), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]  # no temporary left


def _run_python(code: str) -> subprocess.CompletedProcess:
    # the cnnfast under test, whether installed or imported from the source tree
    import cnnfast

    env = dict(os.environ, PYTHONPATH=str(Path(cnnfast.__file__).resolve().parents[1]))
    # from the tests' directory: the repository root's cnnfast/ has no compiled extension
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=os.path.dirname(os.path.abspath(__file__)),
                          env=env, timeout=120)


def test_import_cnnfast_does_not_import_onnx():
    res = _run_python(
        "import sys, cnnfast, cnnfast.models, cnnfast.layers, cnnfast.tutorial\n"
        "assert 'onnx' not in sys.modules and 'onnxruntime' not in sys.modules, "
        "sorted(m for m in sys.modules if 'onnx' in m)\n")
    assert res.returncode == 0, res.stderr


def test_missing_onnx_names_the_extra():
    res = _run_python(
        "import sys\n"
        "sys.modules['onnx'] = None  # as if it were not installed\n"
        "try:\n"
        "    import cnnfast.onnx\n"
        "except ImportError as e:\n"
        "    print(e)\n")
    assert res.returncode == 0, res.stderr
    assert 'pip install "cnnfast[onnx]"' in res.stdout


def test_readme_example(tmp_path, monkeypatch):
    if not README.exists():
        pytest.skip("README.md is not next to the tests (installed without the source tree)")
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    block = next(b for b in blocks if "cnnfast.onnx" in b)
    if ort is None:
        pytest.skip("the README example runs the file with onnxruntime")
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "README ONNX example", "exec"), {})
    assert (tmp_path / "mnist_cnn.onnx").exists()


def test_report_max_differences():
    """Not a check: prints the largest differences the tests above met (pytest -s)."""
    print(f"\nmax |onnx - predict|: {MAX_DIFF}")
