"""Stabilization: rewrite expressions that overflow or cancel into their stable forms.

The rules run on the whole unit, backward nodes included, so gradients built from the
unstable forms read the stable values too (as in Theano's stabilize phase).
"""
from __future__ import annotations

from ..ops import api as F
from .algebra import _build, _is, _op, simplify
from .rewrite import operands


def _exp_arg(G, n):
    return operands(G, n)[0] if _op(G, n) == "exp" else None


def _one_plus(G, n):
    """x if node n is 1 + x (either order), else None."""
    if _op(G, n) != "add":
        return None
    a, b = operands(G, n)
    return b if _is(G, a, 1) else a if _is(G, b, 1) else None


def _inv_one_plus_exp(G, n, a):
    # 1 / (1 + exp(z)) -> sigmoid(-z)
    if not _is(G, a[0], 1):
        return None
    x = _one_plus(G, a[1])
    z = _exp_arg(G, x) if x is not None else None
    return None if z is None else _build(G, n, lambda t: F.sigmoid(F.neg(t[0])), [z])


def _log_one_minus_sigmoid(G, n, a):
    # log(1 - sigmoid(x)) -> -softplus(x). Only under a log: elsewhere 1 - sigmoid(x) is
    # accurate enough in absolute terms, and cheaper than a second sigmoid.
    if _op(G, a[0]) == "sub":
        one, s = operands(G, a[0])
        if _is(G, one, 1) and _op(G, s) == "sigmoid":
            return _build(G, n, lambda t: F.neg(F.softplus(t[0])), operands(G, s))
    return None


def _log_sigmoid(G, n, a):
    # log(sigmoid(x)) -> -softplus(-x)
    if _op(G, a[0]) == "sigmoid":
        return _build(G, n, lambda t: F.neg(F.softplus(F.neg(t[0]))), operands(G, a[0]))
    return None


def _log_one_plus(G, n, a):
    # log(1 + x) -> log1p(x)
    x = _one_plus(G, a[0])
    return None if x is None else _build(G, n, lambda t: F.log1p(t[0]), [x])


def _exp_minus_one(G, n, a):
    # exp(x) - 1 -> expm1(x)
    if _is(G, a[1], 1) and _op(G, a[0]) == "exp":
        return _build(G, n, lambda t: F.expm1(t[0]), operands(G, a[0]))
    return None


def _log_softmax(G, n, a):
    # log(softmax(x, axis)) -> log_softmax(x, axis)
    if _op(G, a[0]) == "softmax":
        axis = G.nodes[a[0]]["attrs"]["axis"]
        return _build(G, n, lambda t: F.log_softmax(t[0], axis), operands(G, a[0]))
    return None


def _log_sum_exp(G, n, a):
    # log(sum(exp(x), axis)) -> logsumexp(x, axis)
    if _op(G, a[0]) != "sum":
        return None
    z = _exp_arg(G, operands(G, a[0])[0])
    if z is None:
        return None
    at = G.nodes[a[0]]["attrs"]
    return _build(G, n, lambda t: F.logsumexp(t[0], at["axis"], at["keepdims"]), [z])


def _factors(G, n):
    """(x, y) and (y, x) for n = x * y, else nothing."""
    if _op(G, n) != "mul":
        return []
    x, y = operands(G, n)
    return [(x, y), (y, x)]


def _binary_cross_entropy(G, n, a):
    # y * softplus(-z) + (1 - y) * softplus(z) -> softplus(z) - y * z, since softplus(-z) =
    # softplus(z) - z: what -y log(sigmoid z) - (1 - y) log(1 - sigmoid z) becomes after the
    # rules above, with one softplus instead of two.
    for p, q in (a, a[::-1]):
        for y, s1 in _factors(G, p):
            if _op(G, s1) != "softplus" or _op(G, operands(G, s1)[0]) != "neg":
                continue
            z = operands(G, operands(G, s1)[0])[0]
            for one_minus_y, s2 in _factors(G, q):
                if (_op(G, s2) == "softplus" and operands(G, s2)[0] == z
                        and _op(G, one_minus_y) == "sub"
                        and _is(G, operands(G, one_minus_y)[0], 1)
                        and operands(G, one_minus_y)[1] == y):
                    return _build(G, n, lambda t: F.softplus(t[0]) - t[1] * t[0], [z, y])
    return None


RULES = [
    ("inv_1p_exp->sigmoid", "div", _inv_one_plus_exp),
    ("log(1-sigmoid)->-softplus(x)", "log", _log_one_minus_sigmoid),
    ("log_sigmoid->-softplus(-x)", "log", _log_sigmoid),
    ("log(1+x)->log1p", "log", _log_one_plus),
    ("exp(x)-1->expm1", "sub", _exp_minus_one),
    ("log_softmax", "log", _log_softmax),
    ("log_sum_exp->logsumexp", "log", _log_sum_exp),
    ("binary_cross_entropy->softplus(z)-y*z", "add", _binary_cross_entropy),
]


def stabilize(G):
    """Apply the stabilization rules until none fires. Guarantee: same values where the
    original was finite; finite values in many places where it overflowed."""
    return simplify(G, rules=RULES)


def simplify_and_stabilize(G):
    """The algebra, shape-read and stabilization tables, to one common fixed point."""
    from .algebra import RULES as ALGEBRA
    from .shape_reads import RULES as SHAPE_READS
    return simplify(G, rules=ALGEBRA + SHAPE_READS + RULES)
