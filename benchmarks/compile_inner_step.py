"""Does torch.compile speed up the batched inner step? (issue 5: how much of the gap is per-op overhead?)

    python benchmarks/compile_inner_step.py

One batched inner step of the default MLP (40-128-10) for 8 stacked runs (one batched-env worker
thread's share at N = 16 on 2 cores; 3 stages x 64 examples): forward, per-stage loss, autograd
gradients and an Adam update, eager vs ``torch.compile`` (inductor, C++ kernels), 1 torch thread,
mean over 300 steps after warm-up. Prints both times and the ratio.
"""

import time

import torch
import torch.nn.functional as F

torch.set_num_threads(1)
N, B, D, H, C = 8, 192, 40, 128, 10
g = torch.Generator().manual_seed(0)
P = [torch.randn(N, D, H, generator=g) * 0.1, torch.zeros(N, 1, H), torch.randn(N, H, C, generator=g) * 0.1, torch.zeros(N, 1, C)]
for p in P:
    p.requires_grad_(True)
m = [torch.zeros_like(p) for p in P]
v = [torch.zeros_like(p) for p in P]
x = torch.randn(N, B, D, generator=g)
y = torch.randint(0, C, (N, B), generator=g)
w = torch.rand(N, 3)

def step(P, m, v, x, y, w, t):
    h = torch.relu(torch.baddbmm(P[1], x, P[0]))
    lg = torch.baddbmm(P[3], h, P[2])
    per = F.cross_entropy(lg.transpose(1, 2), y, reduction="none").view(N, 3, -1).mean(-1)
    loss = (w * per).sum()
    gs = torch.autograd.grad(loss, P)
    with torch.no_grad():
        for p, mm, vv, gg in zip(P, m, v, gs):
            mm.lerp_(gg, 0.1)
            vv.mul_(0.999).addcmul_(gg, gg, value=0.001)
            p.addcdiv_(mm, (vv / (1 - 0.999 ** t)).sqrt_().add_(1e-8), value=-1e-3 / (1 - 0.9 ** t))
    return per.detach()

def bench(fn, k=300):
    for i in range(20):
        fn(P, m, v, x, y, w, torch.tensor(1.0 + i))
    t0 = time.perf_counter()
    for i in range(k):
        fn(P, m, v, x, y, w, torch.tensor(21.0 + i))
    return (time.perf_counter() - t0) / k * 1e3

e = bench(step)
t0 = time.perf_counter()
cstep = torch.compile(step, dynamic=False)
try:
    c = bench(cstep)
    ct = time.perf_counter() - t0
    print(f"eager {e:.3f} ms/step  compiled {c:.3f} ms/step  speedup {e/c:.2f}x  (compile+bench {ct:.0f}s)")
except Exception as ex:
    print("compile failed:", type(ex).__name__, str(ex)[:300])
