"""Data set files for the tests of ``mlops datasets``: nothing can be downloaded here, so an MNIST-shaped
``.npz`` is made from scikit-learn's bundled digits."""

from __future__ import annotations

from pathlib import Path


def digits_as_mnist(path: Path) -> Path:
    """scikit-learn's 1797 digits (8x8, 0..16) as Keras's mnist.npz has them: 28x28 uint8 images (each
    pixel 3x3, padded by 2), 1500 for training and 297 for testing."""
    import numpy as np
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images / 16 * 255).astype("uint8")
    images = np.pad(np.kron(images, np.ones((3, 3), dtype="uint8")), ((0, 0), (2, 2), (2, 2)))
    labels = digits.target.astype("uint8")
    np.savez_compressed(
        path, x_train=images[:1500], y_train=labels[:1500], x_test=images[1500:], y_test=labels[1500:]
    )
    return path
