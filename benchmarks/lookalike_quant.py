"""The look-alike index quantised to int8 (issue 34): how often it changes the nearest 8, and its size.

For the 10,000 real MNIST test digits and the shipped model: the nearest 8 training digits by cosine
similarity of the 16 pooled features, searched among the float32 features and among the int8-quantised
ones (mnist_core/insight.py quantise: a scale per dimension, what FeatureIndex now searches and
GET /mnist/lookalikes serves). Prints the share with the same 8 in the same order, the same set, the
median gap between the 8th and 9th similarity, the index's size and its build time.

    python benchmarks/lookalike_quant.py [--data-dir ../shared/mnist]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from mnist_core.data import load_mnist, resolve_data_dir  # noqa: E402
from mnist_core.insight import FeatureIndex, pooled_features  # noqa: E402
from mnist_core.predict import Predictor  # noqa: E402
from mnist_web.lookalike_routes import index_body  # noqa: E402


@torch.inference_mode()
def unit_features(predictor: Predictor, images_u8: torch.Tensor, batch: int = 2000) -> torch.Tensor:
    out = []
    for i in range(0, len(images_u8), batch):
        x = (images_u8[i:i + batch].float() / 255.0 - predictor.mean) / predictor.std
        out.append(pooled_features(predictor.model, x[:, None]))
    f = torch.cat(out)
    return f / f.norm(dim=1, keepdim=True).clamp_min(1e-12)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=None)
    a = p.parse_args()
    predictor = Predictor.from_file(ROOT / "checkpoints" / "mnist_cnn.pt")
    train, test = load_mnist(resolve_data_dir(a.data_dir), download=False)
    t0 = time.perf_counter()
    index = FeatureIndex.build(predictor.model, train.images, train.labels, predictor.mean, predictor.std)
    build_s = time.perf_counter() - t0
    exact, queries = unit_features(predictor, train.images), unit_features(predictor, test.images)
    sims = queries @ exact.T
    a8 = torch.topk(sims, 8, dim=1).indices
    b8 = torch.topk(queries @ index.features.T, 8, dim=1).indices
    same_order = (a8 == b8).all(1).float().mean().item()
    same_set = sum(set(x.tolist()) == set(y.tolist()) for x, y in zip(a8, b8, strict=True)) / len(a8)
    ranked = torch.topk(sims, 9, dim=1).values
    print(f"{len(queries):,} test digits, {len(index):,} training digits: the int8 index gives the float "
          f"index's 8 in the same order for {same_order:.1%}, the same set for {same_set:.1%}; "
          f"median gap 8th-9th similarity {(ranked[:, 7] - ranked[:, 8]).median():.1e}")
    print(f"index body {len(index_body(index, predictor)):,} bytes; built in {build_s:.1f} s")


if __name__ == "__main__":
    main()
