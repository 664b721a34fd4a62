"""mnist_core: the ML library. A 7,416-parameter MNIST CNN, its training recipe, evaluation,
checkpoints, preprocessing of drawings, and the ONNX export. It never imports Gradio: the web app
(`mnist_web`, beside it) imports this package, never the other way round.

Modules, by what they hold:
    config      TrainConfig, the one frozen dataclass of hyperparameters (CLI and UI share it); the
                web service's training budget
    arch        the network's stages, described once (model, fold, units and the page derive from it)
    model       the network, built from arch
    fold        BatchNorm folded into the convolutions: the weights the page runs (GET /mnist/weights)
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
    raster      the page's rasteriser twin: strokes -> the network's 28x28 input
    predict     Predictor: a loaded model + preprocessing = probabilities
    store       one place for models: the shipped two and the runs, listing, bounded caches of what is
                derived from each (LRU by count and bytes), owner-checked delete, download copies
    parts       what is derived from a model (features, mistakes, unit index, weights body), built once
                by one capped background worker
    registry    ModelRegistry: the store under its older name (the model picker's catalog)
    runs        RunStore: the store seen as the run catalog; comparing runs' settings
    pruning     which saved runs go when the folder is over its bounds: per owner, then the server's
    insight     why it said that: saliency, look-alike training digits, the model's mistakes
    units       the network view's data: each stage's maps, what each unit looks for (its top digits)
    jobs        a training or teach job as events, run by a worker (a local process or a Ray task)
    redraw      MNIST re-drawn as canvas strokes: tracing, drawing styles, the cached twins and the drawn
                test set
    novelty     "not a digit": Mahalanobis distance to the nearest class in the network's layer means,
                calibrated on drawn digits, stored in the checkpoint
    teach       fine-tuning a model on a user's own drawings (mixed with MNIST, held-aside report)
    digitset    a user's drawings as an MNIST-format zip (and back), validated
    watch       snapshots of a run as it trains (filters, guesses on fixed digits)
    text        tiny wording helpers
    cli         `python -m mnist_core ...` (console script `mnist-core`)
"""

__version__ = "1.0.0"
