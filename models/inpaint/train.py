"""Train TinyGLCIC on the image pack written by prepare_data.py.

Deterministic recipe (fixed seed, all random draws from one CPU generator, so CPU and CUDA runs see the same
crops, holes and flips): Adam (0.9, 0.99), lr cosine from --lr to --lr-min over the sample budget, batch 16,
loss 6 * L1(hole) + 1 * L1(valid); optional GLCIC global+local adversarial term (--adv-weight > 0).
Crops: 50 % vtest frames (scale 1-1.5x), 50 % photos (scale 1-2.5x), area-resized to 128, random h-flip.
Holes: one rectangle of 16-64 px per side, a second one 30 % of the time.

All images are loaded onto the device once and cropped/masked there, so a GPU is not starved by a loader.

    python models/inpaint/train.py --device cpu --samples 20000 --out /tmp/run
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from model import GlobalLocalDiscriminator, TinyGLCIC, parameter_count

HERE = Path(__file__).resolve().parent
SIZE = 128
LOCAL = 64
HOLE_MIN, HOLE_MAX = 16, 64
SECOND_HOLE_P = 0.3
VTEST_P = 0.5
VTEST_SCALE = (1.0, 1.5)
PHOTO_SCALE = (1.0, 2.5)
HOLE_WEIGHT = 6.0


class ImageBank:
    """One folder of JPEGs as uint8 CHW tensors on the device, cropped per sample."""

    def __init__(self, folder: Path, device: torch.device) -> None:
        paths = sorted(folder.glob("*.jpg"))
        if not paths:
            raise FileNotFoundError(f"no training images in {folder}; run prepare_data.py first")
        self.images = []
        for path in paths:
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if bgr is None:
                raise OSError(f"unreadable image {path}")
            rgb = np.ascontiguousarray(bgr[..., ::-1].transpose(2, 0, 1))
            self.images.append(torch.from_numpy(rgb).to(device))
        self.names = [p.name for p in paths]

    def __len__(self) -> int:
        return len(self.images)

    def crop(self, index: int, u_scale: float, u_x: float, u_y: float, scale_range: tuple[float, float]):
        image = self.images[index]
        height, width = image.shape[1:]
        lo, hi = scale_range
        scale = min(lo + (hi - lo) * u_scale, min(height, width) / SIZE)
        side = max(SIZE, round(SIZE * scale))
        y0 = int(u_y * (height - side + 1))
        x0 = int(u_x * (width - side + 1))
        patch = image[:, y0 : y0 + side, x0 : x0 + side].float().unsqueeze(0)
        if side != SIZE:
            patch = F.interpolate(patch, size=(SIZE, SIZE), mode="area")
        return patch


def rect_masks(params: torch.Tensor, device: torch.device) -> torch.Tensor:
    """params [B, 2, 5] = (h, w, y, x, enabled) per hole -> mask [B, 1, S, S] (1 inside a hole)."""
    coords = torch.arange(SIZE, device=device).float()
    params = params.to(device)
    mask = torch.zeros(params.shape[0], 1, SIZE, SIZE, device=device)
    for hole in range(params.shape[1]):
        h, w, y, x, on = params[:, hole].unbind(1)
        rows = (coords[None] >= y[:, None]) & (coords[None] < (y + h)[:, None])
        cols = (coords[None] >= x[:, None]) & (coords[None] < (x + w)[:, None])
        mask = torch.maximum(
            mask, (rows[:, :, None] & cols[:, None, :]).float()[:, None] * on[:, None, None, None]
        )
    return mask


class Sampler:
    """Draws training batches; every random number comes from one seeded CPU generator."""

    def __init__(self, pack: Path, device: torch.device, seed: int) -> None:
        self.vtest = ImageBank(pack / "vtest", device)
        self.photo = ImageBank(pack / "photo", device)
        self.device = device
        self.rng = torch.Generator().manual_seed(seed)

    def _u(self, *shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=self.rng)

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        u = self._u(size, 6)  # source, index, scale, x, y, flip
        crops = []
        for i in range(size):
            bank, scales = (self.vtest, VTEST_SCALE) if u[i, 0] < VTEST_P else (self.photo, PHOTO_SCALE)
            index = min(int(u[i, 1] * len(bank)), len(bank) - 1)
            patch = bank.crop(index, float(u[i, 2]), float(u[i, 3]), float(u[i, 4]), scales)
            crops.append(patch.flip(3) if u[i, 5] < 0.5 else patch)
        image = torch.cat(crops) / 127.5 - 1.0
        hole = self._u(size, 2, 5)
        sides = HOLE_MIN + (hole[..., :2] * (HOLE_MAX - HOLE_MIN + 1)).floor()
        origin = (hole[..., 2:4] * (SIZE - sides + 1)).floor()
        enabled = torch.stack([torch.ones(size), (hole[:, 1, 4] < SECOND_HOLE_P).float()], 1)
        params = torch.cat([sides, origin, enabled[..., None]], -1)
        self.first_hole = params[:, 0]
        return image.contiguous(memory_format=torch.channels_last), rect_masks(params, self.device)

    def local_windows(self, image: torch.Tensor) -> torch.Tensor:
        """64 px windows centred on each sample's first hole (clamped inside the crop), as in GLCIC."""
        h, w, y, x, _ = self.first_hole.unbind(1)
        top = (y + h / 2 - LOCAL / 2).clamp(0, SIZE - LOCAL).long().tolist()
        left = (x + w / 2 - LOCAL / 2).clamp(0, SIZE - LOCAL).long().tolist()
        return torch.stack(
            [
                image[i, :, t : t + LOCAL, s : s + LOCAL]
                for i, (t, s) in enumerate(zip(top, left, strict=True))
            ]
        )


