"""Time CycleGAN's train_step from one ganzoo source tree, to compare two trees in one session.

    git worktree add /tmp/old f9d2a84
    for r in 1 2 3; do for t in /tmp/old .; do python benchmarks/compare_step.py $t 32 20; done; done

Arguments: the tree's root, the crop size (32: the quick start's networks at batch 4; other: resnet_9blocks
and patchgan_70 at batch 1), the number of timed steps. One thread; prints the minimum and median
seconds per step as JSON (the minimum is what other load on the machine disturbs least).
"""
import sys, time, json
root, size = sys.argv[1], int(sys.argv[2])
sys.path[:0] = [root, f"{root}/plugins/cyclegan", f"{root}/plugins/pix2pix"]
import torch
torch.set_num_threads(1)
from ganzoo.plugins import get_plugin_manager
import ganzoo_cyclegan
from ganzoo.registry import Registry
from ganzoo.config import load_recipe
from ganzoo.build import build_method
pm = get_plugin_manager(load_entrypoints=False); pm.register(ganzoo_cyclegan, name="cyclegan")
reg = Registry(pm)
if size == 32:
    raw = {"run": {"device": "cpu"}, "data": {"root": "x", "batch_size": 4, "channels_a": 1, "channels_b": 1},
           "augment": {"load_size": 32, "crop_size": 32}, "method": {"name": "cyclegan"},
           "generator": {"name": "resnet_6blocks", "ngf": 32}, "discriminator": {"name": "patchgan", "n_layers": 2, "ndf": 32},
           "loss": {"name": "lsgan"}}
else:
    raw = {"run": {"device": "cpu"}, "data": {"root": "x", "batch_size": 1}, "augment": {"load_size": size, "crop_size": size},
           "method": {"name": "cyclegan"}, "generator": {"name": "resnet_9blocks"}, "discriminator": {"name": "patchgan_70"},
           "loss": {"name": "lsgan"}}
recipe = load_recipe(raw, reg)
cpu = torch.device("cpu")
torch.manual_seed(0)
try:
    from ganzoo.guard import GuardedPrecision, NonFiniteGuard  # the old tree: the guarded precision as runs use it
    method = build_method(recipe, reg, cpu, GuardedPrecision("fp32", cpu, NonFiniteGuard()))
except ImportError:
    method = build_method(recipe, reg, cpu)  # the new tree: the guarded Updater by default
c = raw["data"].get("channels_a", 3); b = raw["data"]["batch_size"]
g = torch.Generator().manual_seed(1)
a, bb = torch.rand(b, c, size, size, generator=g) * 2 - 1, torch.rand(b, c, size, size, generator=g) * 2 - 1
for _ in range(3):
    method.train_step(a, bb)
times = []
for _ in range(int(sys.argv[3])):
    t = time.perf_counter(); method.train_step(a, bb); times.append(time.perf_counter() - t)
print(json.dumps({"root": root, "size": size, "min": min(times), "median": sorted(times)[len(times)//2]}))
