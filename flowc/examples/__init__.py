"""Runnable examples: `python -m flowc.examples.NAME`; each module's `main(...)` returns its figures.

- logreg: the classic Theano logistic-regression example (random data), with pictures.
- breast_cancer: logistic regression on scikit-learn's bundled breast-cancer set.
- digits_mlp: a one-hidden-layer softmax MLP on scikit-learn's bundled digits set.
- newton: Newton's method (hessian + solve) converging quadratically.
- levenberg_marquardt: fitting y = a*exp(-b*t) + c with jacobian, damping and solve.
- logreg_hessian: the 784 x 784 logistic-regression Hessian against its closed form.
"""