def cosine_lr(samples_done: int, budget: int, lr: float, lr_min: float) -> float:
    return lr_min + 0.5 * (lr - lr_min) * (1 + math.cos(math.pi * min(1.0, samples_done / budget)))


def masked_l1(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return ((pred - target).abs() * weight).sum() / (weight.sum() * 3).clamp_min(1.0)


def train(args: argparse.Namespace) -> None:
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    else:
        torch.set_num_threads(args.threads)
    sampler = Sampler(args.pack, device, args.seed)
    generator = TinyGLCIC(tuple(args.widths)).to(device, memory_format=torch.channels_last)
    opt_g = torch.optim.Adam(generator.parameters(), lr=args.lr, betas=(0.9, 0.99))
    critic = opt_d = None
    if args.adv_weight > 0:
        critic = GlobalLocalDiscriminator(SIZE, LOCAL).to(device, memory_format=torch.channels_last)
        opt_d = torch.optim.Adam(critic.parameters(), lr=args.lr_d, betas=(0.5, 0.99))
    args.out.mkdir(parents=True, exist_ok=True)
    log_path = args.out / f"{args.name}.jsonl"
    weights_path = args.out / f"{args.name}.pt"
    header = {
        "event": "start", "name": args.name, "device": str(device), "seed": args.seed,
        "samples": args.samples, "batch": args.batch, "lr": args.lr, "lr_min": args.lr_min,
        "adv_weight": args.adv_weight, "adv_start": args.adv_start, "widths": args.widths,
        "params": parameter_count(generator), "torch": torch.__version__,
        "train_vtest": len(sampler.vtest), "train_photo": len(sampler.photo),
    }  # fmt: skip
    with log_path.open("w") as log:
        log.write(json.dumps(header) + "\n")
    print(json.dumps(header), flush=True)

    adv_from = int(args.adv_start * args.samples)
    done, started, window = 0, time.monotonic(), {"loss": 0.0, "hole_l1": 0.0, "valid_l1": 0.0, "d_loss": 0.0}
    steps_in_window, next_log, next_ckpt = 0, args.log_every, args.samples // 10
    while done < args.samples:
        lr = cosine_lr(done, args.samples, args.lr, args.lr_min)
        for group in opt_g.param_groups:
            group["lr"] = lr
        image, mask = sampler.batch(args.batch)
        source = torch.cat([image * (1 - mask), mask], 1).contiguous(memory_format=torch.channels_last)
        pred = generator(source)
        hole_l1 = masked_l1(pred, image, mask)
        valid_l1 = masked_l1(pred, image, 1 - mask)
        loss = HOLE_WEIGHT * hole_l1 + valid_l1
        adversarial = critic is not None and done >= adv_from
        if adversarial:
            fake = pred * mask + image * (1 - mask)
            real_score = critic(image, sampler.local_windows(image))
            fake_score = critic(fake.detach(), sampler.local_windows(fake.detach()))
            d_loss = F.softplus(-real_score).mean() + F.softplus(fake_score).mean()
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
            g_adv = F.softplus(-critic(fake, sampler.local_windows(fake))).mean()
            loss = loss + args.adv_weight * g_adv
            window["d_loss"] += d_loss.detach()
        opt_g.zero_grad(set_to_none=True)
        loss.backward()
        opt_g.step()
        done += args.batch
        steps_in_window += 1
        # Accumulate on the device: a float() per step would stall the GPU pipeline every iteration.
        window["loss"] += loss.detach()
        window["hole_l1"] += hole_l1.detach()
        window["valid_l1"] += valid_l1.detach()
        if done >= next_log or done >= args.samples:
            if not math.isfinite(float(window["loss"])):
                raise FloatingPointError(f"loss became {float(window['loss'])} by {done} samples")
            elapsed = time.monotonic() - started
            row = {"samples": done, "lr": round(lr, 7), "elapsed_s": round(elapsed, 1),
                   "img_per_s": round(done / elapsed, 1)}  # fmt: skip
            row.update({k: round(float(v) / steps_in_window, 5) for k, v in window.items()})
            with log_path.open("a") as log:
                log.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)
            window = dict.fromkeys(window, 0.0)
            steps_in_window, next_log = 0, next_log + args.log_every
        if done >= next_ckpt or done >= args.samples:
            # Periodic checkpoints so a run cut short by a time limit still leaves usable weights.
            torch.save({k: v.detach().cpu() for k, v in generator.state_dict().items()}, weights_path)
            next_ckpt += args.samples // 10
    with log_path.open("a") as log:
        log.write(
            json.dumps({"event": "end", "samples": done, "elapsed_s": time.monotonic() - started}) + "\n"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--samples", type=int, default=864_000, help="training budget in images")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1.5e-3)
    parser.add_argument("--lr-min", type=float, default=1e-4)
    parser.add_argument("--widths", type=int, nargs=3, default=[24, 48, 96], help="encoder/decoder widths")
    parser.add_argument("--adv-weight", type=float, default=0.0, help="0 = no discriminators (default)")
    parser.add_argument("--adv-start", type=float, default=0.5, help="fraction of the budget before GAN")
    parser.add_argument("--lr-d", type=float, default=2e-4)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--log-every", type=int, default=8000, help="samples between log rows")
    parser.add_argument("--pack", type=Path, default=HERE / ".work" / "train")
    parser.add_argument("--out", type=Path, default=HERE / ".work" / "runs")
    parser.add_argument("--name", default="glcic")
    train(parser.parse_args())


if __name__ == "__main__":
    main()
