"""PyTorch (CPU) baseline for `tsr bench model`: the same Qwen2 shape and workloads.

Usage: python3 torch_model_bench.py '<json spec from tsr>'  (tsr bench model --torch does this).
Prints one JSON object on stdout. Decode uses a simple preallocated KV cache and argmax-free
forward steps, like the Rust side; training is forward + backward + AdamW.
"""
import json
import math
import sys
import time

import torch
import torch.nn.functional as F


class Layer(torch.nn.Module):
    def __init__(self, a):
        super().__init__()
        h, d = a["hidden_size"], a["head_dim"]
        self.nh, self.nkv, self.d = a["num_heads"], a["num_kv_heads"], d
        self.ln1 = torch.nn.Parameter(torch.ones(h))
        self.ln2 = torch.nn.Parameter(torch.ones(h))
        self.q = torch.nn.Linear(h, self.nh * d)
        self.k = torch.nn.Linear(h, self.nkv * d)
        self.v = torch.nn.Linear(h, self.nkv * d)
        self.o = torch.nn.Linear(self.nh * d, h, bias=False)
        self.gate = torch.nn.Linear(h, a["intermediate_size"], bias=False)
        self.up = torch.nn.Linear(h, a["intermediate_size"], bias=False)
        self.down = torch.nn.Linear(a["intermediate_size"], h, bias=False)
        self.eps = a["rms_norm_eps"]

    def rms(self, x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * w

    def forward(self, x, cos, sin, cache=None, start=0):
        b, t, _ = x.shape
        h = self.rms(x, self.ln1)
        q = self.q(h).view(b, t, self.nh, self.d).transpose(1, 2)
        k = self.k(h).view(b, t, self.nkv, self.d).transpose(1, 2)
        v = self.v(h).view(b, t, self.nkv, self.d).transpose(1, 2)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        if cache is not None:
            cache[0][:, :, start:start + t] = k
            cache[1][:, :, start:start + t] = v
            k, v = cache[0][:, :, :start + t], cache[1][:, :, :start + t]
        g = self.nh // self.nkv
        k = k.repeat_interleave(g, dim=1)
        v = v.repeat_interleave(g, dim=1)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=(t > 1))
        x = x + self.o(out.transpose(1, 2).reshape(b, t, -1))
        h = self.rms(x, self.ln2)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


def rope(x, cos, sin):
    half = x.shape[-1] // 2
    rot = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rot * sin


class Model(torch.nn.Module):
    def __init__(self, a):
        super().__init__()
        self.a = a
        self.embed = torch.nn.Embedding(a["vocab_size"], a["hidden_size"])
        self.layers = torch.nn.ModuleList(Layer(a) for _ in range(a["num_layers"]))
        self.norm = torch.nn.Parameter(torch.ones(a["hidden_size"]))
        self.value = torch.nn.Linear(a["hidden_size"], 1)
        d = a["head_dim"]
        inv = 1.0 / (a["rope_theta"] ** (torch.arange(0, d, 2).float() / d))
        ang = torch.outer(torch.arange(4096).float(), inv)
        emb = torch.cat([ang, ang], dim=-1)
        self.cos, self.sin = emb.cos(), emb.sin()

    def forward(self, ids, caches=None, start=0):
        t = ids.shape[1]
        cos, sin = self.cos[start:start + t], self.sin[start:start + t]
        x = self.embed(ids)
        for i, layer in enumerate(self.layers):
            x = layer(x, cos, sin, None if caches is None else caches[i], start)
        h = self.layers[0].rms(x, self.norm)
        return h @ self.embed.weight.T, self.value(h).squeeze(-1)


def best_of(reps, f):
    f()
    best = math.inf
    for _ in range(reps):
        t = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t)
    return best


def main():
    spec = json.loads(sys.argv[1])
    a, s = spec["arch"], spec["shapes"]
    torch.set_num_threads(spec.get("threads", 2))
    torch.manual_seed(0)
    model = Model(a)
    v = a["vocab_size"]
    out = {"engine": f"pytorch {torch.__version__} cpu", "threads": torch.get_num_threads()}

    with torch.no_grad():
        ids = torch.randint(0, v - 3, (s["prefill_batch"], s["prefill_len"]))
        sec = best_of(3, lambda: model(ids))
        n = ids.numel()
        out["prefill"] = {"tokens": n, "seconds": sec, "tok_per_s": n / sec}

        decode = []
        for b in s["decode_batches"]:
            total = math.inf
            for _ in range(2):
                cap = s["decode_prompt"] + s["decode_steps"]
                caches = [
                    (torch.zeros(b, a["num_kv_heads"], cap, a["head_dim"]),
                     torch.zeros(b, a["num_kv_heads"], cap, a["head_dim"]))
                    for _ in range(a["num_layers"])
                ]
                prompt = torch.randint(0, v - 3, (b, s["decode_prompt"]))
                model(prompt, caches, 0)
                t = time.perf_counter()
                for step in range(s["decode_steps"]):
                    tok = torch.full((b, 1), (step * 7) % (v - 3))
                    model(tok, caches, s["decode_prompt"] + step)
                total = min(total, time.perf_counter() - t)
            decode.append({"batch": b, "ms_per_step": 1e3 * total / s["decode_steps"],
                           "tok_per_s": b * s["decode_steps"] / total})
        out["decode"] = decode

    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    ids = torch.randint(0, v - 3, (s["train_batch"], s["train_len"]))

    def train_step():
        logits, values = model(ids)
        logp = torch.log_softmax(logits[:, :-1], -1)
        picked = logp.gather(-1, ids[:, 1:, None]).squeeze(-1)
        entropy = -(logp.exp() * logp).sum(-1)
        loss = -picked.mean() + values[:, :-1].pow(2).mean() + 0.0 * entropy.mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    sec = best_of(s["train_steps"], train_step)
    n = ids.numel()
    out["train"] = {"tokens": n, "seconds_per_step": sec, "tok_per_s": n / sec}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
