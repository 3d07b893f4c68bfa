"""StarGAN networks and losses (Choi et al., CVPR 2018, section 3 and appendix):

* generator ``G(x, c)``: the target camera as one-hot channels concatenated to the image;
  conv7x7-64, two stride-2 4x4 convs (x2 channels each), ``g_repeat`` residual blocks,
  two stride-2 transposed convs, conv7x7-3 + tanh; instance norm + ReLU throughout;
* discriminator (PatchGAN): ``d_repeat`` stride-2 4x4 convs with leaky ReLU 0.01, then a
  3x3 conv to the real/fake map ``D_src`` and a conv over the whole map to the camera
  logits ``D_cls``;
* losses: ``L_D = -E[D_src(x)] + E[D_src(G(x,c))] + lambda_cls L_cls^r + lambda_gp L_gp``
  and ``L_G = -E[D_src(G(x,c))] + lambda_cls L_cls^f + lambda_rec E||x - G(G(x,c),c')||_1``
  (eqs. 1-5), with the WGAN-GP penalty ``L_gp = E[(||grad_xhat D_src(xhat)||_2 - 1)^2]`` on
  ``xhat = a x + (1 - a) G(x,c)``, ``a ~ U(0,1)`` (Gulrajani et al., NeurIPS 2017).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from reidcli.utils.errors import InputError

# the largest relative difference of height/width between an image and a StarGAN's input size
ASPECT_TOLERANCE = 0.1


def _in(ch: int) -> nn.Module:
    return nn.InstanceNorm2d(ch, affine=True)


class ResidualBlock(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(ch, ch, 3, 1, 1, bias=False), _in(ch), nn.ReLU(inplace=True),
                                  nn.Conv2d(ch, ch, 3, 1, 1, bias=False), _in(ch))

    def forward(self, x):
        return x + self.body(x)


class Generator(nn.Module):
    """``G(x, c)``: images in [-1, 1] (N, 3, H, W) and camera ids (N,) -> images (H, W
    multiples of 4)."""

    def __init__(self, num_cams: int, conv_dim: int = 64, repeat: int = 6):
        super().__init__()
        self.num_cams = num_cams
        ch = conv_dim
        layers = [nn.Conv2d(3 + num_cams, ch, 7, 1, 3, bias=False), _in(ch), nn.ReLU(inplace=True)]
        for _ in range(2):
            layers += [nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=False), _in(ch * 2), nn.ReLU(inplace=True)]
            ch *= 2
        layers += [ResidualBlock(ch) for _ in range(repeat)]
        for _ in range(2):
            layers += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False), _in(ch // 2), nn.ReLU(inplace=True)]
            ch //= 2
        layers += [nn.Conv2d(ch, 3, 7, 1, 3, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, cam: torch.Tensor) -> torch.Tensor:
        onehot = F.one_hot(cam.long(), self.num_cams).to(x.dtype)
        c = onehot[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])
        return self.main(torch.cat([x, c], dim=1))


def auto_repeat(height: int, width: int, repeat: int = 0) -> int:
    """Discriminator depth: ``repeat``, or (0) the most stride-2 layers leaving a map of at
    least 2 pixels a side, at most 6 (StarGAN's 128x128 setting)."""
    most = max(1, int(math.log2(min(height, width))) - 1)
    return min(repeat or 6, most)


class Discriminator(nn.Module):
    """PatchGAN ``D(x) -> (D_src (N, 1, h, w), D_cls (N, num_cams))``."""

    def __init__(self, num_cams: int, height: int, width: int, conv_dim: int = 64, repeat: int = 0):
        super().__init__()
        repeat = auto_repeat(height, width, repeat)
        layers, ch = [nn.Conv2d(3, conv_dim, 4, 2, 1), nn.LeakyReLU(0.01)], conv_dim
        for _ in range(1, repeat):
            layers += [nn.Conv2d(ch, ch * 2, 4, 2, 1), nn.LeakyReLU(0.01)]
            ch *= 2
        self.main = nn.Sequential(*layers)
        kh, kw = height // 2 ** repeat, width // 2 ** repeat
        self.src = nn.Conv2d(ch, 1, 3, 1, 1, bias=False)
        self.cls = nn.Conv2d(ch, num_cams, (kh, kw), bias=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.main(x)
        return self.src(h), self.cls(h).flatten(1)


def gradient_penalty(d_src, x_hat: torch.Tensor) -> torch.Tensor:
    """``E[(||grad_xhat D_src(xhat)||_2 - 1)^2]`` (per-sample gradient norm; WGAN-GP)."""
    x_hat = x_hat.detach().requires_grad_(True)
    out = d_src(x_hat)
    grad, = torch.autograd.grad(out.sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


def d_loss(D, real: torch.Tensor, fake: torch.Tensor, cam: torch.Tensor, lambda_cls: float,
           lambda_gp: float, alpha: torch.Tensor) -> dict[str, torch.Tensor]:
    """``L_D`` of the module docstring; ``fake`` is detached, ``alpha`` (N,) mixes x-hat."""
    src_real, cls_real = D(real)
    src_fake, _ = D(fake.detach())
    a = alpha.view(-1, 1, 1, 1).to(real.dtype)
    gp = gradient_penalty(lambda x: D(x)[0], a * real + (1 - a) * fake.detach())
    cls = F.cross_entropy(cls_real.float(), cam)
    adv = -src_real.mean() + src_fake.mean()
    return {"loss": adv + lambda_cls * cls + lambda_gp * gp, "d_adv": adv, "d_cls": cls, "d_gp": gp,
            "d_acc": (cls_real.argmax(1) == cam).float().mean()}


def g_loss(D, G, real: torch.Tensor, src_cam: torch.Tensor, trg_cam: torch.Tensor, lambda_cls: float,
           lambda_rec: float) -> dict[str, torch.Tensor]:
    """``L_G`` of the module docstring."""
    fake = G(real, trg_cam)
    src_fake, cls_fake = D(fake)
    rec = (real - G(fake, src_cam)).abs().mean()
    adv = -src_fake.mean()
    cls = F.cross_entropy(cls_fake.float(), trg_cam)
    return {"loss": adv + lambda_cls * cls + lambda_rec * rec, "g_adv": adv, "g_cls": cls, "g_rec": rec}


def generator_styler(model, device: str = "auto"):
    """``(prepare, run)`` of a fitted StarGAN `StyleModel` (`reidcli.stylize.apply.BatchStyler`):
    each image is resized to the model's input size, a batch goes through the generator at once,
    each image to its style camera (cameras are the dataset's 0-based ids), and comes back
    at that size. An image whose aspect ratio differs from the model's by more than
    `ASPECT_TOLERANCE` is an `InputError`: resizing it would distort the person into a
    shape the generator never saw."""
    import numpy as np

    from reidcli.data.transforms import resize_array
    from reidcli.utils.device import resolve_device

    dev = resolve_device(device)
    cfg = model.config
    G = Generator(int(cfg["num_cams"]), int(cfg["g_conv_dim"]), int(cfg["g_repeat"]))
    G.load_state_dict(model.state)
    G.to(dev).eval()
    h, w = model.input_size
    index = {c: i for i, c in enumerate(model.cameras)}

    def prepare(img):
        if abs(img.shape[0] / img.shape[1] / (h / w) - 1) > ASPECT_TOLERANCE:
            raise InputError(f"the image, {img.shape[0]}x{img.shape[1]} pixels (height/width "
                             f"{img.shape[0] / img.shape[1]:.2f}), does not suit this StarGAN, fitted at {h}x{w} "
                             f"({h / w:.2f}); fit one with --image-size of this data's shape")
        return resize_array(img, h, w)

    @torch.no_grad()
    def run(images, srcs, dsts):
        if not images:
            return []
        x = torch.from_numpy(np.stack(images)).to(dev).permute(0, 3, 1, 2).float() / 127.5 - 1
        y = G(x, torch.tensor([index[d] for d in dsts], device=dev))
        return list(((y.permute(0, 2, 3, 1) + 1) * 127.5).round().clamp(0, 255).byte().cpu().numpy())

    return prepare, run
