"""PyTorch mirror of this repository's U-Net (layers/unet.go), for a side-by-side throughput benchmark.

It builds the same network as layers.UNet for a preset (tiny, cpu, tutorial; see layers/unet.go), asserts
that its parameter count equals the Go one, and measures with torch.set_num_threads(--threads):

  - training: one step = random t in [0, 200), noise eps, x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps
    (linear betas 1e-4..0.02), MSE(model(x_t, t), eps), backward, Adam(lr 1e-4) step;
  - sampling: one forward pass under torch.no_grad() (one sampler step),

each in images/s over --steps timed steps after one warm-up step, on random inputs (throughput only).
It prints one line per (preset, batch), parsed by `go run ./scripts/bench --pytorch PYTHON`:

  pytorch preset=cpu batch=64 train_img_s=45.1 sample_img_s=250.3 params=3123097 threads=2 torch=1.13.1

Differences from the Go model that do not change shapes or FLOPs: NCHW layout instead of NHWC; exact
SiLU and tanh-GELU instead of rational approximations; default PyTorch initialisation (but
the same zero-initialized branch ends for the pre-activation `cpu` preset, UNetConfig.PreNorm).

Needs Debian's PyTorch (apt-get install python3-torch) with OpenBLAS (apt-get install libopenblas0-pthread;
without it libblas.so.3 is the much slower reference BLAS, and the script warns); run from the repository root:

  /usr/bin/python3 scripts/bench/pytorch_unet.py --presets cpu --batches 16,64 --steps 3 --threads 2

The bench runs it without OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE (which some machines set, holding OpenBLAS
to AVX2 kernels) and, on a CPU with AVX-512, with ATEN_CPU_CAPABILITY=avx512; to match it by hand:

  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE ATEN_CPU_CAPABILITY=avx512 /usr/bin/python3 scripts/bench/pytorch_unet.py
"""
import argparse
import math
import sys
import time

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as e:
    sys.exit(f"pytorch_unet.py: cannot import torch with {sys.executable} ({e}): "
             "install Debian's PyTorch with `apt-get install python3-torch`")

IMAGE_SIZE, CHANNELS, T = 32, 1, 200
GROUP_NORM_EPS = 1e-6  # layers.GroupNormEpsilon (Flax's default).

# layers.Tutorial(), layers.CPU(), layers.Tiny(): (BaseWidth, WidthMults, AttentionResolutions, Groups, Heads);
# all three have MiddleAttention and TimeDim 0 (= BaseWidth).
PRESETS = {
    "tutorial": (32, (1, 2, 4, 8), (32, 16, 8, 4), 8, 8),
    "cpu": (16, (1, 2, 4, 8), (8, 4), 8, 4),
    "tiny": (8, (1, 2), (16,), 4, 2),
}
PRENORM = {"cpu"}  # Presets with UNetConfig.PreNorm: pre-activation blocks, zero-initialized branch ends.
GO_PARAMS = {"tutorial": 12_816_361, "cpu": 3_123_097, "tiny": 52_857}  # Asserted by the Go tests.


class Block(nn.Module):
    """layers.Block: 3x3 SAME conv (bias), GroupNorm, SiLU."""

    def __init__(self, cin, dim, groups):
        super().__init__()
        self.conv = nn.Conv2d(cin, dim, 3, padding=1)
        self.norm = nn.GroupNorm(groups, dim, eps=GROUP_NORM_EPS)

    def forward(self, x):
        return F.silu(self.norm(self.conv(x)))


class ResnetBlock(nn.Module):
    """layers.ResnetBlock: Block, + Dense(silu(temb)), Block, + 1x1 conv of the input (always)."""

    def __init__(self, cin, dim, groups, tdim):
        super().__init__()
        self.block0, self.block1 = Block(cin, dim, groups), Block(dim, dim, groups)
        self.time = nn.Linear(tdim, dim)
        self.residual = nn.Conv2d(cin, dim, 1)

    def forward(self, x, temb):
        h = self.block0(x) + self.time(F.silu(temb))[:, :, None, None]
        return self.block1(h) + self.residual(x)


