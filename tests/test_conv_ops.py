"""ae_research.models.conv_ops computes the same functions as lax/flax: values and gradients.

Exactness of each formulation is checked in float64 (rtol 1e-5 leaves room only for rounding) on small
shapes chosen to cover its branches: strides, odd sizes, explicit and VALID padding, incomplete pooling
windows, ties. The conv AE test checks loss and gradients of model.conv_impl=auto against xla in float32."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax import lax

from ae_research.errors import ConfigError
from ae_research.models import conv_ops
from ae_research.models.conv import ConvAutoencoder

DN = conv_ops.DIMENSION_NUMBERS


@pytest.fixture
def x64():
  with jax.enable_x64(True):
    yield


def _rand(seed, shape, dtype=jnp.float64):
  return jnp.asarray(np.random.default_rng(seed).normal(size=shape), dtype)


def _assert_same(fn, ref, args, rtol=1e-5, atol=0.0):
  """fn(*args) == ref(*args), and the gradients of <fn(args), r> w.r.t. every argument (one jit for all)."""
  out_shape = jax.eval_shape(ref, *args)
  probe = _rand(99, out_shape.shape, out_shape.dtype)

  @jax.jit
  def both(*a):
    (out, vjp), (out_ref, vjp_ref) = jax.vjp(fn, *a), jax.vjp(ref, *a)
    return out, out_ref, vjp(probe), vjp_ref(probe)

  out, out_ref, grads, grads_ref = both(*args)
  np.testing.assert_allclose(out, out_ref, rtol=rtol, atol=atol)
  for g, g_ref in zip(grads, grads_ref):
    np.testing.assert_allclose(g, g_ref, rtol=rtol, atol=atol * max(1.0, float(jnp.max(jnp.abs(g_ref)))))


CONV_CASES = [  # (impl, input shape, kernel shape, strides, padding)
    ("taps", (2, 9, 7, 3), (3, 3, 3, 5), (1, 1), "SAME"),
    ("taps", (2, 10, 9, 1), (4, 4, 1, 3), (2, 2), "SAME"),
    ("col2im", (2, 8, 8, 4), (3, 3, 4, 1), (1, 1), "SAME"),
    ("col2im", (2, 9, 7, 2), (3, 2, 2, 3), (1, 1), ((1, 2), (0, 1))),
    ("col2im", (2, 9, 7, 1), (3, 3, 1, 2), (1, 1), "VALID"),
    ("patches", (2, 11, 8, 3), (3, 2, 3, 4), (2, 1), ((1, 2), (0, 1))),
    ("auto", (1, 6, 6, 5), (1, 1, 5, 2), (1, 1), "SAME"),
]


@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: f"{c[0]}-{c[1]}*{c[2]}/{c[3]}/{c[4]}")
def test_conv2d_equals_lax(x64, case):
  impl, shape, kshape, strides, padding = case
  ref = lambda x, w, b: lax.conv_general_dilated(x, w, strides, padding, dimension_numbers=DN) + b
  fn = lambda x, w, b: conv_ops.conv2d(x, w, b, strides, padding, impl=impl)
  _assert_same(fn, ref, (_rand(0, shape), _rand(1, kshape), _rand(2, kshape[-1:])))


def test_auto_chooses_by_channel_counts():
  assert conv_ops.choose_conv_impl(1, 16) == "taps"
  assert conv_ops.choose_conv_impl(16, 1) == "col2im"
  assert conv_ops.choose_conv_impl(16, 1, (2, 2)) == "xla"
  assert conv_ops.choose_conv_impl(32, 64) == "xla"
  with pytest.raises(ValueError, match="impl"):
    conv_ops.conv2d(jnp.zeros((1, 4, 4, 1)), jnp.zeros((3, 3, 1, 1)), impl="fast")


# Odd sizes with SAME (an incomplete last window), VALID crops, explicit pads, window 3; ties from relu zeros.
POOL_CASES = [((2, 7, 7, 3), 2, "SAME"), ((2, 9, 8, 2), 2, "VALID"), ((1, 7, 10, 2), 3, "SAME"),
              ((2, 6, 5, 2), 2, ((1, 1), (0, 1)))]


@pytest.mark.parametrize("case", POOL_CASES, ids=lambda c: f"{c[0]}/{c[1]}/{c[2]}")
def test_max_pool_equals_flax_including_ties(x64, case):
  shape, k, padding = case
  x = jnp.maximum(jnp.round(_rand(3, shape) * 1.5), 0.0)  # Integer values: many windows with several maxima.
  x = x.at[0, 0].set(_rand(4, x.shape[2:]))  # ... and one row of distinct ones.
  ref = lambda x: nnx.max_pool(x, (k, k), strides=(k, k), padding=padding)
  _assert_same(lambda x: conv_ops.max_pool(x, (k, k), (k, k), padding, impl="tiled"), ref, (x,))


def test_overlapping_pools_fall_back_to_reduce_window(x64):
  x = _rand(4, (2, 9, 9, 2))
  ref = lambda x: nnx.max_pool(x, (3, 3), strides=(2, 2), padding="SAME")
  _assert_same(lambda x: conv_ops.max_pool(x, (3, 3), (2, 2), "SAME"), ref, (x,))


def test_upsample_nearest_equals_repeat():
  x = _rand(5, (2, 3, 4, 2), jnp.float32)
  for factor in (2, 3):
    np.testing.assert_array_equal(conv_ops.upsample_nearest(x, factor),
                                  jnp.repeat(jnp.repeat(x, factor, axis=1), factor, axis=2))


@pytest.mark.parametrize("factor, kernel, padding", [(2, 3, "SAME"), (3, 4, "VALID"), (2, 1, ((2, 0), (1, 1)))])
def test_upsample_conv_equals_conv_of_upsampled(x64, factor, kernel, padding):
  x, w, b = _rand(6, (2, 4, 5, 3)), _rand(7, (kernel, kernel, 3, 4)), _rand(8, (4,))
  ref = lambda x, w, b: lax.conv_general_dilated(conv_ops.upsample_nearest(x, factor), w, (1, 1), padding,
                                                 dimension_numbers=DN) + b
  _assert_same(lambda x, w, b: conv_ops.upsample_conv(x, w, b, factor, padding, impl="phases"), ref, (x, w, b))


@pytest.mark.parametrize("kernel, stride, padding", [(2, 2, "SAME"), (4, 2, "SAME"), (3, 2, "VALID"), (5, 3, "SAME"),
                                                     (3, 2, ((1, 2), (2, 1)))])
def test_conv_transpose_equals_lax(x64, kernel, stride, padding):
  x, w, b = _rand(9, (2, 4, 5, 3)), _rand(10, (kernel, kernel, 3, 2)), _rand(11, (2,))
  ref = lambda x, w, b: lax.conv_transpose(x, w, (stride, stride), padding, dimension_numbers=DN) + b
  _assert_same(lambda x, w, b: conv_ops.conv_transpose(x, w, b, stride, padding, impl="phases"), ref, (x, w, b))


def test_the_nnx_module_wrappers_equal_the_modules(x64):
  rngs = nnx.Rngs(0)
  conv = nnx.Conv(3, 4, (3, 3), padding="SAME", param_dtype=jnp.float64, rngs=rngs)
  strided = nnx.Conv(1, 8, (4, 4), strides=(2, 2), padding="SAME", param_dtype=jnp.float64, rngs=rngs)
  head = nnx.Conv(8, 1, (3, 3), padding="SAME", param_dtype=jnp.float64, rngs=rngs)
  # PyTorch-style ConvTranspose2d(3, 2, 3, stride 2, padding 1, output_padding 1), as the generative backbones build it.
  tconv = nnx.ConvTranspose(3, 2, (3, 3), strides=(2, 2), padding=((1, 2), (1, 2)), param_dtype=jnp.float64,
                            rngs=rngs)
  dilated = nnx.Conv(3, 4, (3, 3), kernel_dilation=(2, 2), param_dtype=jnp.float64, rngs=rngs)  # Falls back.
  x, h8 = _rand(12, (2, 8, 8, 3)), _rand(13, (2, 8, 8, 8))
  pairs = jax.jit(lambda x, h8: [
      (conv_ops.apply_conv(conv, x), conv(x)),
      (conv_ops.apply_conv(strided, x[..., :1]), strided(x[..., :1])),
      (conv_ops.apply_conv(head, h8), head(h8)),
      (conv_ops.apply_conv_transpose(tconv, x), tconv(x)),
      (conv_ops.apply_upsample_conv(conv, x, 2), conv(conv_ops.upsample_nearest(x, 2))),
      (conv_ops.apply_conv(dilated, x), dilated(x))])(x, h8)
  for got, want in pairs:
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_conv_impl_auto_and_xla_give_the_same_loss_and_gradients():
  """The default network's layers (taps, xla, col2im convs; pools; sub-pixel upsampling) at 10x10 grey ->
  8x8 colour: 10 -> 5 -> 3 pooled, 12 decoded, cropped. (Transposed upsampling: test_conv_transpose_*.)"""
  shape = (10, 10, 1)
  model = ConvAutoencoder(shape, channels=(4, 8), output_shape=(8, 8, 3), rngs=nnx.Rngs(0))
  graphdef, params = nnx.split(model)
  x = jnp.asarray(np.random.default_rng(1).uniform(size=(3, *shape)), jnp.float32)
  target = jnp.asarray(np.random.default_rng(2).uniform(size=(3, *model.output_shape)), jnp.float32)

  def loss(params, impl):
    m = nnx.merge(graphdef, params)
    m.conv_impl = impl
    logits = m.decode_logits(m.encode(x))
    return jnp.mean(jnp.maximum(logits, 0) - logits * target + jnp.log1p(jnp.exp(-jnp.abs(logits))))

  both = jax.jit(lambda p: (jax.value_and_grad(loss)(p, "auto"), jax.value_and_grad(loss)(p, "xla")))
  (value, g), (value_ref, g_ref) = both(params)
  np.testing.assert_allclose(value, value_ref, rtol=1e-6)
  for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(g_ref)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * float(jnp.max(jnp.abs(b))))
  with pytest.raises(ConfigError, match="conv_impl"):
    ConvAutoencoder(shape, conv_impl="fast", rngs=nnx.Rngs(0))
