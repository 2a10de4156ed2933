"""Neural style transfer costs (Gatys et al., 2015), exactly as the course notes define them.

With ``a[l]`` the activations ``(N, nh, nw, nc)`` of layer ``l`` of a
pretrained ConvNet, C the content, S the style and G the generated image:

- ``Jcontent(C, G) = 1/2 * ||a[l](C) - a[l](G)||^2`` at one (middle) layer;
- Gram matrix ``G[l](c1, c2) = sum_h sum_w a[l]_{h,w,c1} * a[l]_{h,w,c2}``;
- ``Jstyle[l](S, G) = 1/(2 nh nw nc)^2 * sum_c1 sum_c2 (G[l](S) - G[l](G))^2``;
- ``Jstyle(S, G) = sum_l lambda[l] * Jstyle[l](S, G)``;
- ``J(G) = alpha * Jcontent + beta * Jstyle (+ tv_weight * TV(G))``, with the
  optional total variation ``TV(G) = sum |G[i+1,j] - G[i,j]| + |G[i,j+1] - G[i,j]|``.

Every cost is per image: inputs carry a leading batch axis N and the result
has shape ``(N,)``.

Example:
    >>> cost = PerceptualCost(features, "block4_conv2", {"block1_conv1": 0.5, "block3_conv1": 0.5})
    >>> targets = cost.targets(content_images, style_image)
    >>> j, jc, js, tv = cost(generated_images, targets, alpha=1.0, beta=1e4)
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
from keras import ops


def content_cost(a_c, a_g):
    """``1/2 * ||a_c - a_g||^2`` per image: ``(N, nh, nw, nc)`` x2 -> ``(N,)``."""
    diff = ops.cast(a_c, "float32") - ops.cast(a_g, "float32")
    return 0.5 * ops.sum(ops.square(diff), axis=(1, 2, 3))


def gram_matrix(a):
    """``G(c1, c2) = sum_h sum_w a[h, w, c1] a[h, w, c2]``: ``(N, nh, nw, nc)`` -> ``(N, nc, nc)``."""
    a = ops.cast(a, "float32")
    flat = ops.reshape(a, (ops.shape(a)[0], -1, ops.shape(a)[-1]))  # (N, nh*nw, nc)
    return ops.matmul(ops.transpose(flat, (0, 2, 1)), flat)


def layer_style_cost(gram_s, gram_g, nh, nw, nc):
    """``1/(2 nh nw nc)^2 * sum (G(S) - G(G))^2`` per image: ``(N|1, nc, nc)``, ``(N, nc, nc)`` -> ``(N,)``."""
    norm = ops.square(2.0 * ops.cast(nh * nw * nc, "float32"))
    return ops.sum(ops.square(gram_s - gram_g), axis=(1, 2)) / norm


def style_cost(grams_s: dict, acts_g: dict, layer_weights: dict):
    """``sum_l lambda[l] * Jstyle[l]``; ``grams_s[l]`` ``(N|1, nc, nc)``, ``acts_g[l]`` ``(N, nh, nw, nc)`` -> ``(N,)``."""
    total = 0.0
    for layer, weight in layer_weights.items():
        a = acts_g[layer]
        nh, nw, nc = ops.shape(a)[1], ops.shape(a)[2], ops.shape(a)[3]
        total = total + float(weight) * layer_style_cost(grams_s[layer], gram_matrix(a), nh, nw, nc)
    return total


def total_variation(images):
    """Anisotropic total variation per image: ``(N, H, W, C)`` -> ``(N,)``."""
    x = ops.cast(images, "float32")
    dh = ops.abs(x[:, 1:, :, :] - x[:, :-1, :, :])
    dw = ops.abs(x[:, :, 1:, :] - x[:, :, :-1, :])
    return ops.sum(dh, axis=(1, 2, 3)) + ops.sum(dw, axis=(1, 2, 3))


def total_cost(j_content, j_style, alpha: float, beta: float, j_tv=0.0, tv_weight: float = 0.0):
    """``J = alpha * Jcontent + beta * Jstyle + tv_weight * TV``."""
    return alpha * j_content + beta * j_style + tv_weight * j_tv


@dataclass
class PerceptualCost:
    """The costs above on the activations of a feature extractor.

    ``features`` maps RGB [0, 255] images ``(N, H, W, 3)`` to a dict of
    activations that holds ``content_layer`` and every key of ``style_weights``
    (e.g. ``models.vgg16_hed.vgg16_features``).
    """

    features: keras.Model
    content_layer: str
    style_weights: dict

    def targets(self, content_images, style_images) -> dict:
        """Fixed targets: content activations ``(N, ...)`` and style Grams ``(1|N, nc, nc)``."""
        a_c = self.features(content_images)[self.content_layer]
        a_s = self.features(style_images)
        return {"content": a_c, "grams": {k: gram_matrix(a_s[k]) for k in self.style_weights}}

    def __call__(self, generated, targets: dict, alpha: float, beta: float, tv_weight: float = 0.0):
        """``(J, Jcontent, Jstyle, TV)``, each ``(N,)``, for generated images ``(N, H, W, 3)``."""
        acts = self.features(generated)
        jc = content_cost(targets["content"], acts[self.content_layer])
        js = style_cost(targets["grams"], acts, self.style_weights)
        tv = total_variation(generated) if tv_weight else ops.zeros_like(jc)
        return total_cost(jc, js, alpha, beta, tv, tv_weight), jc, js, tv
