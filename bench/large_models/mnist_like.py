"""MNIST-shaped data made from scikit-learn's digits, since nothing can be downloaded: 60,000 training and
10,000 test images, 28x28, uint8 in 0..255, labels 0..9.

The 8x8 digits are upsampled bilinearly to 20x20 and centred in 28x28 as MNIST's are, then each copy gets its
own stroke thickness, brightness, shift of up to 3 pixels and noise, so the set is not 60,000 copies of 1,797
images. Train and test come from disjoint digits (the test images are of writers never seen in training).
The same seed gives the same arrays; `MNIST_LIKE_TRAIN` sets a smaller training size (the benchmark's --quick).
"""

import os

import numpy as np
from sklearn.datasets import load_digits


def _resize(size_in: int, size_out: int) -> np.ndarray:
    """The bilinear interpolation matrix (size_out x size_in)."""
    pos = (np.arange(size_out) + 0.5) * size_in / size_out - 0.5
    low = np.clip(np.floor(pos).astype(int), 0, size_in - 1)
    high = np.clip(low + 1, 0, size_in - 1)
    frac = np.clip(pos - np.floor(pos), 0.0, 1.0)
    m = np.zeros((size_out, size_in))
    m[np.arange(size_out), low] += 1 - frac
    m[np.arange(size_out), high] += frac
    return m


def _make(images: np.ndarray, labels: np.ndarray, n: int, rng: np.random.Generator):
    pick = rng.integers(0, len(images), n)
    m = _resize(8, 20).astype(np.float32)
    digits = m @ (images[pick] / np.float32(16.0)).astype(np.float32) @ m.T  # n x 20 x 20 in 0..1
    gain = rng.uniform(0.9, 1.6, (n, 1, 1)).astype(np.float32)
    gamma = rng.uniform(0.6, 1.4, (n, 1, 1)).astype(np.float32)  # thinner or thicker strokes
    digits = np.clip(digits * gain, 0.0, 1.0) ** gamma
    out = rng.standard_normal((n, 28, 28), dtype=np.float32)
    out *= 0.08
    shifts = rng.integers(-3, 4, (n, 2))
    for dy in range(-3, 4):
        for dx in range(-3, 4):
            rows = np.where((shifts[:, 0] == dy) & (shifts[:, 1] == dx))[0]
            out[rows, 4 + dy : 24 + dy, 4 + dx : 24 + dx] += digits[rows]
    np.clip(out, 0.0, 1.0, out=out)
    out *= 255
    return out.astype(np.uint8), labels[pick].astype(np.uint8)


def load_data(seed: int = 0, n_train: int | None = None, n_test: int = 10_000):
    """((x_train, y_train), (x_test, y_test)), as `keras.datasets.mnist.load_data()` returns them."""
    n_train = n_train or int(os.environ.get("MNIST_LIKE_TRAIN", "60000"))
    digits = load_digits()
    order = np.random.default_rng(1234).permutation(len(digits.target))
    cut = int(len(order) * 0.8)
    rng = np.random.default_rng(seed)
    train = _make(digits.images[order[:cut]], digits.target[order[:cut]], n_train, rng)
    test = _make(digits.images[order[cut:]], digits.target[order[cut:]], n_test, rng)
    return train, test
