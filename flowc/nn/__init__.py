"""Models people declare: layers, losses, metrics, optimizers as graph updates, a training
loop with checkpoints.

    from flowc import nn
    model = nn.Sequential([nn.Dense(64, "tanh"), nn.Dropout(0.1), nn.Dense(10)], seed=0)
    x, y = fc.input("x", (None, 64)), fc.input("y", (None,), "int64")
    task = nn.supervised(model, x, y, loss="categorical_crossentropy")
    trainer = nn.Trainer(task, "adam", lr=1e-3)
    history = trainer.fit([X, Y], epochs=20, batch_size=32, validation=[Xv, Yv])
"""
from . import optim  # noqa: F401
from . import checkpoint, init, losses, metrics  # noqa: F401
from .conv import (AvgPool2D, Conv1D, Conv2D, ConvTranspose2D, Flatten,  # noqa: F401
                   GlobalAvgPool, MaxPool2D)
from .history import History  # noqa: F401
from .layers import (ACTIVATIONS, Activation, Dense, Dropout, Layer, Linear, ReLU,  # noqa: F401
                     Sequential, Sigmoid, Tanh)
from .losses import binary_cross_entropy, categorical_cross_entropy, mse  # noqa: F401
from .metrics import accuracy  # noqa: F401
from .norm import BatchNorm, LayerNorm  # noqa: F401
from .progress import Progress  # noqa: F401
from .recurrent import GRU, LSTM, RNN, Reshape  # noqa: F401
from .random import Generator, uniform_like  # noqa: F401
from .task import OPTIMIZERS, Task, supervised, training_function  # noqa: F401
from .train import Trainer, TrainingDiverged  # noqa: F401
