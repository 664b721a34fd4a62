"""mnist_core: the ML library. A 7,416-parameter MNIST CNN, its training recipe, evaluation,
checkpoints, preprocessing of drawings, and the ONNX export. It never imports Gradio: the web app
(`mnist_web`, beside it) imports this package, never the other way round.

Modules, by what they hold:
    config      TrainConfig, the one frozen dataclass of hyperparameters (CLI and UI share it); the
                web service's training budget
    model       the network
    data        locating, downloading and reading the MNIST IDX files into tensors
    batches     the fast tensor pipeline: shuffling, batched rotation, normalization
    train       training as a generator of per-epoch records
    gpu_fast    the CUDA fast path: 32 steps per CUDA graph, epoch-wide batches, no per-batch sync
    multi       K seeds trained as one batched network (seed sweeps)
    evaluate    test loss / accuracy / per-class accuracy / confusion matrix
    checkpoint  atomic save, safe (weights_only) load
    export      a checkpoint as an ONNX file (dynamic batch axis, normalization in its metadata)
    strokes     the Draw tab's stroke payload: parse, bound, render
    preprocess  turning a drawing into an MNIST-like 28x28 image (pure functions)
    predict     Predictor: a loaded model + preprocessing = probabilities
    registry    the checkpoints a front end can offer (shipped + trained runs)
    runs        saved runs: listing, comparing, download, delete, pruning
    insight     why it said that: saliency, look-alike training digits, the model's mistakes
    text        tiny wording helpers
    cli         `python -m mnist_core ...` (console script `mnist-core`)
"""

__version__ = "1.0.0"
