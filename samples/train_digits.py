"""Train the bundled sample: a small DeiT on scikit-learn's handwritten digits (seeded, CPU).

Writes samples/digits/ (checkpoint, labels, held-out test split and a calibration subset of the
training split as PNG folders) and samples/sample.json with the top-1 measured through the
exported model. Rerun with ``make sample``; the same seed gives the same checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("GLOG_minloglevel", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

MODEL = "DeiT_digits_patch8_32"
SEED = 0
EPOCHS = 120
BATCH = 64
OUT = ROOT / "samples" / "digits"


def to_png_pixels(images: np.ndarray) -> np.ndarray:
    """sklearn digits are 8x8 in 0..16; as 8-bit greyscale images."""
    return np.round(images * (255.0 / 16.0)).astype(np.uint8)


def write_split(folder: Path, pixels: np.ndarray, targets: np.ndarray, ids: np.ndarray) -> None:
    import cv2

    for img, t, i in zip(pixels, targets, ids, strict=False):
        d = folder / str(int(t))
        d.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(d / f"digit_{int(i):04d}.png"), img)


def augment(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random shifts of up to one source pixel (4 px at 32x32), zero-filled at background level."""
    out = np.full_like(x, x.min())
    for n in range(len(x)):
        dy, dx = rng.integers(-4, 5, size=2)
        src = x[n, :, max(0, -dy):32 - max(0, dy), max(0, -dx):32 - max(0, dx)]
        out[n, :, max(0, dy):max(0, dy) + src.shape[1], max(0, dx):max(0, dx) + src.shape[2]] = src
    return out


def one_cycle_adamw(model, steps: int):
    """Both samples' optimizer: AdamW (weight decay 0.05), one-cycle learning rate peaking at 2e-3."""
    import paddle

    sched = paddle.optimizer.lr.OneCycleLR(max_learning_rate=2e-3, total_steps=steps)
    return paddle.optimizer.AdamW(learning_rate=sched, parameters=model.parameters(),
                                  weight_decay=0.05), sched


def train_step(model, opt, sched, x: np.ndarray, y: np.ndarray):
    """One batch: cross-entropy with label smoothing 0.1; returns the loss tensor."""
    import paddle

    logits = model(paddle.to_tensor(x))
    loss = paddle.nn.functional.cross_entropy(logits, paddle.to_tensor(y.astype("int64")),
                                              label_smoothing=0.1)
    loss.backward()
    opt.step()
    opt.clear_grad()
    sched.step()
    return loss


def exported_top1(weights: Path, labels: Path, test_dir: Path):
    """Top-1 through the exported model, as a user would measure it (an EvalResult)."""
    from vitdeploy.check.evaluate import evaluate
    from vitdeploy.export import export_model
    from vitdeploy.predictor import Predictor

    with tempfile.TemporaryDirectory() as tmp:
        export_model(MODEL, weights, Path(tmp) / "export", labels=labels)
        with Predictor(Path(tmp) / "export") as pred:
            return evaluate(pred, test_dir)


def main() -> None:
    import paddle
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from vitdeploy.models import get_config
    from vitdeploy.models.loader import build_model
    from vitdeploy.preprocess import preprocess_array

    paddle.seed(SEED)
    paddle.set_device("cpu")
    rng = np.random.default_rng(SEED)
    digits = load_digits()
    pixels, targets = to_png_pixels(digits.images), digits.target
    ids = np.arange(len(targets))
    tr, te = train_test_split(ids, test_size=0.2, random_state=SEED, stratify=targets)
    calib = np.concatenate([tr[targets[tr] == c][:20] for c in range(10)])

    pre = get_config(MODEL).preprocess
    # The same preprocessing the deployed model gets: grey -> RGB, resize_short, crop, normalise.
    x = np.stack([preprocess_array(np.repeat(p[:, :, None], 3, axis=2), pre) for p in pixels])
    model = build_model(MODEL, num_classes=10).model
    opt, sched = one_cycle_adamw(model, EPOCHS * ((len(tr) + BATCH - 1) // BATCH))
    for epoch in range(EPOCHS):
        model.train()
        order = rng.permutation(tr)
        for start in range(0, len(order), BATCH):
            idx = order[start:start + BATCH]
            loss = train_step(model, opt, sched, augment(x[idx], rng), targets[idx])
        if epoch % 20 == 19 or epoch == EPOCHS - 1:
            model.eval()
            with paddle.no_grad():
                pred = model(paddle.to_tensor(x[te])).numpy().argmax(1)
            print(f"epoch {epoch + 1}: loss {float(loss):.3f}, "
                  f"held-out top-1 {(pred == targets[te]).mean():.4f}", flush=True)

    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    paddle.save(model.state_dict(), str(OUT / "digits_deit.pdparams"))
    (OUT / "labels.txt").write_text("".join(f"{c}\n" for c in range(10)))
    write_split(OUT / "test", pixels[te], targets[te], te)
    write_split(OUT / "calib", pixels[calib], targets[calib], calib)

    result = exported_top1(OUT / "digits_deit.pdparams", OUT / "labels.txt", OUT / "test")
    rel = lambda p: p.relative_to(ROOT).as_posix()  # noqa: E731
    sample = {"model": MODEL, "weights": rel(OUT / "digits_deit.pdparams"),
              "labels": rel(OUT / "labels.txt"), "test_dir": rel(OUT / "test"),
              "calib_dir": rel(OUT / "calib"), "top1": round(result.top1, 4),
              "test_images": result.images}
    (ROOT / "samples" / "sample.json").write_text(json.dumps(sample, indent=2) + "\n")
    print(f"exported-model top-1 on {result.images} held-out images: {result.top1:.4f}")


if __name__ == "__main__":
    main()
