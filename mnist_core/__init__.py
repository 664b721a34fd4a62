"""mnist_core: a 7,416-parameter MNIST CNN, its training recipe, and everything the demo needs.

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
    strokes     the Draw tab's stroke payload: parse, bound, render with PIL
    preprocess  turning a drawing into an MNIST-like 28x28 image (pure functions)
    predict     Predictor: a loaded model + preprocessing = probabilities
    registry    the checkpoints the demo can offer
    runs        saved runs: listing, comparing, download, delete, pruning
    training_service  one training run at a time for the app, streamed as small updates
    insight     why it said that: saliency, look-alike training digits, the model's mistakes
    views       small HTML values for the app (+ train_views: live SVG charts; insight_views: heat maps)
    webguard    a public server's bounds: Host/Origin checks, body limits, bounded logs, hosting address
    web/        the Draw tab's canvas (gr.HTML custom component: html, css, js)
    cli         `python -m mnist_core ...`
"""

__version__ = "1.0.0"
