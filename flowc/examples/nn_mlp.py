"""The digits MLP with flowc.nn: layers, a Trainer with shuffled mini-batches, held-out
evaluation and checkpoints. It is the Python twin of digits_mlp.toml:

    python -m flowc.examples.nn_mlp [--epochs 30] [--checkpoint DIR] [--resume]
    flowc train flowc.examples.nn_mlp:task --data digits     # this model, from the command line
"""
from __future__ import annotations

import argparse
import os

import flowc as fc
from flowc import nn


def task(seed=0):
    """The model, its loss and metrics (a flowc.nn Task), the optimizer and training settings."""
    x = fc.input("x", shape=(None, 64))               # 8x8 pixels scaled to [0, 1]
    y = fc.input("y", shape=(None,), dtype="int64")   # class labels 0..9
    model = nn.Sequential([
        nn.Dense(64, activation="tanh"),              # params dense1.W, dense1.b
        nn.Dropout(0.1),                              # generator state: dropout1.rng
        nn.Dense(10),                                 # logits
    ], seed=seed, name="digits_mlp")
    return {"task": nn.supervised(model, x, y, loss="categorical_crossentropy",
                                  metrics=["accuracy"]),
            "optimizer": {"type": "adam", "lr": 0.003},
            "train": {"epochs": 30, "batch_size": 32, "data": "digits"}}


def main(epochs=30, batch_size=32, seed=0, checkpoint=None, resume=False, verbose=True):
    """Train on the digits set; return the history and the held-out loss and accuracy."""
    from flowc.examples.digits_mlp import load
    Xtr, Ytr, Xte, Yte = load(seed)
    ytr, yte = Ytr.argmax(axis=1), Yte.argmax(axis=1)   # one-hot -> class labels
    with fc.Graph():
        spec = task(seed)
        opt = dict(spec["optimizer"])
        trainer = nn.Trainer(spec["task"], opt.pop("type"), seed=seed, **opt)
        path = os.path.join(checkpoint, "checkpoint.npz") if checkpoint else None
        if resume and path and os.path.exists(path):
            trainer.load(path)
        history = trainer.fit([Xtr, ytr], epochs=epochs, batch_size=batch_size,
                              validation=[Xte, yte], checkpoint=checkpoint,
                              log=print if verbose else None)
        held_out = trainer.evaluate([Xte, yte])
    if verbose:
        print(f"held-out loss {held_out['loss']:.4f}, accuracy {held_out['accuracy']:.4f}")
    return dict(history=history.as_dict(), test_loss=held_out["loss"],
                test_accuracy=held_out["accuracy"])


def cli(argv=None):
    ap = argparse.ArgumentParser(prog="python -m flowc.examples.nn_mlp", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--checkpoint", metavar="DIR", help="save the state here every epoch")
    ap.add_argument("--resume", action="store_true", help="continue from DIR/checkpoint.npz")
    a = ap.parse_args(argv)
    main(a.epochs, a.batch_size, a.seed, a.checkpoint, a.resume)


if __name__ == "__main__":
    cli()
