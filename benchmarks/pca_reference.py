"""The linear reference for Table 1: validation MSE of PCA with as many components as the latent size.

On the protocol's validation split (`paper.table1.protocol.validation_split` of the
S training images; the test split is not loaded), PCA fitted on the fitting
images reconstructs each validation image from its first d principal
components. An autoencoder with latent size d that is optimised well should
do at least this well; where it does not, it is limited by its optimisation
or architecture, not its bottleneck. Prints per-pixel MSE ×10⁻³.

    PYTHONPATH=. python benchmarks/pca_reference.py mnist fashion_mnist cifar10 --dims 10 32 64 128
    python benchmarks/pca_reference.py --check    # pca_mse against scikit-learn, seconds
"""

import argparse

import numpy as np


def pca_mse(x_fit: np.ndarray, x_val: np.ndarray, dims) -> dict:
    """{d: mean over x_val of ‖x − (μ + P_dᵀP_d(x − μ))‖² / D} with P_d the top-d principal axes of x_fit."""
    a = x_fit.reshape(len(x_fit), -1).astype(np.float64)
    b = x_val.reshape(len(x_val), -1).astype(np.float64)
    mean = a.mean(0)
    axes = np.linalg.svd(a - mean, full_matrices=False)[2]
    return {d: float(np.mean(((b - mean) @ axes[:d].T @ axes[:d] + mean - b) ** 2)) for d in (0, *dims)}


def check() -> None:
    """pca_mse on random 3×3 images equals scikit-learn's PCA at d = 2, the mean image's MSE at d = 0, 0 at d = D."""
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(0)
    x_fit, x_val = rng.normal(size=(40, 3, 3, 1)), rng.normal(size=(10, 3, 3, 1))
    mse = pca_mse(x_fit, x_val, (2, 9))
    flat_fit, flat_val = x_fit.reshape(40, 9), x_val.reshape(10, 9)
    pca = PCA(2).fit(flat_fit)
    np.testing.assert_allclose(mse[2], np.mean((pca.inverse_transform(pca.transform(flat_val)) - flat_val) ** 2))
    np.testing.assert_allclose(mse[0], np.mean((flat_val - flat_fit.mean(0)) ** 2))
    np.testing.assert_allclose(mse[9], 0.0, atol=1e-20)
    print("pca_mse matches scikit-learn's PCA and the closed forms at d = 0 and d = D")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="*")
    parser.add_argument("--dims", nargs="+", type=int, default=[10, 32, 64, 128])
    parser.add_argument("--check", action="store_true", help="check pca_mse against scikit-learn and exit")
    args = parser.parse_args()
    if args.check:
        check()
        return
    if not args.datasets:
        parser.error("name at least one dataset (or --check)")
    from paper.table1 import protocol  # the source checkout's paper/ (PYTHONPATH=.); --check needs none of it

    config = protocol.BenchmarkConfig()
    print("Validation MSE x1e-3 of PCA with d components (d = 0: the mean image)")
    for dataset in args.datasets:
        x_fit, x_val = protocol.validation_images(dataset, config)
        cells = "  ".join(f"d={d}: {1e3 * v:.2f}" for d, v in pca_mse(x_fit, x_val, args.dims).items())
        print(f"{dataset:<14} {len(x_fit)} fitting / {len(x_val)} validation  {cells}", flush=True)


if __name__ == "__main__":
    main()
