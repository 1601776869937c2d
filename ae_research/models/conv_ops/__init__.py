"""Convolution-network ops formulated for XLA:CPU: the same functions as lax/flax, computed faster.

Why (issue 27; jax/jaxlib 0.10.2, 2 cores, batch 256, the default conv AE on 28x28x1):
XLA:CPU loses its time in a few places, not in the forward convolutions. Per-op times of one
training step from XLA's own trace (`--xla_cpu_enable_xprof_traceme`, jax.profiler) and
per-layer forward+backward A/B runs (`jax.vjp` of each piece, interleaved, medians) showed:

* the weight gradients of convolutions whose input or output has few channels: XLA computes
  dW as a convolution with the activation as the "kernel" (a 32x32 window for the last decoder
  layer and the head), after transposing the (256, 32, 32, C) activations to put the batch
  last. These two layers alone took more time than everything else in the step.
* the backward of `max_pool` (`lax.reduce_window`): JAX lowers it to a variadic reduce-window
  that tracks the argmax with four int32 iota arrays of the input's size, then scatters:
  ~10x the time of the elementwise formulation below.
* the nearest upsampling feeds 4x the pixels into the next 3x3 convolution, and the forward
  convolutions themselves run at 20-50 GFLOP/s (of a ~317 GFLOP/s matmul peak).

The ops here compute the same functions (values and gradients: tests/test_conv_ops.py) with
matmuls and elementwise work that XLA:CPU does well:

* `conv2d` (`impl="auto"` on CPU): few input channels (the image layer) -> `taps`, a sum over
  the kernel taps of broadcast products, fused by XLA into one loop (layer 1 of the conv AE,
  fwd+bwd: 2.5 ms vs 48-74 ms for lax); few output channels (the 1-channel head) -> `col2im`:
  one matmul to kh*kw*Cout channels, then a shifted sum (13 ms vs 70-81 ms); otherwise XLA's
  own convolution (measured best for 16-64 channels).
* `max_pool` with non-overlapping windows: the max of a reshape, with a custom VJP that routes
  the gradient to the first maximal element of each window (row-major), exactly what XLA's
  select-and-scatter does (ties included): fwd+bwd 5-20 ms vs 16-127 ms per pooling layer.
* `upsample_conv`: a SAME convolution of a nearest-upsampled map, computed on the small map
  (sub-pixel form: each of the f*f output phases is a smaller convolution of the input, with
  kernels summed from the original one), as one patch matmul: 16/36 of the FLOPs for 2x
  upsampling and a 3x3 kernel (fwd+bwd per decoder stage 46-130 ms vs 90-641 ms).
* `conv_transpose`: flax `ConvTranspose` / `lax.conv_transpose` by the same phase
  decomposition (no zero-dilated input, no lhs-dilated convolution).

All timings above were taken on a shared 2-core machine with load 3-5 from other jobs; the
end-to-end A/B figures are in the report of issue 27 and in `ae-bench` (bench/conv.py). On other
backends `impl="auto"` keeps the plain lax formulation (not measured there).

Models choose with `model.conv_impl` (auto | xla; xla calls the flax modules themselves). Modules:
windows (padding rules, window views, im2col), convolution, pooling, upsampling (nearest, transposed
and upsample-then-convolve by phases), modules (the same on nnx.Conv / nnx.ConvTranspose).
"""
from ae_research.models.conv_ops.convolution import (COL2IM_MAX_OUT, IMPLS, TAPS_MAX_IN, choose_conv_impl,
                                                     conv2d)
from ae_research.models.conv_ops.modules import apply_conv, apply_conv_transpose, apply_upsample_conv
from ae_research.models.conv_ops.pooling import max_pool
from ae_research.models.conv_ops.upsampling import conv_transpose, dilated_conv, upsample_conv, upsample_nearest
from ae_research.models.conv_ops.windows import DIMENSION_NUMBERS, Padding, patches, resolve_padding

__all__ = ["COL2IM_MAX_OUT", "DIMENSION_NUMBERS", "IMPLS", "TAPS_MAX_IN", "Padding", "apply_conv",
           "apply_conv_transpose", "apply_upsample_conv", "choose_conv_impl", "conv2d", "conv_transpose",
           "dilated_conv", "max_pool", "patches", "resolve_padding", "upsample_conv", "upsample_nearest"]
