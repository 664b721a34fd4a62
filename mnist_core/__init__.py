"""mnist_core: a 7,416-parameter MNIST CNN, its training recipe, and everything the demo needs.

Modules, by what they hold:
    config      TrainConfig, the one frozen dataclass of hyperparameters (CLI and UI share it)
    model       the network
    data        locating, downloading and reading the MNIST IDX files into tensors
    batches     the fast tensor pipeline: shuffling, batched rotation, normalization
    train       training as a generator of per-epoch records
    evaluate    test loss / accuracy / per-class accuracy / confusion matrix
    checkpoint  atomic save, safe (weights_only) load
    preprocess  turning a drawing into an MNIST-like 28x28 image (pure functions)
    predict     Predictor: a loaded model + preprocessing = probabilities
    registry    the checkpoints the demo can offer
    cli         `python -m mnist_core ...`
"""

__version__ = "1.0.0"
