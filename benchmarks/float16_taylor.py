"""Accuracy of the Taylor terms under mixed_float16, relative to float32.

ELU MLP decoder 2→64→64→4 at its seeded initial weights, 64 centres × 3
tangents of size |dz| ∈ {1e-1, 1e-2, 1e-3}; prints the relative error of J·dz
and dzᵀH dz computed under `mixed_float16` against float32.

    python benchmarks/float16_taylor.py
"""

import os

os.environ["TF_CPP_MIN_LOG_LEVEL"]="3"
import keras, numpy as np, tensorflow as tf
from keras_nrae.taylor import taylor_terms
from keras_nrae.architectures import mlp_autoencoder
rng=np.random.default_rng(0)
z=rng.normal(size=(64,2)).astype("float32")
res={}
for pol in ("float32","mixed_float16"):
    keras.mixed_precision.set_global_policy(pol)
    keras.utils.set_random_seed(0)
    _, dec = mlp_autoencoder((4,), 2, hidden=(64,64), activation="elu")
    for s in (1e-1,1e-2,1e-3):
        t=(s*rng.normal(size=(64,3,2))).astype("float32") if pol=="float32" else res[("t",s)]
        res[("t",s)]=t
        v,f,sec=taylor_terms(dec, tf.constant(z), tf.constant(t), order=2)
        res[(pol,s)]=(np.asarray(f,np.float64), np.asarray(sec,np.float64))
for s in (1e-1,1e-2,1e-3):
    f32,s32=res[("float32",s)]; f16,s16=res[("mixed_float16",s)]
    rel=lambda a,b: np.linalg.norm(a-b)/np.linalg.norm(b)
    print(f"|dz|~{s:g}: first-order rel err {rel(f16,f32):.1e}, second-order rel err {rel(s16,s32):.1e}, second/first norm {np.linalg.norm(s32)/np.linalg.norm(f32):.1e}")
