"""RNN, LSTM and GRU layers against NumPy step loops (values at O0/O1/O2 on calls 1-3,
gradients against finite differences), masks, stacking, and the model-file kinds."""
import numpy as np
import pytest

import flowc as fc
from flowc import nn

rng = np.random.default_rng(5)


def sig(z):
    return 1 / (1 + np.exp(-z))


def ref(kind, x, W, U, b, mask=None, seqs=False):
    u = U.shape[0]
    h = np.zeros((x.shape[0], u))
    c = np.zeros_like(h)
    outs = []
    for t in range(x.shape[1]):
        p = x[:, t] @ W + b
        if kind == "rnn":
            hn, cn = np.tanh(p + h @ U), c
        elif kind == "lstm":
            z = p + h @ U
            i, f, g, o = (z[:, k * u:(k + 1) * u] for k in range(4))
            cn = sig(f) * c + sig(i) * np.tanh(g)
            hn = sig(o) * np.tanh(cn)
        else:
            hu = h @ U
            zz, r = sig(p[:, :u] + hu[:, :u]), sig(p[:, u:2 * u] + hu[:, u:2 * u])
            n = np.tanh(p[:, 2 * u:] + r * hu[:, 2 * u:])
            hn, cn = zz * h + (1 - zz) * n, c
        if mask is not None:
            m = mask[:, t:t + 1]
            hn, cn = m * hn + (1 - m) * h, m * cn + (1 - m) * c
        h, c = hn, cn
        outs.append(h)
    return np.stack(outs, 1) if seqs else h


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("seqs", [False, True])
def test_layers_match_numpy_and_finite_differences(kind, seqs):
    layer = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[kind](5, return_sequences=seqs,
                                                                   seed=3)
    x = fc.input("x", (None, None, 3))
    m = fc.input("m", (None, None))
    y = layer(x, mask=m)
    W, U, b = (p.get_value() for p in layer.params)
    cost = fc.sum(y * y)
    grads = fc.grad(cost, layer.params + [x])
    for level in ("O0", "O1", "O2"):
        f = fc.function([x, m], [y] + grads, optimize=level)
        for steps in (4, 2, 4):
            xv = rng.standard_normal((2, steps, 3))
            mv = np.ones((2, steps))
            mv[1, steps - 1:] = 0  # the second sequence is one step shorter (padded)
            got = f(xv, mv)
            np.testing.assert_allclose(got[0], ref(kind, xv, W, U, b, mv, seqs), rtol=1e-10,
                                       atol=1e-12)
    num = fc.numerical_grad(lambda W_, U_, b_, x_: (ref(kind, x_, W_, U_, b_, mv, seqs) ** 2).sum(),
                            [W, U, b, xv])
    for g, n in zip(got[1:], num):
        np.testing.assert_allclose(g, n, rtol=1e-6, atol=1e-8)


def test_stacked_layers_and_the_model_file_kinds(tmp_path):
    x = fc.input("x", (None, 64))
    model = nn.Sequential([nn.Reshape((8, 8)), nn.GRU(6, return_sequences=True),
                           nn.LSTM(4), nn.Dense(3)], seed=1)
    out = model(x)
    assert out.type.shape == (None, 3)
    assert fc.function([x], out)(np.ones((5, 64))).shape == (5, 3)
    path = tmp_path / "m.toml"
    path.write_text('[model]\nname = "m"\n[inputs.x]\nshape = ["batch", 64]\n'
                    '[inputs.y]\nshape = ["batch"]\ndtype = "int64"\n'
                    '[[layers]]\ntype = "reshape"\nshape = [8, 8]\n'
                    '[[layers]]\ntype = "rnn"\nunits = 4\nreturn_sequences = true\n'
                    '[[layers]]\ntype = "lstm"\nunits = 4\n'
                    '[[layers]]\ntype = "dense"\nunits = 10\n'
                    '[loss]\ntype = "categorical_crossentropy"\n')
    from flowc.models.build import build
    from flowc.models.modelfile import read
    built = build(read(str(path)))
    assert [type(layer).__name__ for layer in built.model.layers] == \
        ["Reshape", "RNN", "LSTM", "Dense"]
    path.write_text(path.read_text().replace("units = 4\nreturn", "units = 0\nreturn"))
    with pytest.raises(fc.FlowcError, match="layers\\[1\\].units"):
        read(str(path))


def test_a_recurrent_layer_needs_a_sequence():
    with pytest.raises(fc.ShapeError, match="batch, steps, features"):
        nn.LSTM(3)(fc.input("x", (None, 4)))
