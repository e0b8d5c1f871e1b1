"""Self-supervised losses against analytic values and loop-by-loop transcriptions."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from reluscope.train import losses


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_nt_xent_at_uniform_similarity_is_log_2n_minus_1():
    z = torch.ones(8, 5, dtype=torch.float64)
    assert float(losses.nt_xent(z, z, 0.5)) == pytest.approx(math.log(2 * 8 - 1))


def test_nt_xent_matches_the_simclr_pseudocode():
    z1, z2 = torch.randn(6, 4, generator=gen(), dtype=torch.float64), torch.randn(6, 4, generator=gen(1),
                                                                                 dtype=torch.float64)
    tau = 0.3
    z = [F.normalize(v, dim=0) for v in torch.cat([z1, z2])]
    n = 6

    def ell(i: int, j: int) -> torch.Tensor:
        num = torch.exp(z[i] @ z[j] / tau)
        den = sum(torch.exp(z[i] @ z[k] / tau) for k in range(2 * n) if k != i)
        return -torch.log(num / den)

    loop = sum(ell(k, k + n) + ell(k + n, k) for k in range(n)) / (2 * n)
    assert float(losses.nt_xent(z1, z2, tau)) == pytest.approx(float(loop), rel=1e-12)


def test_info_nce_with_a_queue_matches_a_loop():
    q, k = torch.randn(5, 3, generator=gen(2), dtype=torch.float64), torch.randn(5, 3, generator=gen(3),
                                                                                dtype=torch.float64)
    queue = torch.randn(7, 3, generator=gen(4), dtype=torch.float64)
    tau = 0.2
    total = 0.0
    for i in range(5):
        qi, ki = F.normalize(q[i], dim=0), F.normalize(k[i], dim=0)
        logits = [qi @ ki] + [qi @ F.normalize(queue[j], dim=0) for j in range(7)]
        e = torch.exp(torch.stack(logits) / tau)
        total += float(-torch.log(e[0] / e.sum()))
    assert float(losses.info_nce_queue(q, k, queue, tau)) == pytest.approx(total / 5, rel=1e-12)


def test_negative_cosine_and_byol_form():
    p = torch.randn(4, 6, generator=gen(5), dtype=torch.float64)
    z = torch.randn(4, 6, generator=gen(6), dtype=torch.float64)
    loop = sum(float(-(p[i] @ z[i]) / (p[i].norm() * z[i].norm())) for i in range(4)) / 4
    assert float(losses.negative_cosine(p, z)) == pytest.approx(loop, rel=1e-12)
    pn, zn = F.normalize(p, dim=1), F.normalize(z, dim=1)
    byol = sum(float(((pn[i] - zn[i]) ** 2).sum()) for i in range(4)) / 4
    assert float(2 + 2 * losses.negative_cosine(p, z)) == pytest.approx(byol, rel=1e-12)
    assert float(losses.negative_cosine(z, z)) == pytest.approx(-1.0)


def test_dino_loss_matches_the_pseudocode():
    s = torch.randn(2, 3, 8, generator=gen(7), dtype=torch.float64)
    t = torch.randn(2, 3, 8, generator=gen(8), dtype=torch.float64)
    c = torch.randn(8, generator=gen(9), dtype=torch.float64)
    ts, tt = 0.1, 0.04

    def h(tv: torch.Tensor, sv: torch.Tensor) -> torch.Tensor:  # DINO's H(t, s) per sample
        pt = torch.softmax((tv - c) / tt, dim=-1)
        ps = torch.softmax(sv / ts, dim=-1)
        return -(pt * torch.log(ps)).sum(-1).mean()

    loop = (h(t[0], s[1]) + h(t[1], s[0])) / 2
    assert float(losses.dino_loss(s, t, c, ts, tt)) == pytest.approx(float(loop), rel=1e-10)
    no_center = losses.dino_loss(s, t, c, ts, tt, centering=False)
    assert float(no_center) == pytest.approx(float(losses.dino_loss(s, t, torch.zeros(8, dtype=torch.float64),
                                                                    ts, tt)))


def test_vicreg_terms_match_a_transcription():
    z1 = torch.randn(16, 5, generator=gen(10), dtype=torch.float64)
    z2 = torch.randn(16, 5, generator=gen(11), dtype=torch.float64)
    loss, terms = losses.vicreg_loss(z1, z2)
    inv = sum(float(((z1[i] - z2[i]) ** 2).sum()) for i in range(16)) / (16 * 5)
    assert float(terms["invariance"]) == pytest.approx(inv)

    def var_cov(z: torch.Tensor) -> tuple[float, float]:
        zc = z - z.mean(0)
        std = [math.sqrt(float((zc[:, j] ** 2).sum()) / 15 + 1e-4) for j in range(5)]
        v = sum(max(0.0, 1 - s) for s in std) / 5
        pairs = [(a, b) for a in range(5) for b in range(5) if a != b]
        cov = sum(float((zc[:, a] * zc[:, b]).sum() / 15) ** 2 for a, b in pairs) / 5
        return v, cov

    (va, ca), (vb, cb) = var_cov(z1), var_cov(z2)
    assert float(terms["variance"]) == pytest.approx((va + vb) / 2)
    assert float(terms["covariance"]) == pytest.approx(ca + cb)
    assert float(loss) == pytest.approx(25 * inv + 25 * (va + vb) / 2 + (ca + cb))


def test_barlow_twins_matches_a_transcription_and_is_zero_for_whitened_identical_views():
    z1 = torch.randn(32, 4, generator=gen(12), dtype=torch.float64)
    z2 = torch.randn(32, 4, generator=gen(13), dtype=torch.float64)
    a = (z1 - z1.mean(0)) / (z1.std(0, unbiased=False) + 1e-5)
    b = (z2 - z2.mean(0)) / (z2.std(0, unbiased=False) + 1e-5)
    total = 0.0
    for i in range(4):
        for j in range(4):
            cij = float(sum(a[n, i] * b[n, j] for n in range(32)) / 32)
            total += (1 - cij) ** 2 if i == j else 5e-3 * cij ** 2
    assert float(losses.barlow_twins_loss(z1, z2)) == pytest.approx(total, rel=1e-9)
    q, _ = torch.linalg.qr(torch.randn(64, 4, generator=gen(14), dtype=torch.float64))
    white = (q - q.mean(0)) * 8.0  # orthogonal columns, nearly zero mean
    assert float(losses.barlow_twins_loss(white, white)) < 0.05


def test_masked_patch_mse_matches_a_loop_over_images_and_patches():
    g = gen(5)
    images = torch.rand(3, 1, 8, 8, generator=g, dtype=torch.float64)
    prediction = torch.rand(3, 1, 8, 8, generator=g, dtype=torch.float64)
    mask = torch.rand(3, 4, generator=g) < 0.6
    mask[0, 0] = True
    from reluscope.train.losses import masked_patch_mse, patchify

    for normalize in (False, True):
        got = masked_patch_mse(patchify(prediction, 4), patchify(images, 4), mask, normalize)
        total, count = 0.0, 0
        for b in range(3):
            for k in range(4):  # patches in row-major order on the 2 x 2 grid
                if not mask[b, k]:
                    continue
                r, c = divmod(k, 2)
                target = images[b, 0, 4 * r: 4 * r + 4, 4 * c: 4 * c + 4].flatten()
                if normalize:
                    target = (target - target.mean()) / (target.var() + 1e-6).sqrt()
                pred = prediction[b, 0, 4 * r: 4 * r + 4, 4 * c: 4 * c + 4].flatten()
                total += float(((pred - target) ** 2).mean())
                count += 1
        assert float(got) == pytest.approx(total / count, rel=1e-12)


def test_mae_hides_three_quarters_of_the_patches_and_learns_only_from_them():
    from reluscope.nets.zoo import MLP
    from reluscope.train.objectives import MAE, Batch

    mae = MAE(MLP([16]))
    mask = mae.random_mask(5, gen(1), torch.device("cpu"))
    assert mask.shape == (5, 49) and (mask.sum(1) == 37).all()
    assert torch.equal(mask, mae.random_mask(5, gen(1), torch.device("cpu")))  # fixed by the generator
    x = torch.rand(4, 1, 28, 28, generator=gen(2))
    out = mae(Batch(x, torch.zeros(4, dtype=torch.long), None, gen(3)))
    assert torch.isfinite(out.loss) and out.logs["masked_fraction"] == pytest.approx(37 / 49)
    with pytest.raises(ValueError, match="patch size dividing"):
        MAE(MLP([16]), patch=5)
