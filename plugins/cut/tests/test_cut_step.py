"""One CUT / FastCUT step equals an independent computation of the reference's formulas.

Given the method's initial weights and explicit patch ids (and flip), the expected step is
computed here in plain torch, without ganzoo_cut code: the generator and discriminator
forward passes of cut_layouts (one functional call per reference layer, blurs as explicit
sums), the patch MLPs from their weights, PatchNCE written from ``models/patchnce.py``, the
step order of ``models/cut_model.py`` (forward; D step; G and F step against the new D), and
Adam(2e-4, (0.5, 0.999)) on the parameters. Compared: every loss, the generator output, the
gradients of G, D and F and their weights after the step.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cut_layouts import cut_patchgan_reference, cut_resnet_reference
from cut_recipes import tiny
from ganzoo import RecipeError, testing

LAYERS = (0, 4, 8, 12, 16)
N_BLOCKS = 6
PATCHES = 16
LR, BETAS = 2e-4, (0.5, 0.999)


def build(registry, method: str, **method_keys):
    # F 32 wide: with fewer units a patch whose ReLUs are all off becomes likely, and the
    # reference's normalisation has no gradient there (ganzoo_cut's takes 0, see l2_normalize)
    return testing.build_method(tiny(method={"name": method, **method_keys}, sampler={"nc": 32}), registry)


def draw_ids(sizes, n_terms, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [[torch.randperm(n, generator=g)[:PATCHES] for n in sizes] for _ in range(n_terms)]


# --- the reference's formulas, written out ---------------------------------------------------

def mse(pred, value):
    return ((pred - value) ** 2).mean()


def project(f, sd, layer, ids):
    """PatchSampleF (mlp_sample) for one layer: gather row-major positions, MLP, x / (|x| + 1e-7)."""
    rows = f.permute(0, 2, 3, 1).reshape(f.shape[0], -1, f.shape[1])[:, ids, :].reshape(-1, f.shape[1])
    p = f"mlp_{layer}"
    x = F.linear(F.relu(F.linear(rows, sd[f"{p}.0.weight"], sd[f"{p}.0.bias"])), sd[f"{p}.2.weight"], sd[f"{p}.2.bias"])
    return x / (x.pow(2).sum(1, keepdim=True).sqrt() + 1e-7)


def patch_nce(q, k, batch, t, all_negatives):
    k = k.detach()
    l_pos = (q * k).sum(1, keepdim=True)
    groups = 1 if all_negatives else batch
    qg, kg = q.reshape(groups, -1, q.shape[1]), k.reshape(groups, -1, k.shape[1])
    l_neg = qg @ kg.transpose(1, 2)
    eye = torch.eye(l_neg.shape[1], dtype=torch.bool)
    l_neg = torch.where(eye, torch.full_like(l_neg, -10.0), l_neg).reshape(-1, l_neg.shape[1])
    logits = torch.cat([l_pos, l_neg], 1) / t
    return -torch.log_softmax(logits, 1)[:, 0]


def nce(sd_g, sd_f, src, tgt, ids, flipped, cfg):
    _, fq = cut_resnet_reference(sd_g, tgt, N_BLOCKS)
    _, fk = cut_resnet_reference(sd_g, src, N_BLOCKS)
    total = 0.0
    for layer, (i, pid) in enumerate(zip(LAYERS, ids)):
        q_map = torch.flip(fq[i], [3]) if flipped else fq[i]
        q, k = project(q_map, sd_f, layer, pid), project(fk[i], sd_f, layer, pid)
        total = total + (patch_nce(q, k, src.shape[0], cfg["t"], cfg["all"]) * cfg["lambda_nce"]).mean()
    return total / len(LAYERS)


def adam(params, grads):
    for p, g in zip(params, grads):
        p.grad = g.clone()
    torch.optim.Adam(params, lr=LR, betas=BETAS).step()


def expected_step(init, real_a, real_b, ids, flipped, cfg):
    """Losses, output, gradients and updated weights of one reference step from ``init``."""
    leaves = {net: {k: v.clone().requires_grad_(not k.endswith(".filt")) for k, v in sd.items()}
              for net, sd in init.items()}
    g, d, f = leaves["G"], leaves["D"], leaves["F"]
    n = real_a.shape[0]
    real = torch.cat([real_a, real_b]) if cfg["idt"] else real_a
    if flipped:
        real = torch.flip(real, [3])
    fake, _ = cut_resnet_reference(g, real, N_BLOCKS)
    fake_b, idt_b = fake[:n], fake[n:]
    out = {"losses": {}, "grads": {}}
    L = out["losses"]

    L["D_fake"] = mse(cut_patchgan_reference(d, fake_b.detach()), 0.0)
    L["D_real"] = mse(cut_patchgan_reference(d, real_b), 1.0)
    L["D"] = 0.5 * (L["D_fake"] + L["D_real"])
    d_params = {k: v for k, v in d.items() if v.requires_grad}
    d_grads = torch.autograd.grad(L["D"], list(d_params.values()))
    out["grads"]["D"] = dict(zip(d_params, d_grads))
    adam(list(d_params.values()), d_grads)

    L["G_GAN"] = mse(cut_patchgan_reference(d, fake_b), 1.0) * cfg["lambda_gan"]  # the updated D
    L["NCE"] = nce(g, f, real_a, fake_b, ids[0], flipped, cfg)
    if cfg["idt"]:
        L["NCE_Y"] = nce(g, f, real_b, idt_b, ids[1], flipped, cfg)
        L["G"] = L["G_GAN"] + 0.5 * (L["NCE"] + L["NCE_Y"])
    else:
        L["G"] = L["G_GAN"] + L["NCE"]
    gf = {(net, k): v for net, sd in (("G", g), ("F", f)) for k, v in sd.items() if v.requires_grad}
    gf_grads = torch.autograd.grad(L["G"], list(gf.values()))
    for (net, k), grad in zip(gf, gf_grads):
        out["grads"].setdefault(net, {})[k] = grad
    adam(list(gf.values()), gf_grads)

    out["losses"] = {k: float(v.detach()) for k, v in L.items()}
    out["fake_B"] = (torch.flip(fake_b, [3]) if flipped else fake_b).detach()
    out["weights"] = {net: {k: v.detach() for k, v in sd.items()} for net, sd in leaves.items()}
    return out


# --- the comparison --------------------------------------------------------------------------

def biases_before_instance_norm(net: nn.Module, read: tuple[int, ...] = ()) -> set[str]:
    """A conv bias right before an instance norm has no effect (unless PatchNCE reads the
    conv's output, as at ``model.4`` and ``model.8``: ``read``): its true gradient is 0 and the
    computed one rounding noise, which Adam's first step turns into a move of lr * g / (|g| +
    1e-8), anything up to lr, differently in each computation. Compared apart, to 2 * lr."""
    out = set()
    for prefix, mod in net.named_modules():
        if isinstance(mod, nn.Sequential):
            kids = list(mod)
            for i, (a, b) in enumerate(zip(kids, kids[1:])):
                if isinstance(a, nn.Conv2d) and a.bias is not None and isinstance(b, nn.InstanceNorm2d):
                    out.add(f"{prefix}.{i}.bias".lstrip("."))
    return out - {f"model.{i}.bias" for i in read}


def step_differences(registry, method: str, flip: bool | None, **method_keys) -> dict[str, float]:
    """Run one step of the method and of the formulas above; the largest differences."""
    m = build(registry, method, **method_keys)
    c = m.cfg
    cfg = {"idt": c.nce_idt, "lambda_nce": c.lambda_nce, "lambda_gan": c.lambda_gan, "t": c.nce_t,
           "all": c.nce_includes_all_negatives_from_minibatch}
    gen = torch.Generator().manual_seed(0)
    real_a = torch.rand(2, 3, 32, 32, generator=gen) * 2 - 1
    real_b = torch.rand(2, 3, 32, 32, generator=gen) * 2 - 1
    m.setup(real_a, real_b)
    init = {name: {k: v.detach().clone() for k, v in net.state_dict().items()} for name, net in m.networks.items()}
    ids = draw_ids([38 * 38, 32 * 32, 16 * 16, 8 * 8, 8 * 8], 1 + c.nce_idt)

    metrics = m.train_step(real_a, real_b, patch_ids=ids, flip=flip)
    want = expected_step(init, real_a, real_b, ids, bool(flip) and c.flip_equivariance, cfg)

    assert set(metrics) == set(want["losses"])
    diffs = {"losses (relative)": max(abs(metrics[k] - v) / abs(v) for k, v in want["losses"].items()),
             "generator output": (m.visuals()["fake_B"] - want["fake_B"]).abs().max().item()}
    grad, weight, inert_grad, inert_weight = 0.0, 0.0, 0.0, 0.0
    for name, net in m.networks.items():
        inert = biases_before_instance_norm(net, LAYERS if name == "G" else ())
        scale = max(g.abs().max().item() for g in want["grads"][name].values())
        for key, p in net.named_parameters():
            expected = want["grads"][name][key]
            moved = (p.detach() - want["weights"][name][key]).abs().max().item()
            if key in inert:
                inert_grad = max(inert_grad, p.grad.abs().max().item() / scale, expected.abs().max().item() / scale)
                inert_weight = max(inert_weight, moved)
            else:  # relative to the tensor's largest gradient: F's reach 1e5 at xavier(0.02) init
                grad = max(grad, ((p.grad - expected).abs().max() / expected.abs().max()).item())
                weight = max(weight, moved)
        for key, buf in net.named_buffers():  # the fixed filters did not move
            assert torch.equal(buf, init[name][key]), f"{name}.{key}"
    diffs.update({"gradients (relative)": grad, "weights after Adam": weight,
                  "gradients, biases before instance norm (relative)": inert_grad,
                  "weights after Adam, biases before instance norm": inert_weight})
    return diffs


TOLERANCES = {"losses (relative)": 1e-5, "generator output": 1e-5, "gradients (relative)": 3e-5,
              "weights after Adam": 1e-6, "gradients, biases before instance norm (relative)": 1e-5,
              "weights after Adam, biases before instance norm": 2 * LR * 1.001}


@pytest.mark.parametrize("method, flip, keys", [
    ("cut", None, {}),
    ("cut", None, {"nce_includes_all_negatives_from_minibatch": True, "lambda_gan": 0.5}),
    ("fastcut", False, {}),
    ("fastcut", True, {}),
], ids=["cut", "cut-all-negatives", "fastcut", "fastcut-flipped"])
def test_one_step_matches_the_reference_formulas(registry, method, flip, keys):
    diffs = step_differences(registry, method, flip, **keys)
    for what, value in diffs.items():
        assert value <= TOLERANCES[what], f"{what}: {value:.3g}"


def test_presets(registry):
    cut, fast = build(registry, "cut").cfg, build(registry, "fastcut").cfg
    assert (cut.nce_idt, cut.lambda_nce, cut.flip_equivariance) == (True, 1.0, False)
    assert (fast.nce_idt, fast.lambda_nce, fast.flip_equivariance) == (False, 10.0, True)
    for cfg in (cut, fast):
        assert (cfg.lambda_gan, cfg.nce_layers, cfg.nce_t, cfg.nce_includes_all_negatives_from_minibatch) == \
            (1.0, (0, 4, 8, 12, 16), 0.07, False)


def test_fastcut_flips_half_of_its_steps_from_its_own_generator(registry):
    """The flip is drawn from the method's seeded generator (not torch's global one), so the
    same seed gives the same flips; CUT never flips."""
    real = torch.rand(1, 3, 32, 32) * 2 - 1

    def flips(method):
        m = build(registry, method)
        m.setup(real, real)
        out = []
        for _ in range(24):
            torch.manual_seed(123)  # the global generator does not decide
            m.train_step(real, real)
            out.append(m.flipped)
        return out

    first = flips("fastcut")
    assert first == flips("fastcut") and 6 <= sum(first) <= 18
    assert not any(flips("cut"))


def test_patch_ids_come_from_the_checkpointed_generator(registry):
    m = build(registry, "cut")
    real = torch.rand(1, 3, 32, 32) * 2 - 1
    m.setup(real, real)
    state = m.extra_state()
    assert state["patch_rng"].dtype == torch.uint8
    m.train_step(real, real)
    after_one = m.extra_state()["patch_rng"]
    assert not torch.equal(after_one, state["patch_rng"])  # drawing moved it
    m.load_extra_state(state)
    m.train_step(real, real)
    assert torch.equal(m.extra_state()["patch_rng"], after_one)


@pytest.mark.parametrize("section, body, match", [
    ("method", {"nce_layers": [0, 4, 40]}, "nce_layers"),
    ("method", {"nce_layers": [4, 0]}, "nce_layers"),
    ("method", {"nce_t": 0}, "nce_t"),
    ("method", {"lambda_gan": 0, "lambda_nce": 0}, "lambda_gan"),
    ("data", {"channels_b": 1}, "channels_a == channels_b"),
    ("run", {"precision": "fp16-mixed"}, "fp16"),
])
def test_recipe_errors_name_the_key(registry, section, body, match):
    with pytest.raises(RecipeError, match=match):
        testing.build_method(tiny(**{section: body}), registry)


def test_cut_translates_a_to_b_only(registry):
    m = build(registry, "cut")
    assert m.generator("AtoB") is m.networks["G"]
    with pytest.raises(ValueError, match="A -> B only"):
        m.generator("BtoA")


@pytest.mark.parametrize("norm, batches", [("instance", [2, 2]), ("batch", [4])])
def test_the_identity_branch_runs_apart_only_with_per_sample_norms(registry, norm, batches):
    """With instance norm G(B) runs after A's backward, so one branch's activations are alive at
    a time (the step above shows the same result); batch norm couples a batch's images, so A and
    B stay in one forward as in the reference."""
    m = testing.build_method(tiny(method={"name": "cut"}, sampler={"nc": 32}, generator={"norm": norm}), registry)
    gen = torch.Generator().manual_seed(0)
    real_a, real_b = (torch.rand(2, 3, 32, 32, generator=gen) * 2 - 1 for _ in range(2))
    m.setup(real_a, real_b)
    sizes = []
    m.G.register_forward_pre_hook(lambda module, args: sizes.append(len(args[0])))
    metrics = m.train_step(real_a, real_b)
    assert sizes == batches
    assert metrics["G"] == pytest.approx(metrics["G_GAN"] + 0.5 * (metrics["NCE"] + metrics["NCE_Y"]), rel=1e-5)
    assert m.visuals()["idt_B"].shape == real_b.shape
