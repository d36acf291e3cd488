"""The convolutional training steps of tools/bench_conv.py written by hand in NumPy: the
baseline flowc's compiled step is measured against (same model, same float32, same
algorithms: im2col + one GEMM per conv and for its weight gradient, GEMM + col2im for its
input gradient, 2x2 max pooling by reshapes with the first maximum taking the gradient, as
flowc's pool_argmax does). tests/test_hand_conv.py checks it equals flowc's step.

    step = hand_step(spec, values)   # spec: bench_conv.LENET or DIGITS; values: init(spec)
    loss = step(x, y)                # one SGD step on float32 x (N, 1, S, S), one-hot y
"""
from __future__ import annotations

import numpy as np


def _im2col(xp, k, oh, ow):
    """(N * oh * ow, C * k * k) windows of the padded NCHW input, one copy per offset."""
    N, C = xp.shape[:2]
    cols = np.empty((N, oh, ow, C, k, k), xp.dtype)
    for i in range(k):
        for j in range(k):
            cols[:, :, :, :, i, j] = xp[:, :, i:i + oh, j:j + ow].transpose(0, 2, 3, 1)
    return cols.reshape(N * oh * ow, C * k * k)


class _Conv:
    """conv (stride 1, zero padding p) + bias, forward and backward."""

    def __init__(self, w, b, p):
        self.w, self.b, self.p = w, b, p

    def forward(self, x):
        O, C, k, _ = self.w.shape
        p = self.p
        xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p))) if p else x
        N, _, H, W = xp.shape
        oh, ow = H - k + 1, W - k + 1
        self.cols, self.shape = _im2col(xp, k, oh, ow), (N, C, H, W, oh, ow)
        out = self.cols @ self.w.reshape(O, -1).T
        return out.reshape(N, oh, ow, O).transpose(0, 3, 1, 2) + self.b[None, :, None, None]

    def backward(self, dy, need_dx=True):
        O, C, k, _ = self.w.shape
        N, _, H, W, oh, ow = self.shape
        d = dy.transpose(0, 2, 3, 1).reshape(N * oh * ow, O)
        self.dw = (d.T @ self.cols).reshape(self.w.shape)
        self.db = dy.sum(axis=(0, 2, 3))
        if not need_dx:
            return None
        dcols = (d @ self.w.reshape(O, -1)).reshape(N, oh, ow, C, k, k)
        dxp = np.zeros((N, C, H, W), dy.dtype)
        for i in range(k):   # col2im: each offset's windows added back where they came from
            for j in range(k):
                dxp[:, :, i:i + oh, j:j + ow] += dcols[:, :, :, :, i, j].transpose(0, 3, 1, 2)
        p = self.p
        return dxp[:, :, p:H - p, p:W - p] if p else dxp


class _Pool:
    """relu then 2x2 max pooling, stride 2 (even sizes), the first maximum taking the
    gradient."""

    def forward(self, y):
        self.relu = y > 0
        a = np.maximum(y, 0)
        N, C, H, W = a.shape
        win = a.reshape(N, C, H // 2, 2, W // 2, 2).transpose(0, 1, 2, 4, 3, 5)
        win = win.reshape(N, C, H // 2, W // 2, 4)
        self.arg, self.shape = win.argmax(axis=-1), a.shape
        return np.take_along_axis(win, self.arg[..., None], axis=-1)[..., 0]

    def backward(self, g):
        N, C, H, W = self.shape
        d = np.zeros((N, C, H // 2, W // 2, 4), g.dtype)
        np.put_along_axis(d, self.arg[..., None], g[..., None], axis=-1)
        d = d.reshape(N, C, H // 2, W // 2, 2, 2).transpose(0, 1, 2, 4, 3, 5)
        return d.reshape(N, C, H, W) * self.relu


def hand_step(spec, values, lr=0.01):
    """One SGD step of spec's model on copies of `values` (the step updates them in place)."""
    ps = [v.copy() for v in values]
    convs = [_Conv(ps[2 * i], ps[2 * i + 1], p) for i, (_, _, p) in enumerate(spec["convs"])]
    pools = [_Pool() for _ in convs]
    k0 = 2 * len(convs)
    dense = [(ps[k0 + 2 * i], ps[k0 + 2 * i + 1]) for i in range(len(spec["dense"]))]

    def step(x, y):
        h = x
        for c, pl in zip(convs, pools):
            h = pl.forward(c.forward(h))
        shape = h.shape
        h = h.reshape(shape[0], -1)
        acts = []
        for i, (W, b) in enumerate(dense):
            acts.append(h)
            h = h @ W + b
            if i < len(dense) - 1:
                h = np.maximum(h, 0)
        z = h - h.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        n = x.shape[0]
        loss = -(y * logp).sum() / n
        g = (np.exp(logp) * y.sum(axis=1, keepdims=True) - y) / n
        grads = []
        for i in reversed(range(len(dense))):
            W, _ = dense[i]
            if i < len(dense) - 1:
                g = g * (acts[i + 1] > 0)
            grads.append((acts[i].T @ g, g.sum(axis=0)))
            g = g @ W.T
        g = g.reshape(shape)
        for j in reversed(range(len(convs))):
            g = pools[j].backward(g)
            g = convs[j].backward(g, need_dx=j > 0)
        for (W, b), (dW, db) in zip(dense, reversed(grads)):
            W -= lr * dW
            b -= lr * db
        for c in convs:
            c.w -= lr * c.dw
            c.b -= lr * c.db
        return loss
    step.params = ps
    return step