class AttentionBlock(nn.Module):
    """layers.AttentionBlock: x + GroupNorm(Attention(x)); qkv Dense without bias, out Dense with bias."""

    def __init__(self, c, heads, groups):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(c, 3 * c, bias=False)
        self.out = nn.Linear(c, c)
        self.norm = nn.GroupNorm(groups, c, eps=GROUP_NORM_EPS)

    def attend(self, x):
        b, c, h, w = x.shape
        n, hd = h * w, c // self.heads
        tokens = x.flatten(2).transpose(1, 2)  # [b, n, c]
        q, k, v = self.qkv(tokens).reshape(b, n, 3, self.heads, hd).permute(2, 0, 3, 1, 4)  # [b, heads, n, hd]
        weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd), dim=-1)
        att = self.out((weights @ v).transpose(1, 2).reshape(b, n, c))
        return att.transpose(1, 2).reshape(b, c, h, w)

    def forward(self, x):
        return self.norm(self.attend(x)) + x


def group_norm(channels, groups):
    """GroupNorm with gcd(groups, channels) groups, as the Go pre-activation blocks (layers.normSiLU)."""
    return nn.GroupNorm(math.gcd(groups, channels), channels, eps=GROUP_NORM_EPS)


def zero_(layer):
    """Zeroes a layer's weight and bias (the Go ZerosInitializer) and returns the layer."""
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class PreNormResnetBlock(nn.Module):
    """layers.PreNormResnetBlock: conv(silu(norm(x))) + Dense(silu(temb)), conv(silu(norm(h))) (zero init),
    plus x, or a 1x1 conv of x when the width changes."""

    def __init__(self, cin, dim, groups, tdim):
        super().__init__()
        self.norm0, self.conv0 = group_norm(cin, groups), nn.Conv2d(cin, dim, 3, padding=1)
        self.time = nn.Linear(tdim, dim)
        self.norm1, self.conv1 = group_norm(dim, groups), zero_(nn.Conv2d(dim, dim, 3, padding=1))
        self.skip = nn.Identity() if cin == dim else nn.Conv2d(cin, dim, 1)

    def forward(self, x, temb):
        h = self.conv0(F.silu(self.norm0(x))) + self.time(F.silu(temb))[:, :, None, None]
        return self.skip(x) + self.conv1(F.silu(self.norm1(h)))


class PreNormAttentionBlock(AttentionBlock):
    """layers.PreNormAttentionBlock: x + Attention(GroupNorm(x)), the out projection zero-initialized."""

    def __init__(self, c, heads, groups):
        super().__init__(c, heads, groups)
        zero_(self.out)
        self.norm = group_norm(c, groups)

    def forward(self, x):
        return x + self.attend(self.norm(x))


class TimeEmbedding(nn.Module):
    """layers.TimeEmbedding: sinusoidal(dim), Dense(4 dim), tanh-GELU, Dense(4 dim)."""

    def __init__(self, dim):
        super().__init__()
        half = dim // 2
        self.register_buffer("freqs", torch.exp(-torch.arange(half) * math.log(10000) / (half - 1)))
        self.dense0, self.dense1 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, 4 * dim)

    def forward(self, t):
        args = t.float()[:, None] * self.freqs[None, :]
        x = torch.cat([torch.sin(args), torch.cos(args)], dim=-1)
        return self.dense1(F.gelu(self.dense0(x), approximate="tanh"))


