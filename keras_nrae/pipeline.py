"""neighborhood_dataset: a tf.data pipeline of centres with neighbours sampled from a graph."""

from typing import Optional

import numpy as np
import tensorflow as tf

from keras_nrae._checks import integer_at_least
from keras_nrae.arrays import Rows, gather_plan
from keras_nrae.graph import NeighborGraph

__all__ = ["neighborhood_dataset"]


def neighborhood_dataset(
    x,
    graph: NeighborGraph,
    batch_size: int,
    neighbors_per_point: int = 2,
    include_center: bool = True,
    replace: bool = False,
    shuffle: bool = True,
    seed: int = 0,
    drop_remainder: bool = True,
    input_context: Optional[tf.distribute.InputContext] = None,
) -> tf.data.Dataset:
    """Batches `{"x": (B, *shape), "neighbors": (B, M, *shape)}` for `model.fit`.

    Every point of x is a centre exactly once per epoch (in a fresh seeded
    order when `shuffle`). Its M = `neighbors_per_point` slots are drawn
    afresh every epoch, with seeded stateless TF ops, from its k graph
    neighbours, without replacement unless `replace`. With `include_center`
    slot 0 is the centre itself (bit-identical to "x") and M − 1 slots are
    drawn. The same seed gives the same sequence of epochs.

    x is never copied whole: each batch reads the rows it needs, once each
    and in sorted order, from x on the host (`tf.numpy_function`), checks
    them against the graph's row checksums (a row changed since the graph
    was built raises an error naming it), then converts them inside tf.data
    as `tf.image.convert_image_dtype` does: uint8 → float32 in [0, 1],
    float16 → float32, float32 and float64 unchanged.

    Args:
      x: array (N, ...), the data `graph` was built on: any storage dtype
        and any random-access source of `keras_nrae.arrays` (a NumPy array in
        memory or memory-mapped, an h5py dataset, a tfds data_source's
        `Feature`).
      graph: a `NeighborGraph` of x.
      batch_size: B.
      neighbors_per_point: M, the number of neighbour slots.
      include_center: put the centre in slot 0.
      replace: draw slots with replacement (then M may exceed k).
      shuffle: reshuffle the centres every epoch.
      seed: seeds the order and the draws.
      drop_remainder: drop the last partial batch, so B is static.
      input_context: given (by `strategy.distribute_datasets_from_function`,
        or `keras_nrae.distribute.distribute_neighborhood_dataset`), this
        input pipeline's share of every global batch of B centres:
        batch_size stays the global B, the centres, their order and their
        neighbours are those of one process with the same seed, and pipeline
        p of P feeding R = replicas / P replicas yields, for each global
        batch, R batches of b = B / replicas rows — rows (pR + r)·b : (pR + r + 1)·b
        for its r-th replica, as MultiWorkerMirroredStrategy splits a global
        batch among replicas. It reads only the rows of those R batches:
        about 1/P of an epoch's rows. Needs drop_remainder and B divisible
        by the number of replicas.
    """
    if not isinstance(graph, NeighborGraph):
        raise TypeError(f"graph must be a NeighborGraph, got {type(graph).__name__}.")
    rows = Rows(x)
    graph.check_data(rows)
    batch_size = integer_at_least(batch_size, "batch_size")
    slots = integer_at_least(neighbors_per_point, "neighbors_per_point")
    drawn = slots - bool(include_center)
    if drawn > graph.k and not replace:
        raise ValueError(
            f"neighbors_per_point={slots} needs {drawn} distinct neighbours per "
            f"point{' besides the centre' if include_center else ''}, but the graph "
            f"has k={graph.k}. Build the graph with a larger k, lower "
            f"neighbors_per_point, or pass replace=True."
        )
    if drop_remainder and batch_size > graph.num_points:
        raise ValueError(
            f"batch_size={batch_size} exceeds the {graph.num_points} points, so "
            f"drop_remainder=True would leave no batch."
        )

    def read(ids: np.ndarray, picks: np.ndarray):
        """Host side: centre ids (B,), picked slots (B, drawn) -> (stored rows (U, *shape),
        positions (B + B·drawn,) of the centres then their neighbours among them)."""
        neighbor_ids = np.take_along_axis(graph.indices[ids], picks, axis=1)
        unique, positions = gather_plan(np.concatenate([ids, neighbor_ids.ravel()]))
        stored = rows.read(unique)
        graph.check_rows(unique, stored)
        return stored, positions

    def pick(ids, draw_seed):
        """Global batch ids (B,) int64 and a (2,) stateless seed -> (ids, slots picked (B, drawn))."""
        batch = ids.shape[0] or tf.shape(ids)[0]
        if replace:
            picks = tf.random.stateless_uniform(
                [batch, drawn], draw_seed, maxval=graph.k, dtype=tf.int32
            )
        else:
            keys = tf.random.stateless_uniform([batch, graph.k], draw_seed)
            picks = tf.math.top_k(keys, drawn, sorted=False).indices
        return ids, picks

    def attach(ids, picks):
        """ids (b,) int64 and their picked slots (b, drawn) -> the batch dict."""
        batch = ids.shape[0] or tf.shape(ids)[0]
        stored, positions = tf.numpy_function(
            read, [ids, picks], [tf.as_dtype(rows.dtype), tf.int64], stateful=False
        )
        stored = tf.ensure_shape(stored, [None, *rows.row_shape])
        values = tf.image.convert_image_dtype(stored, tf.as_dtype(rows.float_dtype))
        centres = tf.reshape(tf.gather(values, positions[:batch]), [batch, *rows.row_shape])
        neighbors = tf.reshape(
            tf.gather(values, positions[batch:]), [batch, drawn, *rows.row_shape]
        )
        if include_center:
            neighbors = tf.concat([centres[:, None], neighbors], axis=1)
        return {"x": centres, "neighbors": neighbors}

    ids = tf.data.Dataset.range(graph.num_points)
    if shuffle:
        ids = ids.shuffle(graph.num_points, seed=seed, reshuffle_each_iteration=True)
    ids = ids.batch(batch_size, drop_remainder=drop_remainder)
    draw_seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    batches = tf.data.Dataset.zip(ids, draw_seeds).map(pick)
    if input_context is not None:
        batches = _share(batches, graph.num_points, batch_size, drop_remainder, drawn, input_context)
    return batches.map(attach, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(
        tf.data.AUTOTUNE
    )


def _share(
    batches: tf.data.Dataset,
    num_points: int,
    batch_size: int,
    drop_remainder: bool,
    drawn: int,
    context: tf.distribute.InputContext,
) -> tf.data.Dataset:
    """Global batches of (ids (B,), picks (B, drawn)) -> this input pipeline's per-replica batches.

    Pipeline p of P, feeding R = replicas / P replicas, yields for each global
    batch R elements (ids (b,), picks (b, drawn)), b = B / replicas: rows
    (pR + r)·b : (pR + r + 1)·b for r = 0 … R − 1, the order in which
    `distribute_datasets_from_function` hands a pipeline's elements to its replicas.
    """
    replicas, pipelines = context.num_replicas_in_sync, context.num_input_pipelines
    if not drop_remainder:
        raise ValueError(
            "input_context needs drop_remainder=True: every replica takes an equal share "
            "of every global batch."
        )
    if batch_size % replicas or replicas % pipelines:
        raise ValueError(
            f"batch_size={batch_size} (the global batch) must be divisible by the "
            f"{replicas} replicas in sync, and the replicas by the {pipelines} input "
            f"pipelines, to split every global batch equally."
        )
    per_replica, local = batch_size // replicas, replicas // pipelines
    start = context.input_pipeline_id * local * per_replica

    def split(ids, picks):
        share = slice(start, start + local * per_replica)
        return (tf.reshape(ids[share], [local, per_replica]),
                tf.reshape(picks[share], [local, per_replica, drawn]))

    steps = num_points // batch_size
    return batches.map(split).unbatch().apply(
        tf.data.experimental.assert_cardinality(steps * local)
    )
