"""Independent reference computations for the tests (reverse mode, loops, numpy)."""

import numpy as np
import tensorflow as tf


def jacobian_and_hessian(fn):
    """A graph function: point (n,) -> reverse-mode J (D, n), H (D, n, n), output flattened to D."""

    @tf.function
    def at(point):
        point = point[None]
        with tf.GradientTape() as outer:
            outer.watch(point)
            with tf.GradientTape() as inner:
                inner.watch(point)
                y = tf.reshape(fn(point), [-1])
            jac = inner.jacobian(y, point)[:, 0]
        return jac, outer.jacobian(jac, point)[:, :, 0]

    return at


def taylor_expansion_loop(fn, primals, tangents, order):
    """f(p) + J t (+ ½ tᵀ H t) for every (b, m), one pair at a time: (B, M, D) flattened."""
    derivatives = jacobian_and_hessian(fn)
    out = np.zeros(tangents.shape[:2] + (int(np.prod(fn(primals[:1]).shape[1:])),))
    for b in range(tangents.shape[0]):
        value = tf.reshape(fn(primals[b : b + 1]), [-1]).numpy()
        jac, hess = (t.numpy() for t in derivatives(tf.constant(primals[b])))
        for m in range(tangents.shape[1]):
            t = np.reshape(tangents[b, m], [-1])
            out[b, m] = value + jac @ t
            if order == 2:
                out[b, m] += 0.5 * np.einsum("dij,i,j->d", hess, t, t)
    return out


def weighted_loss(errors, weights):
    """1/B Σ_b Σ_m w e / Σ_m w, written out with numpy."""
    return float(np.mean((weights * errors).sum(1) / weights.sum(1)))


def with_random_biases(model, seed=7):
    """model with N(0, 0.5²) biases: Keras initialises them to 0, which would
    hide a bias wrongly kept in (or dropped from) a Taylor term."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if getattr(layer, "bias", None) is not None:
            layer.bias.assign(rng.normal(scale=0.5, size=layer.bias.shape))
    return model


def nested_forward_terms(fn, primal, tangents):
    """(f(p), J t, tᵀ H t) per slot by nested ForwardAccumulators, one slot at a time: (B, M, ...)."""
    firsts, seconds = [], []
    for m in range(tangents.shape[1]):
        with tf.autodiff.ForwardAccumulator(primal, tangents[:, m]) as outer:
            with tf.autodiff.ForwardAccumulator(primal, tangents[:, m]) as inner:
                value = fn(primal)
            first = inner.jvp(value)
        firsts.append(first.numpy())
        seconds.append(outer.jvp(first).numpy())
    return value.numpy(), np.stack(firsts, 1), np.stack(seconds, 1)