class UNet(nn.Module):
    """layers.UNet for one preset (see its doc comment for the structure)."""

    def __init__(self, preset):
        super().__init__()
        base, mults, attn_res, groups, heads = PRESETS[preset]
        widths = [base * m for m in mults]
        levels, tdim = len(widths), 4 * base
        has_attn = [IMAGE_SIZE >> i in attn_res for i in range(levels)]
        prenorm = preset in PRENORM
        resnet, attention = (PreNormResnetBlock, PreNormAttentionBlock) if prenorm else (ResnetBlock, AttentionBlock)
        self.stem = nn.Conv2d(CHANNELS, base // 3 * 2, 7, padding=3)
        self.time_embedding = TimeEmbedding(base)
        self.down, cin = nn.ModuleList(), base // 3 * 2
        for i, w in enumerate(widths):
            m = nn.ModuleList([resnet(cin, w, groups, tdim), resnet(w, w, groups, tdim)])
            m.append(attention(w, heads, groups) if has_attn[i] else nn.Identity())
            m.append(nn.Conv2d(w, w, 4, stride=2, padding=1) if i != levels - 1 else nn.Identity())
            self.down.append(m)
            cin = w
        w = widths[-1]
        self.mid0, self.mid_attn, self.mid1 = (resnet(w, w, groups, tdim), attention(w, heads, groups),
                                               resnet(w, w, groups, tdim))
        self.up = nn.ModuleList()
        for j in range(levels):
            i = levels - 1 - j
            w = widths[i]
            m = nn.ModuleList([resnet(w + cin, w, groups, tdim), resnet(w, w, groups, tdim)])
            m.append(attention(w, heads, groups) if has_attn[i] else nn.Identity())
            m.append(nn.ConvTranspose2d(w, w, 4, stride=2, padding=1) if j != levels - 1 else nn.Identity())
            self.up.append(m)
            cin = w
        self.final = resnet(widths[0], widths[0], groups, tdim)
        self.output = nn.Conv2d(widths[0], CHANNELS, 1)
        if prenorm:  # GroupNorm and SiLU before the output convolution, which starts at zero.
            self.output = nn.Sequential(group_norm(widths[0], groups), nn.SiLU(), zero_(self.output))

    def forward(self, x, t):
        temb = self.time_embedding(t)
        h, skips = self.stem(x), []
        for res0, res1, attn, down in self.down:
            h = attn(res1(res0(h, temb), temb))
            skips.append(h)
            h = down(h)
        h = self.mid1(self.mid_attn(self.mid0(h, temb)), temb)
        for (res0, res1, attn, up), skip in zip(self.up, reversed(skips)):
            h = up(attn(res1(res0(torch.cat([skip, h], dim=1), temb), temb)))
        return self.output(self.final(h, temb))


def build(preset):
    """Returns the preset's UNet after checking its parameter count against the Go model's."""
    model = UNet(preset)
    n = sum(p.numel() for p in model.parameters())
    assert n == GO_PARAMS[preset], f"{preset}: {n} parameters, Go model has {GO_PARAMS[preset]}"
    return model, n


def measure(preset, batch, steps):
    """Returns (train img/s, sample img/s, parameters) for one preset and batch."""
    model, n = build(preset)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    abar = torch.cumprod(1 - torch.linspace(1e-4, 0.02, T), dim=0)
    x0 = torch.rand(batch, CHANNELS, IMAGE_SIZE, IMAGE_SIZE) * 2 - 1

    def train_step():
        t = torch.randint(0, T, (batch,))
        eps = torch.randn_like(x0)
        a = abar[t][:, None, None, None]
        loss = F.mse_loss(model(a.sqrt() * x0 + (1 - a).sqrt() * eps, t), eps)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def sample_step():
        with torch.no_grad():
            model(x0, torch.full((batch,), T - 1))

    rates = []
    for step in (train_step, sample_step):
        step()  # Warm-up.
        start = time.perf_counter()
        for _ in range(steps):
            step()
        rates.append(batch * steps / (time.perf_counter() - start))
    return rates[0], rates[1], n


def warn_without_openblas():
    """Warns on stderr if torch's libblas.so.3 is not OpenBLAS's (e.g. Debian's reference BLAS; Linux only)."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "libblas.so" in line}
    except OSError:
        return
    if any("openblas" not in p for p in paths):
        print("pytorch_unet.py: warning: torch uses the reference BLAS, not OpenBLAS: "
              "apt-get install libopenblas0-pthread", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--presets", default="cpu", help="comma-separated presets: " + ", ".join(PRESETS))
    ap.add_argument("--batches", default="16,64", help="comma-separated batch sizes")
    ap.add_argument("--steps", type=int, default=3, help="timed steps per measurement, after one warm-up step")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    ap.add_argument("--count-only", action="store_true", help="only check the parameter counts of the presets")
    args = ap.parse_args()
    presets = [p.strip() for p in args.presets.split(",") if p.strip()]
    batches = [int(b) for b in args.batches.split(",") if b.strip()]
    for p in presets:
        if p not in PRESETS:
            ap.error(f"unknown preset {p!r}: use one of {', '.join(PRESETS)}")
    if args.steps < 1 or not batches or min(batches) < 1:
        ap.error("--steps and the batch sizes must be >= 1")
    torch.set_num_threads(args.threads)
    warn_without_openblas()
    torch.manual_seed(1)
    for p in presets:
        if args.count_only:
            print(f"pytorch preset={p} params={build(p)[1]} (matches Go)")
            continue
        for b in batches:
            train, sample, n = measure(p, b, args.steps)
            print(f"pytorch preset={p} batch={b} train_img_s={train:.2f} sample_img_s={sample:.2f} params={n} "
                  f"threads={torch.get_num_threads()} torch={torch.__version__}", flush=True)


if __name__ == "__main__":
    main()
